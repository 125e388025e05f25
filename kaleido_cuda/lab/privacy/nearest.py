"""Explicit privacy: how closely each synthetic image copies some training image.

For every query image: its largest SSIM and its smallest L2 distance to any training image (the
nearest neighbour), on images in [0, 1]. The same statistics for held-out real test images against
the training images give the level that an honest synthetic set should not exceed: real images of
the same classes are that close to the training set without copying any of it.

SSIM is Wang et al.'s, as scikit-image computes it with gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1 (an 11x11 Gaussian window, windows wholly inside the image,
K1 0.01, K2 0.03, mean over windows and channels), computed for all pairs at once (`pairwise_ssim`,
checked against scikit-image in the tests); L2 is the Euclidean distance between flattened images in
[0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SSIM_COPY_LEVEL = 0.9  # "frac_ssim_over_0.9": images this similar to a training image look like copies


@dataclass
class NearestNeighbours:
    ssim: torch.Tensor       # (Q,) largest SSIM of each query to any training image
    ssim_index: torch.Tensor  # (Q,) which training image
    l2: torch.Tensor         # (Q,) smallest L2 distance to any training image
    l2_index: torch.Tensor

    def summary(self, prefix: str = "") -> dict:
        """nn_ssim_mean, nn_ssim_max, nn_l2_mean, nn_l2_min, frac_ssim_over_0.9, each with `prefix`."""
        return {f"{prefix}nn_ssim_mean": float(self.ssim.mean()), f"{prefix}nn_ssim_max": float(self.ssim.max()),
                f"{prefix}nn_l2_mean": float(self.l2.mean()), f"{prefix}nn_l2_min": float(self.l2.min()),
                f"{prefix}frac_ssim_over_{SSIM_COPY_LEVEL}": float((self.ssim > SSIM_COPY_LEVEL).float().mean())}


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(size * size,) normalised Gaussian weights (size 11 is scikit-image's truncate=3.5 at sigma 1.5)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x / sigma) ** 2 / 2)
    g = g / g.sum()
    return torch.outer(g, g).flatten()


def pairwise_ssim(queries: torch.Tensor, train: torch.Tensor, *, query_block: int = 64, train_block: int = 1024,
                  window: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """(Q, T) SSIM of every query against every training image, images in [0, 1] (data range 1).

    Equal to skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1) on each pair (tests check it), computed for all pairs
    at once: the window means and variances are per image, and the cross term
    sum_k g_k x_k y_k at every window position is a matrix product, so the pairs cost a few batched
    convolutions and matrix products instead of one SSIM call each."""
    c1, c2 = k1 ** 2, k2 ** 2
    g = _gaussian_window(window, sigma).float().view(1, -1, 1)
    q_count, t_count, channels = len(queries), len(train), queries.shape[1]
    out = torch.zeros(q_count, t_count)

    def stats(images):  # per channel: windows (N, K, P), mean and variance at every position (N, P)
        for c in range(channels):
            win = F.unfold(images[:, c:c + 1].float(), window)
            mu = (win * g).sum(1)
            var = (win * win * g).sum(1) - mu * mu
            yield win, mu, var

    for t0 in range(0, t_count, train_block):
        t_stats = list(stats(train[t0:t0 + train_block]))
        for q0 in range(0, q_count, query_block):
            total = 0
            for (tw, tmu, tvar), (qw, qmu, qvar) in zip(t_stats, stats(queries[q0:q0 + query_block])):
                # E_g[x y] at each window position p: (P, Q, K) @ (P, K, T), then the covariance in place.
                # In-place steps: the (Q, T, P) tensors are large, and fresh ones cost page faults;
                # the operations and their order are those of the formula, so the values are too.
                cov = torch.bmm((qw * g).permute(2, 0, 1), tw.permute(2, 1, 0)).permute(1, 2, 0)
                mu_xy = qmu[:, None, :] * tmu[None, :, :]
                cov.sub_(mu_xy)
                num = mu_xy.mul_(2).add_(c1).mul_(cov.mul_(2).add_(c2))  # (2 mu_xy + c1) (2 cov + c2)
                den = (qmu[:, None, :] ** 2 + tmu[None, :, :] ** 2).add_(c1)
                den.mul_((qvar[:, None, :] + tvar[None, :, :]).add_(c2))
                total = total + num.div_(den).mean(-1)
            out[q0:q0 + query_block, t0:t0 + train_block] = (total / channels).cpu()
    return out


def nearest_neighbours(queries: torch.Tensor, train: torch.Tensor) -> NearestNeighbours:
    """Nearest training image of every query by SSIM (largest) and by L2 (smallest); images in [0, 1]."""
    if queries.dim() != 4 or train.dim() != 4 or queries.shape[1:] != train.shape[1:]:
        raise ValueError(f"nearest_neighbours: queries and train must be (N, C, H, W) of one image shape, got "
                         f"{tuple(queries.shape)} and {tuple(train.shape)}")
    with torch.no_grad():
        s = pairwise_ssim(queries, train)
        d = torch.cdist(queries.flatten(1).double(), train.flatten(1).double()).float().cpu()
    ssim_max, ssim_idx = s.max(dim=1)
    l2_min, l2_idx = d.min(dim=1)
    return NearestNeighbours(ssim_max, ssim_idx, l2_min, l2_idx)
