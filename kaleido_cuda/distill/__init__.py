"""Distillation loops: distribution matching (DM) so far; gradient matching (DC) and trajectory
matching (MTT) are the next to come (see the issue tracker)."""
from .dm import DMConfig, distill_dm

METHODS = ("dm",)

__all__ = ["DMConfig", "distill_dm", "METHODS"]
