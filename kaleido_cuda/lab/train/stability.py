"""Label stability of KT images: does a KT-perturbed image still carry its class? The paper calls
its perturbations semantics-preserving; this measures it as the accuracy, on KT-perturbed copies
of the training images, of a network trained on the real training images (a classifier that knows
the classes, asked about their perturbed versions)."""
from __future__ import annotations

from typing import Optional

import torch

from ...ops import kaleidoscope
from ...presets import sample_params
from .evaluate import accuracy


@torch.no_grad()
def perturbed_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, views: int = 1,
                       strength: float = 1.0, families: Optional[str] = None, seed: int = 0,
                       batch_size: int = 1024) -> float:
    """model's accuracy on KT(images) (the 'kt' preset at `strength`, `views` averaged views, the
    preset's `families` or all of them), drawn from `seed`; images are normalised (N, C, H, W)."""
    extra = {} if families is None else {"families": families}
    params = sample_params(len(images), "kt", size=tuple(images.shape[-2:]), seed=seed, strength=strength,
                           views=views, **extra).to(images.device)
    return accuracy(model, kaleidoscope(images, params), labels, batch_size=batch_size)
