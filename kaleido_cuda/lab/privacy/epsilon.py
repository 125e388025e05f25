"""An empirical lower bound on epsilon from a membership attack (Jagielski et al., "Auditing
Differentially Private Machine Learning: How Private is Private SGD?", NeurIPS 2020).

If a mechanism is (epsilon, delta)-DP, every test that decides "member" or "not" obeys
    TPR <= e^eps FPR + delta   and   TNR <= e^eps FNR + delta,
so a test with false-positive rate FPR and false-negative rate FNR proves
    eps >= max(log((1 - delta - FNR) / FPR), log((1 - delta - FPR) / FNR)).
The rates are estimated from finitely many members and non-members, so the bound uses the upper
ends of their two-sided Clopper-Pearson intervals (scipy.stats.beta): with 95% confidence the true
epsilon is at least the figure. The test is a threshold on the attack's score; choosing the best
threshold on the same examples would overstate the bound, so the threshold is chosen on a random
half of the members and non-members (halfway between two of their scores; the middle one of
those that tie) and the bound is computed on the other half.
"""
from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple

import numpy as np


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """Upper end of the two-sided Clopper-Pearson interval for k successes in n trials."""
    from scipy.stats import beta

    if k >= n:
        return 1.0
    return float(beta.ppf(1 - (1 - confidence) / 2, k + 1, n - k))


def epsilon_at(fpr_hi: float, fnr_hi: float, delta: float) -> float:
    """The epsilon a test with these (upper-bounded) error rates proves; 0 when it proves nothing."""
    bounds = [0.0]
    for a, b in ((fnr_hi, fpr_hi), (fpr_hi, fnr_hi)):
        if b > 0 and 1 - delta - a > 0:
            bounds.append(math.log((1 - delta - a) / b))
    return max(bounds)


def _counts(members: np.ndarray, nonmembers: np.ndarray, t: float) -> Tuple[int, int]:
    """(false positives, false negatives) of the test "score >= t means member"."""
    return int((nonmembers >= t).sum()), int((members < t).sum())


def _bound(members, nonmembers, t, delta, confidence) -> float:
    fp, fn = _counts(members, nonmembers, t)
    return epsilon_at(clopper_pearson_upper(fp, nonmembers.size, confidence),
                      clopper_pearson_upper(fn, members.size, confidence), delta)


def epsilon_lower_bound(member_scores: Sequence[float], nonmember_scores: Sequence[float], delta: float = 1e-5,
                        confidence: float = 0.95, seed: int = 0) -> Dict[str, float]:
    """{'epsilon_lb', 'threshold', 'fpr', 'fnr', 'members', 'nonmembers', 'delta', 'confidence'}: the
    bound on the held-out half, with the threshold chosen on the other half (see the module doc)."""
    members = np.asarray(member_scores, dtype=np.float64).ravel()
    nonmembers = np.asarray(nonmember_scores, dtype=np.float64).ravel()
    if members.size < 2 or nonmembers.size < 2:
        raise ValueError("epsilon_lower_bound: needs at least 2 members and 2 non-members")
    if not (0 < delta < 1 and 0 < confidence < 1):
        raise ValueError(f"epsilon_lower_bound: delta and confidence must lie in (0, 1), got {delta}, {confidence}")
    rng = np.random.default_rng(seed)
    m_perm, n_perm = rng.permutation(members.size), rng.permutation(nonmembers.size)
    m_pick, m_eval = members[m_perm[: members.size // 2]], members[m_perm[members.size // 2:]]
    n_pick, n_eval = nonmembers[n_perm[: nonmembers.size // 2]], nonmembers[n_perm[nonmembers.size // 2:]]
    # Thresholds halfway between consecutive scores (and beyond both ends), so that a threshold
    # never sits on a score of the half that chose it.
    u = np.unique(np.concatenate([m_pick, n_pick]))
    candidates = np.concatenate([[u[0] - 1.0], (u[:-1] + u[1:]) / 2, [u[-1] + 1.0]])
    bounds = np.array([_bound(m_pick, n_pick, t, delta, confidence) for t in candidates])
    ties = candidates[bounds >= bounds.max() - 1e-12]
    best = ties[(len(ties) - 1) // 2]  # of thresholds that tie, the middle one
    fp, fn = _counts(m_eval, n_eval, best)
    return {"epsilon_lb": _bound(m_eval, n_eval, best, delta, confidence), "threshold": float(best),
            "fpr": fp / n_eval.size, "fnr": fn / m_eval.size, "members": int(m_eval.size),
            "nonmembers": int(n_eval.size), "delta": delta, "confidence": confidence}
