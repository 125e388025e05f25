"""Distillation loops: distribution matching (DM), gradient matching (DC) and trajectory matching
(MTT, which matches the expert trajectories that `train_buffer` stores)."""
from .buffer import BufferConfig, load_buffer, train_buffer
from .dc import DCConfig, distill_dc
from .dm import DMConfig, distill_dm
from .mtt import MTTConfig, distill_mtt

METHODS = ("dm", "dc", "mtt")
CONFIGS = {"dm": DMConfig, "dc": DCConfig, "mtt": MTTConfig}
LOOPS = {"dm": distill_dm, "dc": distill_dc, "mtt": distill_mtt}

__all__ = ["DMConfig", "DCConfig", "MTTConfig", "BufferConfig", "distill_dm", "distill_dc", "distill_mtt",
           "train_buffer", "load_buffer", "METHODS", "CONFIGS", "LOOPS"]
