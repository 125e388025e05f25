"""Distribution matching (DM; Zhao & Bilen, "Dataset Condensation with Distribution Matching", WACV 2023).

Every iteration draws a freshly initialised network; for each class, a batch of real images and the
class's synthetic images are augmented with one shared DSA seed, embedded (the features before the
classifier), and the squared distance between the two mean embeddings is added to the loss; the
synthetic images take one SGD step on the sum (learning rate 1, momentum 0.5, as DM's code).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from ..models import get_model
from .common import Augmenter, History, LoopOptions, class_rows, run_iterations


@dataclass
class DMConfig(LoopOptions):
    lr_img: float = 1.0
    momentum: float = 0.5
    batch_real: int = 256          # real images per class and iteration (the whole class if it has fewer)


def distill_dm(syn_images: torch.Tensor, syn_labels: torch.Tensor, real_images: torch.Tensor,
               real_labels: torch.Tensor, num_classes: int, cfg: DMConfig, checkpoint: Optional[str] = None,
               resume: bool = False, progress: bool = True) -> Tuple[torch.Tensor, History]:
    """Runs DM from the initial synthetic set; returns the final images and the loss history.
    With `checkpoint`, saves there every cfg.checkpoint_every_s seconds and at the end; with
    `resume`, continues from it (same result as an uninterrupted run)."""
    images = syn_images.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
    real_rows, syn_rows = class_rows(real_labels, num_classes), class_rows(syn_labels, num_classes)
    augment = Augmenter(cfg.augment)
    size = tuple(real_images.shape[-2:])

    def step(it: int, g: torch.Generator) -> float:
        net = get_model(cfg.model, real_images.shape[1], num_classes, size, cfg.width, cfg.depth).to(images.device)
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        loss = images.new_zeros(())
        for c in range(num_classes):
            rows = real_rows[c]
            real = real_images[rows[torch.randperm(len(rows), generator=g)[:cfg.batch_real]].to(real_images.device)]
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
            with torch.no_grad():
                mean_real = net.embed(augment(real, seed)).mean(0)
            mean_syn = net.embed(augment(images[syn_rows[c]], seed)).mean(0)
            loss = loss + ((mean_real - mean_syn) ** 2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    history = run_iterations("dm", cfg, images, syn_labels, opt, step, augment, checkpoint, resume, progress)
    return images.detach(), history
