"""Privacy measurement of distilled sets.

- `nearest`: explicit privacy, how closely each synthetic image copies some training image
  (nearest-neighbour SSIM and L2).
- `metrics`: membership-inference figures from attack scores (ROC AUC, TPR at 1% and 0.1% FPR).
- `epsilon`: the empirical lower bound on epsilon implied by an attack (Clopper-Pearson).
- `membership`: members, non-members and canaries (the images selected for initialisation).
- `attacks`: attack scores: data attacks on the released images, model attacks (loss, LiRA's
  logit-scaled confidence), and LiRA's per-example Gaussian tests on shadow scores.
- `shadows`: LiRA's cached shadow models; `audit`, `audit_report`: the audit of a set and its files.
- `foreign`: reading sets made by other tools (DC-benchmark, MTT) for an audit.
"""
from .attacks import data_attack_scores, lira_scores, model_scores
from .epsilon import epsilon_lower_bound
from .membership import MembershipSplit, membership_split
from .metrics import attack_metrics
from .nearest import SSIM_COPY_LEVEL, NearestNeighbours, nearest_neighbours, pairwise_ssim

__all__ = ["NearestNeighbours", "SSIM_COPY_LEVEL", "nearest_neighbours", "pairwise_ssim", "attack_metrics",
           "epsilon_lower_bound", "data_attack_scores", "model_scores", "lira_scores", "MembershipSplit",
           "membership_split"]
