"""Membership-inference attack scores; higher always means "more likely a member".

- Data attacks use only the released synthetic images: a candidate's score is its largest SSIM
  (or its negated smallest L2 distance) to any synthetic image. A distilled set that kept a
  recognisable copy of a training image gives that image away.
- Model attacks use a model trained on the synthetic set: the negated loss of the candidate, and
  LiRA's statistic, the logit-scaled confidence in the true class, log(p / (1 - p)), computed as
  z_y - logsumexp(z_other) so that it stays finite when p rounds to 1.
- LiRA (Carlini et al. 2022) compares a candidate's statistic on the target model with its
  statistics on shadow models trained with it ("in") and without it ("out"): a Gaussian per
  candidate. Online: the likelihood ratio of the in and out Gaussians. Offline (only out shadows):
  how far into the upper tail of the out Gaussian the target's statistic lies. With few shadows
  the per-candidate variance is noisy; as in the paper, a variance shared by all candidates is
  used below 64 shadows per side (`global_variance`).
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .nearest import pairwise_ssim

GLOBAL_VARIANCE_BELOW = 64  # shadows per side under which LiRA uses one variance for all candidates


def data_attack_scores(candidates: torch.Tensor, synthetic: torch.Tensor) -> Dict[str, torch.Tensor]:
    """{'ssim': (M,) largest SSIM to any synthetic image, 'neg_l2': (M,) minus the smallest L2
    distance}, images in [0, 1] of one shape."""
    if candidates.dim() != 4 or synthetic.dim() != 4 or candidates.shape[1:] != synthetic.shape[1:]:
        raise ValueError(f"data_attack_scores: candidates and synthetic images must be (N, C, H, W) of one shape, "
                         f"got {tuple(candidates.shape)} and {tuple(synthetic.shape)}")
    with torch.no_grad():
        ssim = pairwise_ssim(candidates, synthetic).max(dim=1).values
        l2 = torch.cdist(candidates.flatten(1).double(), synthetic.flatten(1).double()).min(dim=1).values
    return {"ssim": ssim.float().cpu(), "neg_l2": (-l2).float().cpu()}


@torch.no_grad()
def model_scores(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 batch_size: int = 512) -> Dict[str, torch.Tensor]:
    """{'neg_loss': minus the cross-entropy, 'logit_conf': LiRA's log(p_y / (1 - p_y))} per image,
    from the model in eval mode."""
    model.eval()
    neg_loss, conf = [], []
    for start in range(0, len(images), batch_size):
        z = model(images[start:start + batch_size]).double()
        y = labels[start:start + batch_size]
        true = z.gather(1, y[:, None]).squeeze(1)
        other = z.scatter(1, y[:, None], float("-inf")).logsumexp(1)
        neg_loss.append(-F.cross_entropy(z, y, reduction="none"))
        conf.append(true - other)
    return {"neg_loss": torch.cat(neg_loss).float().cpu(), "logit_conf": torch.cat(conf).float().cpu()}


def _as_array(name: str, a, dims: int, dtype=np.float64) -> np.ndarray:
    a = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=dtype)
    if a.ndim != dims:
        raise ValueError(f"LiRA: {name} must have {dims} dimension(s), got shape {a.shape}")
    return a


def _fit(stats: np.ndarray, mask: np.ndarray, side: str, global_variance: Optional[bool]):
    """Mean and standard deviation per candidate of the shadow statistics where mask holds."""
    counts = mask.sum(axis=0)
    if (counts < 1).any():
        raise ValueError(f"LiRA: {int((counts < 1).sum())} candidate(s) have no '{side}' shadow model; "
                         "train more shadows")
    mean = np.where(mask, stats, 0.0).sum(axis=0) / counts
    resid = np.where(mask, stats - mean, 0.0)
    if global_variance is None:
        global_variance = counts.min() < GLOBAL_VARIANCE_BELOW
    if global_variance:
        std = np.full_like(mean, np.sqrt((resid ** 2).sum() / counts.sum()))
    else:
        std = np.sqrt((resid ** 2).sum(axis=0) / counts)
    return mean, np.maximum(std, 1e-6)


def lira_scores(target, shadow, in_mask, online: bool = True, global_variance: Optional[bool] = None) -> np.ndarray:
    """(M,) LiRA scores of M candidates. target: (M,) statistics on the attacked model; shadow:
    (K, M) statistics on K shadow models; in_mask: (K, M), True where shadow k trained on
    candidate m. Online: log N(target; in fit) - log N(target; out fit). Offline (only the out
    shadows are used): log P(Z <= target), Z from the out fit."""
    from scipy.stats import norm

    target, shadow = _as_array("target", target, 1), _as_array("shadow", shadow, 2)
    in_mask = _as_array("in_mask", in_mask, 2, dtype=bool)
    if shadow.shape != in_mask.shape or shadow.shape[1] != target.shape[0] or shadow.shape[0] < 2:
        raise ValueError(f"LiRA: need shadow statistics and in_mask of shape (K >= 2, M = {target.shape[0]}), "
                         f"got {shadow.shape} and {in_mask.shape}")
    mean_out, std_out = _fit(shadow, ~in_mask, "out", global_variance)
    if not online:
        return norm.logcdf(target, mean_out, std_out)
    mean_in, std_in = _fit(shadow, in_mask, "in", global_variance)
    return norm.logpdf(target, mean_in, std_in) - norm.logpdf(target, mean_out, std_out)
