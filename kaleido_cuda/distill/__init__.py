"""Distillation loops: distribution matching (DM) and gradient matching (DC). Trajectory matching
(MTT) is not written yet."""
from .dc import DCConfig, distill_dc
from .dm import DMConfig, distill_dm

METHODS = ("dm", "dc")
CONFIGS = {"dm": DMConfig, "dc": DCConfig}
LOOPS = {"dm": distill_dm, "dc": distill_dc}

__all__ = ["DMConfig", "DCConfig", "distill_dm", "distill_dc", "METHODS", "CONFIGS", "LOOPS"]
