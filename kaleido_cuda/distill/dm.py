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

from ..distributed import all_sum, current_world
from ..models import get_model
from .common import (Augmenter, History, LoopOptions, class_generator, class_rows, run_iterations,
                     shard_classes)


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
    `resume`, continues from it (same result as an uninterrupted run).

    Under torchrun the classes are split across ranks: each class's term of the loss touches only
    that class's images, so a rank matches and updates its own classes, with the iteration's
    network drawn alike on every rank and each class's real batch and augmentation seed drawn from
    a generator keyed by (seed, iteration, class). The synthetic set is the same, bit for bit, for
    any number of ranks (with the same number of threads per process); the logged loss, summed
    across ranks, can differ in its last bits."""
    world = current_world()
    images = syn_images.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
    real_rows, syn_rows = class_rows(real_labels, num_classes), class_rows(syn_labels, num_classes)
    augment = Augmenter(cfg.augment)
    size = tuple(real_images.shape[-2:])
    mine, row_owner = shard_classes(world, syn_labels, num_classes)

    def step(it: int, g: torch.Generator) -> float:
        net = get_model(cfg.model, real_images.shape[1], num_classes, size, cfg.width, cfg.depth).to(images.device)
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        loss = images.new_zeros(())
        for c in mine:
            gc = class_generator(cfg.seed, it, c)
            rows = real_rows[c]
            real = real_images[rows[torch.randperm(len(rows), generator=gc)[:cfg.batch_real]].to(real_images.device)]
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gc))
            with torch.no_grad():
                mean_real = net.embed(augment(real, seed)).mean(0)
            mean_syn = net.embed(augment(images[syn_rows[c]], seed)).mean(0)
            loss = loss + ((mean_real - mean_syn) ** 2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return all_sum(world, float(loss.detach()))

    history = run_iterations("dm", cfg, images, syn_labels, opt, step, augment, checkpoint, resume, progress,
                             world=world, row_owner=row_owner)
    return images.detach(), history
