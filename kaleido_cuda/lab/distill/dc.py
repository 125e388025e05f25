"""Gradient matching (DC; Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient Matching", ICLR
2021), with DSA augmentation (Zhao & Bilen, ICML 2021).

Every iteration draws a freshly initialised network and alternates, `outer_loop` times: for each
class, the gradient of the classification loss on augmented real images and on the class's synthetic
images (same DSA seed) with respect to the network's weights; the synthetic images take one SGD step
on the summed layer-wise distance between the two; then the network trains `inner_loop` epochs on
the current synthetic set. Loop counts by IPC, learning rates and the distance are DC's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..distributed import all_sum, current_world, sync_rows
from ..train.models import get_model
from .common import (Augmenter, History, LoopOptions, class_generator, class_rows, run_iterations,
                     shard_classes)

# IPC -> (outer_loop, inner_loop), DC's schedule; other IPCs take the nearest smaller entry.
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


@dataclass
class DCConfig(LoopOptions):
    lr_img: float = 0.1
    momentum: float = 0.5
    lr_net: float = 0.01
    batch_real: int = 256
    batch_train: int = 256
    outer_loop: Optional[int] = None   # None: DC's schedule for the IPC
    inner_loop: Optional[int] = None


def loops_for(ipc: int) -> Tuple[int, int]:
    return LOOPS[max(k for k in LOOPS if k <= ipc)] if ipc >= 1 else LOOPS[1]


def gradient_distance(real: List[torch.Tensor], syn: List[torch.Tensor]) -> torch.Tensor:
    """DC's layer-wise distance: for every weight with an output dimension, sum over output units of
    1 - cosine(real gradient, synthetic gradient); biases and norm scales (1-D) are left out."""
    total = syn[0].new_zeros(())
    for gr, gs in zip(real, syn):
        if gr.dim() == 1:
            continue
        gr, gs = gr.reshape(gr.shape[0], -1), gs.reshape(gs.shape[0], -1)
        cos = (gr * gs).sum(-1) / (gr.norm(dim=-1) * gs.norm(dim=-1) + 1e-6)
        total = total + (1 - cos).sum()
    return total


def distill_dc(syn_images: torch.Tensor, syn_labels: torch.Tensor, real_images: torch.Tensor,
               real_labels: torch.Tensor, num_classes: int, cfg: DCConfig, checkpoint: Optional[str] = None,
               resume: bool = False, progress: bool = True) -> Tuple[torch.Tensor, History]:
    """Runs DC from the initial synthetic set; returns the final images and the loss history.
    Checkpoints and resume as distill_dm.

    Under torchrun the matching is split by class as in distill_dm: each rank matches and updates
    the classes it owns, each class drawing its real batches and augmentation seeds from a generator
    keyed by (seed, iteration, class). The network's training between matching rounds needs the
    whole synthetic set, so every rank receives the owners' rows before it (a broadcast of IPC x
    classes images, small); every rank then trains the same network from the same data and draws.
    Each image row's gradient comes from its own class's term alone, so the set is the same, bit
    for bit, for any number of ranks (same threads per process)."""
    world = current_world()
    images = syn_images.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum)
    real_rows, syn_rows = class_rows(real_labels, num_classes), class_rows(syn_labels, num_classes)
    ipc = min(len(r) for r in syn_rows)
    outer, inner = loops_for(ipc)
    outer = cfg.outer_loop or outer
    inner = cfg.inner_loop or inner
    augment = Augmenter(cfg.augment)
    size = tuple(real_images.shape[-2:])
    mine, row_owner = shard_classes(world, syn_labels, num_classes)

    def step(it: int, g: torch.Generator) -> float:
        net = get_model(cfg.model, real_images.shape[1], num_classes, size, cfg.width, cfg.depth).to(images.device)
        net.train()
        net_opt = torch.optim.SGD(list(net.parameters()), lr=cfg.lr_net)
        total = 0.0
        # One generator per class for the whole iteration, consumed round after round.
        class_g = {c: class_generator(cfg.seed, it, c) for c in mine}
        for ol in range(outer):
            loss = images.new_zeros(())
            for c in mine:
                loss = loss + _class_term(net, c, images[syn_rows[c]], real_images, real_rows[c], class_g[c], cfg,
                                          augment)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            if ol == outer - 1:
                break
            # The network learns from the current synthetic set before the next matching round: all
            # of it, so every rank first takes the rows the other ranks own.
            sync_rows(world, images, row_owner)
            _train_network(net, net_opt, images.detach(), syn_labels, inner, cfg.batch_train, augment, g)
        return all_sum(world, total) / outer

    history = run_iterations("dc", cfg, images, syn_labels, opt, step, augment, checkpoint, resume, progress,
                             world=world, row_owner=row_owner)
    return images.detach(), history


def _class_term(net, c: int, syn: torch.Tensor, real_images: torch.Tensor, rows: torch.Tensor, gc: torch.Generator,
                cfg: DCConfig, augment: Augmenter) -> torch.Tensor:
    """Class c's term of a matching round: the distance between the network's weight gradients on a
    real batch (drawn from gc) and on the class's synthetic images `syn`, both augmented with one
    seed from gc; differentiable in syn."""
    params = list(net.parameters())
    real = real_images[rows[torch.randperm(len(rows), generator=gc)[:cfg.batch_real]].to(real_images.device)]
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gc))
    target_real = torch.full((len(real),), c, device=real.device)
    g_real = torch.autograd.grad(F.cross_entropy(net(augment(real, seed)), target_real), params)
    target_syn = torch.full((len(syn),), c, device=syn.device)
    g_syn = torch.autograd.grad(F.cross_entropy(net(augment(syn, seed)), target_syn), params, create_graph=True)
    return gradient_distance([t.detach() for t in g_real], list(g_syn))


def _train_network(net, net_opt, data: torch.Tensor, target: torch.Tensor, epochs: int, batch: int,
                   augment: Augmenter, g: torch.Generator) -> None:
    """`epochs` epochs of the matching network on the synthetic set (order drawn from g, per-sample
    augmentation draws, as DC trains its network between matching rounds)."""
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=g).to(data.device)
        for start in range(0, len(data), batch):
            idx = order[start:start + batch]
            x = augment(data[idx], -1)
            net_loss = F.cross_entropy(net(x), target[idx])
            net_opt.zero_grad(set_to_none=True)
            net_loss.backward()
            net_opt.step()
