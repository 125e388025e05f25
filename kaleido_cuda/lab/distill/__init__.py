"""Distillation methods: distribution matching (DM), gradient matching (DC), trajectory matching
(MTT, which matches the expert trajectories that `train_buffer` stores), difficulty-aligned
trajectory matching with learned soft labels (DATM, on MTT's buffer), and realistic patch selection
with an observer's labels (RDED, no optimisation loop: rded.py)."""
from .buffer import BufferConfig, load_buffer, train_buffer
from .datm import DATMConfig, distill_datm
from .dc import DCConfig, distill_dc
from .dm import DMConfig, distill_dm
from .mtt import MTTConfig, distill_mtt
from .rded import RDEDConfig, rded_set

METHODS = ("dm", "dc", "mtt", "datm", "rded")
CONFIGS = {"dm": DMConfig, "dc": DCConfig, "mtt": MTTConfig, "datm": DATMConfig, "rded": RDEDConfig}
# The methods that optimise an initial set (RDED selects and stitches crops instead).
LOOPS = {"dm": distill_dm, "dc": distill_dc, "mtt": distill_mtt, "datm": distill_datm}
# The methods that match an expert buffer.
BUFFER_METHODS = ("mtt", "datm")

__all__ = ["DMConfig", "DCConfig", "MTTConfig", "DATMConfig", "RDEDConfig", "BufferConfig", "distill_dm",
           "distill_dc", "distill_mtt", "distill_datm", "rded_set", "train_buffer", "load_buffer", "METHODS",
           "CONFIGS", "LOOPS", "BUFFER_METHODS"]
