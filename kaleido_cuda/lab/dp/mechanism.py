"""The Gaussian mechanism of DP distribution matching: a class's mean embedding released as the
sum of per-example clipped embeddings plus Gaussian noise.

One iteration, for every class c:
- Poisson sampling: each training image of class c joins the batch independently with probability
  q (the sample rate; `poisson_batch`);
- each sampled image's embedding e_i (after its augmentation) is clipped to L2 norm at most C
  (`clip_rows`), so adding or removing one image moves the class's sum by at most C;
- the released class mean is (sum_i clip(e_i) + N(0, sigma^2 C^2 I)) / (q n_c), n_c the class's
  size (`noisy_clipped_mean`). Dividing by the expected batch size q n_c instead of the sampled
  one keeps the denominator free of the sample: the class sizes are treated as public, as DP-SGD
  treats the dataset size.
An image belongs to one class, so the sums of all classes together move by at most C when one
image is added or removed: one iteration is one Poisson-subsampled Gaussian mechanism of noise
multiplier sigma, whatever the number of classes, and the accountant (accounting.py) composes
the iterations. The synthetic side is not private; its embeddings are clipped the same way so
that both sides of the matching are means of clipped vectors.

The clip norm C may be given, or set per iteration from data-independent inputs only
(`auto_clip`): the median embedding norm of Gaussian noise images through that iteration's
network. ConvNet's instance norm fixes the scale of its features, so noise and real images have
embeddings of nearly the same norm (about 23 and 25 for the digits' ConvNet), and C follows the
architecture without looking at the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

AUTO_CLIP_IMAGES = 64  # noise images per iteration for the automatic clip norm


def clip_rows(x: torch.Tensor, clip: float) -> torch.Tensor:
    """Each row of x (N, D) scaled down to L2 norm at most `clip` (differentiable)."""
    norms = x.norm(dim=1, keepdim=True)
    return x * torch.clamp(clip / norms.clamp_min(1e-12), max=1.0)


def poisson_batch(n: int, sample_rate: float, generator: torch.Generator) -> torch.Tensor:
    """The indices in [0, n) that join a Poisson-sampled batch: each independently with
    probability sample_rate (all of them when it is 1)."""
    if sample_rate >= 1:
        return torch.arange(n)
    return torch.nonzero(torch.rand(n, generator=generator) < sample_rate).flatten()


def noisy_clipped_mean(embeddings: torch.Tensor, dim: int, clip: float, noise_multiplier: float,
                       expected_size: float, generator: torch.Generator) -> torch.Tensor:
    """(sum of the clipped rows of embeddings (B, dim) + N(0, (noise_multiplier clip)^2 I)) /
    expected_size; B may be 0 (an empty Poisson batch releases noise only). The noise is drawn
    on the CPU from `generator`, so a run is the same on every device and resumes exactly."""
    total = clip_rows(embeddings, clip).sum(0) if len(embeddings) else embeddings.new_zeros(dim)
    noise = torch.randn(dim, generator=generator, dtype=torch.float64) * (noise_multiplier * clip)
    return (total + noise.to(total.dtype).to(total.device)) / expected_size


@torch.no_grad()
def auto_clip(net: torch.nn.Module, image_shape, generator: torch.Generator, device) -> float:
    """The median embedding norm of AUTO_CLIP_IMAGES N(0, 1) images (the normalised data's scale)
    through `net`: a clip norm that depends on the network and not on the training data."""
    noise = torch.randn((AUTO_CLIP_IMAGES, *image_shape), generator=generator).to(device)
    return float(net.embed(noise).norm(dim=1).median())


@dataclass
class ClassMeanMechanism:
    """One iteration's mechanism: Poisson batches, and the noisy clipped mean of a class's real
    embeddings beside the clipped mean of its synthetic ones."""
    noise_multiplier: float
    sample_rate: float
    clip: float

    def batch(self, class_size: int, generator: torch.Generator) -> torch.Tensor:
        return poisson_batch(class_size, self.sample_rate, generator)

    def real_mean(self, embeddings: Optional[torch.Tensor], dim: int, class_size: int,
                  generator: torch.Generator) -> torch.Tensor:
        """embeddings: the sampled batch's (None for an empty batch)."""
        if embeddings is None:
            embeddings = torch.zeros(0, dim)
        return noisy_clipped_mean(embeddings, dim, self.clip, self.noise_multiplier, self.sample_rate * class_size,
                                  generator)

    def synthetic_mean(self, embeddings: torch.Tensor) -> torch.Tensor:
        return clip_rows(embeddings, self.clip).mean(0)
