"""Realistic patch selection and relabelling (RDED; Sun, Shi, Zhang, Chen & Wang, "On the Diversity
and Realism of Distilled Dataset: An Efficient Dataset Distillation Paradigm", CVPR 2024).

No optimisation: an observer network trained on the real training split scores random crops of
each class's images, and the most realistic ones (the lowest observer cross-entropy for their own
class) become the distilled images, factor x factor of them stitched into one image. The
evaluation then distils the observer into each model on every augmented batch (train/evaluate.py,
protocol 'kd'). As RDED's code:
- images_per_class images of a class are drawn (all of a smaller class), crops_per_image random
  square crops of each (RandomResizedCrop's area scale (0.08, 1), aspect ratio 1); each image keeps
  its best crop and the class keeps its ipc * factor^2 best;
- crop k of the class's sorted list goes to image k mod ipc, tile k // ipc (row-major);
- factor 1 (no stitching) for images up to 64 px a side, 2 above (`default_factor`).
Departures: a crop is scored resized to the full image side (RDED pads the small tile with zeros);
tiles are resized with antialiased bilinear interpolation (RDED: nearest).

The initialisation applies to the selected crops before they are stitched: 'real' keeps them,
'kt' puts them through KT (kt_perturb, with the run's views and families), 'noise' replaces the
tiles with N(0, 1) noise (no training image is used; what the observer's labels alone teach).
Every tile records the training image it was cut from (`sources`), the canaries of an audit.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ...init import kt_perturb


@dataclass
class RDEDConfig:
    factor: Optional[int] = None    # tiles per side of a stitched image (None: default_factor of the image side)
    images_per_class: int = 300     # RDED's mipc
    crops_per_image: int = 5        # RDED's num_crop
    min_scale: float = 0.08         # RandomResizedCrop's area scale range
    max_scale: float = 1.0
    observer: str = ""              # observer checkpoint (rded/observer.py); "" : trained or read from the cache
    observer_epochs: int = 100      # when the observer is trained here
    model: str = "convnet_bn"       # RDED's Conv3 is a ConvNet with batch norm
    width: int = 128
    depth: Optional[int] = None
    seed: int = 0
    iterations: int = 0             # RDED does not iterate (kept for the loops' common reporting)

    def resolve_factor(self, size: Tuple[int, int]) -> None:
        if self.factor is None:
            self.factor = default_factor(size)

    def check(self, size: Tuple[int, int]) -> None:
        if self.factor is None:
            raise ValueError("rded: the factor is not set (resolve_factor fills it from the image side)")
        if self.factor < 1 or size[0] % self.factor or size[1] % self.factor:
            raise ValueError(f"rded: factor {self.factor} must be >= 1 and divide the image side {size[0]}x{size[1]}")
        if self.images_per_class < 1 or self.crops_per_image < 1:
            raise ValueError("rded: images_per_class and crops_per_image must be >= 1")
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ValueError(f"rded: the crop scale range must satisfy 0 < min ({self.min_scale}) <= max "
                             f"({self.max_scale}) <= 1")

    def check_ipc(self, ipc: int, class_sizes) -> None:
        """IPC that the crops can fill: each drawn image gives one crop, a stitched image factor^2."""
        need = ipc * self.factor ** 2
        have = min(min(int(n) for n in class_sizes), self.images_per_class)
        if need > have:
            raise ValueError(f"rded: ipc {ipc} with factor {self.factor} needs {need} crops per class, from as many "
                             f"images; the smallest class gives {have} (images_per_class {self.images_per_class}); "
                             "lower --ipc or --rded-factor")


def default_factor(size: Tuple[int, int]) -> int:
    """RDED's scripts: one crop per image for the low-resolution sets (CIFAR-10/100 at 32x32,
    Tiny ImageNet at 64x64), 2x2 crops stitched for the ImageNet subsets (128 px and up), where a
    quarter-size tile still shows an object."""
    return 1 if max(size) <= 64 else 2


def crop_boxes(n: int, size: Tuple[int, int], cfg: RDEDConfig, g: torch.Generator) -> torch.Tensor:
    """(n, 4) integer boxes (top, left, height, width) of square random resized crops."""
    h, w = size
    area = h * w * (cfg.min_scale + (cfg.max_scale - cfg.min_scale) * torch.rand(n, generator=g, dtype=torch.float64))
    side = area.sqrt().round().clamp(1, min(h, w)).long()
    top = (torch.rand(n, generator=g, dtype=torch.float64) * (h - side + 1)).floor().long()
    left = (torch.rand(n, generator=g, dtype=torch.float64) * (w - side + 1)).floor().long()
    return torch.stack([top, left, side, side], dim=1)


def cut(images: torch.Tensor, boxes: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Each image's box, resized (bilinear) to `size`."""
    out = [F.interpolate(img[None, :, t:t + hh, l:l + ww], size=size, mode="bilinear", align_corners=False,
                         antialias=True) for img, (t, l, hh, ww) in zip(images, boxes.tolist())]
    return torch.cat(out)


@torch.no_grad()
def class_crops(observer, images: torch.Tensor, rows: torch.Tensor, c: int, keep: int, cfg: RDEDConfig,
                g: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Class c's `keep` most realistic crops, full size, best first, and the row of each one's
    source image."""
    size = tuple(images.shape[-2:])
    drawn = rows[torch.randperm(len(rows), generator=g)[:cfg.images_per_class]]
    best_crop, best_loss = None, None
    for _ in range(cfg.crops_per_image):
        crops = cut(images[drawn.to(images.device)], crop_boxes(len(drawn), size, cfg, g), size)
        target = torch.full((len(crops),), c, dtype=torch.long, device=crops.device)
        loss = F.cross_entropy(observer(crops), target, reduction="none").cpu()
        if best_crop is None:
            best_crop, best_loss = crops, loss
        else:
            better = loss < best_loss
            best_crop[better.to(crops.device)] = crops[better.to(crops.device)]
            best_loss = torch.where(better, loss, best_loss)
    order = torch.argsort(best_loss, stable=True)[:keep]
    return best_crop[order.to(best_crop.device)], drawn[order]


def stitch(tiles: torch.Tensor, ipc: int, factor: int) -> torch.Tensor:
    """(ipc * factor^2, C, H, W) full-size tiles -> (ipc, C, H, W): tile k goes to image k mod ipc
    at grid position k // ipc (row-major), each resized to (H / factor, W / factor)."""
    if factor == 1:
        return tiles.clone()
    c, h, w = tiles.shape[1:]
    small = F.interpolate(tiles, size=(h // factor, w // factor), mode="bilinear", align_corners=False,
                          antialias=True)
    out = tiles.new_empty((ipc, c, h, w))
    for k in range(factor * factor):
        r, q = divmod(k, factor)
        out[:, :, r * h // factor:(r + 1) * h // factor, q * w // factor:(q + 1) * w // factor] = \
            small[k * ipc:(k + 1) * ipc]
    return out


def _initialise_tiles(tiles: torch.Tensor, init: str, strength: float, seed: int, c: int, views: int,
                      families) -> torch.Tensor:
    if init == "real":
        return tiles
    if init == "kt":  # one KT seed per class, so classes do not share draws
        return kt_perturb(tiles, strength, seed * 1_000_003 + c, views, families)
    g = torch.Generator().manual_seed(seed * 1_000_003 + c)
    return torch.randn(tiles.shape, generator=g, dtype=tiles.dtype).to(tiles.device)


def rded_set(observer, images: torch.Tensor, labels: torch.Tensor, ipc: int, num_classes: int, cfg: RDEDConfig,
             init: str = "real", strength: float = 1.0, views: int = 1,
             families=None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RDED's distilled set: (ipc * num_classes, C, H, W) stitched images (class-major), their
    labels, and (N, factor^2) the training row of each tile's source (-1 for noise tiles)."""
    cfg = dataclasses.replace(cfg)
    cfg.resolve_factor(tuple(images.shape[-2:]))
    cfg.check(tuple(images.shape[-2:]))
    rows_of = [torch.nonzero(labels.cpu() == c).flatten() for c in range(num_classes)]
    cfg.check_ipc(ipc, [len(r) for r in rows_of])
    observer.eval()
    out, sources = [], []
    keep = ipc * cfg.factor ** 2
    for c in range(num_classes):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_033 + c)
        tiles, rows = class_crops(observer, images, rows_of[c], c, keep, cfg, g)
        tiles = _initialise_tiles(tiles, init, strength, cfg.seed, c, views, families)
        out.append(stitch(tiles, ipc, cfg.factor))
        rows = rows if init != "noise" else torch.full_like(rows, -1)
        sources.append(rows.view(cfg.factor ** 2, ipc).t())
    syn_labels = torch.arange(num_classes, device=labels.device).repeat_interleave(ipc)
    return torch.cat(out), syn_labels, torch.cat(sources)
