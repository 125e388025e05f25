"""Initial synthetic sets: Gaussian noise, selected real images, or selected real images through the
Kaleidoscopic Transformation (KT), the paper's private initialisation.

    images, labels = initialize(ds.train_images, ds.train_labels, ipc=10, method="kt", seed=0)

Choices (all documented in docs/distill.md):
- selection 'random': `ipc` images per class drawn without replacement by a generator seeded with
  `seed`, so 'real' and 'kt' start from the same images for the same seed;
- 'noise': N(0, 1) in the normalised space, i.e. noise with the data's per-channel mean and std;
- 'kt': the 'kt' preset of kaleido_cuda.presets at `strength` (rotation up to 180 degrees,
  log-uniform scale 0.7-1.4, shear up to 15 degrees, translation up to 0.25, flips, a 2-6 mirror
  kaleidoscope with reflection padding, DSA's colour ranges, noise of 0.05-0.2 data std; strength
  scales every range). Images are normalised (std 1), so the noise range is in data std as the
  preset intends.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .ops import kaleidoscope
from .presets import sample_params

METHODS = ("noise", "real", "kt")
SELECTIONS = ("random",)


def select_real(labels: torch.Tensor, ipc: int, num_classes: int, seed: int,
                eligible: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Indices of `ipc` images per class (class by class), drawn without replacement; with
    `eligible` ((N,) bool), among the eligible images only (DATM: those an expert classifies
    correctly)."""
    g = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    pool = labels if eligible is None else labels[eligible.cpu()]
    counts = torch.bincount(pool, minlength=num_classes)
    short = [c for c in range(num_classes) if int(counts[c]) < ipc]
    if short:
        which = "training images" if eligible is None else "eligible training images (classified correctly by the expert)"
        raise ValueError(f"initialize: ipc={ipc} is larger than the number of {which} of class(es) "
                         f"{short} (smallest class has {int(counts.min())})")
    picks = []
    for c in range(num_classes):
        members = torch.nonzero((labels == c) if eligible is None else (labels == c) & eligible.cpu()).flatten()
        picks.append(members[torch.randperm(len(members), generator=g)[:ipc]])
    return torch.cat(picks)


def initial_indices(labels: torch.Tensor, ipc: int, method: str, num_classes: int, seed: int,
                    eligible: Optional[torch.Tensor] = None) -> list:
    """The training images `initialize` starts from, as a list of indices (none for noise): what a
    run records as the canaries of a membership audit."""
    return [] if method == "noise" else select_real(labels, ipc, num_classes, seed, eligible).tolist()


def initialize(images: torch.Tensor, labels: torch.Tensor, ipc: int, method: str = "kt", strength: float = 1.0,
               seed: int = 0, selection: str = "random", num_classes: int = None,
               views: int = 1, families=None, eligible: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Initial synthetic images (ipc per class, class-major order) and their labels, on images'
    device. images: normalised (N, C, H, W) training images; labels: (N,) int64. views: for 'kt',
    how many independent KT views of each selected image are averaged (the paper recommends 3);
    families: for 'kt', the preset's families that are on (presets.KT_FAMILIES, default all);
    eligible: (N,) bool, the images the selection may draw (default all)."""
    if method not in METHODS:
        raise ValueError(f"initialize: unknown method {method!r}; choose one of {METHODS}")
    if selection not in SELECTIONS:
        raise ValueError(f"initialize: unknown selection {selection!r}; choose one of {SELECTIONS}")
    if not isinstance(ipc, int) or ipc < 1:
        raise ValueError(f"initialize: ipc must be a positive int, got {ipc!r}")
    if images.dim() != 4 or labels.shape != images.shape[:1]:
        raise ValueError(f"initialize: images must be (N, C, H, W) with labels (N,), got {tuple(images.shape)} "
                         f"and {tuple(labels.shape)}")
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    syn_labels = torch.arange(num_classes, device=labels.device).repeat_interleave(ipc)
    if method == "noise":
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn((num_classes * ipc, *images.shape[1:]), generator=g, dtype=images.dtype)
        return noise.to(images.device), syn_labels
    chosen = images[select_real(labels, ipc, num_classes, seed, eligible).to(images.device)].clone()
    if method == "real":
        return chosen, syn_labels
    return kt_perturb(chosen, strength, seed, views, families), syn_labels


def kt_perturb(images: torch.Tensor, strength: float = 1.0, seed: int = 0, views: int = 1,
               families=None) -> torch.Tensor:
    """The images through KT (the 'kt' preset at `strength`, `views` views averaged, the families
    that are on), without gradient: what 'kt' initialisation does to the images it selected."""
    extra = {} if families is None else {"families": families}
    params = sample_params(len(images), "kt", size=tuple(images.shape[-2:]), seed=seed, strength=strength,
                           views=views, **extra)
    with torch.no_grad():
        return kaleidoscope(images, params.to(images.device))
