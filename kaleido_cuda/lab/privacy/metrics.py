"""Membership-inference figures from attack scores, as the strictest papers report them (Carlini et
al., "Membership Inference Attacks From First Principles", 2022): ROC AUC and the true-positive
rate at low false-positive rates (1% and 0.1%), from sklearn.metrics.roc_curve.

Scores: higher means "more likely a member". A TPR at FPR x needs at least 1/x non-members to be
resolved: with fewer, the smallest false-positive rate above zero is 1/n > x, so the figure is the
TPR at zero false positives (a lower bound on what a finer experiment would find), and the result
says so (`resolved_*: False`).
"""
from __future__ import annotations

import math
from typing import Dict, Sequence

import numpy as np

LOW_FPRS = {"1pct": 0.01, "0.1pct": 0.001}


def _scores(name: str, values) -> np.ndarray:
    a = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"attack_metrics: no {name} scores")
    if not np.isfinite(a).all():
        raise ValueError(f"attack_metrics: {name} scores must be finite ({int((~np.isfinite(a)).sum())} are not)")
    return a


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The largest TPR among the ROC points whose FPR is at most `target`."""
    return float(tpr[fpr <= target + 1e-12].max())


def attack_metrics(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> Dict[str, float]:
    """{'auc', 'tpr_at_1pct_fpr', 'tpr_at_0.1pct_fpr', 'resolved_1pct', 'resolved_0.1pct',
    'members', 'nonmembers'} for one attack."""
    from sklearn.metrics import roc_auc_score, roc_curve

    members, nonmembers = _scores("member", member_scores), _scores("non-member", nonmember_scores)
    y = np.concatenate([np.ones(members.size), np.zeros(nonmembers.size)])
    s = np.concatenate([members, nonmembers])
    fpr, tpr, _ = roc_curve(y, s)
    out = {"auc": float(roc_auc_score(y, s)), "members": int(members.size), "nonmembers": int(nonmembers.size)}
    for name, target in LOW_FPRS.items():
        out[f"tpr_at_{name}_fpr"] = tpr_at_fpr(fpr, tpr, target)
        out[f"resolved_{name}"] = bool(nonmembers.size >= math.ceil(1 / target))
    return out
