"""Formal differential privacy beside KT: a privacy accountant (dp-accounting), the clipped noisy
class means of DP distribution matching, and DP-SGD training (Opacus) as the baseline a distilled
set must beat at the same privacy. docs/privacy.md says what each guarantees and what it does not.
"""
from .accounting import ACCOUNTANTS, DPAccountant, calibrate_noise, check_dp_arguments

__all__ = ["ACCOUNTANTS", "DPAccountant", "calibrate_noise", "check_dp_arguments"]
