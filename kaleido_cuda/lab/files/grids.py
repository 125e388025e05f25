"""PNG grids of image sets, written atomically."""
from __future__ import annotations

import torch

from .atomic import atomic_path


def save_grid(images01: torch.Tensor, path: str, nrow: int, pad: int = 2, scale: int = 2) -> None:
    """images01: (N, C, H, W) in [0, 1]; nrow images per row; each pixel drawn scale x scale."""
    from torchvision.utils import save_image

    x = images01.detach().float().cpu()
    if scale > 1:
        x = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    with atomic_path(path) as tmp:
        save_image(x, tmp, nrow=nrow, padding=pad, pad_value=1.0, format="png")


def save_class_grid(images01: torch.Tensor, labels: torch.Tensor, num_classes: int, path: str) -> None:
    """One row per class, its images side by side (rows padded with blanks to the longest class)."""
    per_class = [images01[labels.cpu() == c] for c in range(num_classes)]
    width = max(len(p) for p in per_class)
    blank = torch.ones_like(images01[:1])
    rows = [torch.cat([p, blank.expand(width - len(p), *p.shape[1:])]) if len(p) < width else p for p in per_class]
    save_grid(torch.cat(rows), path, nrow=width)


def save_pairs_grid(images01: torch.Tensor, neighbours01: torch.Tensor, path: str, pairs_per_row: int = 10) -> None:
    """Each image beside its nearest real neighbour: (image, neighbour) pairs, pairs_per_row per row."""
    pairs = torch.stack([images01, neighbours01], dim=1).flatten(0, 1)
    save_grid(pairs, path, nrow=2 * pairs_per_row)
