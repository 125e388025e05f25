"""Trajectory matching (MTT; Cazenavette, Wang, Torralba, Efros & Zhu, "Dataset Distillation by
Matching Training Trajectories", CVPR 2022).

Every iteration picks an expert trajectory (see buffer.py) and a start epoch e below
max_start_epoch; a student network starts from the expert's parameters at e and takes syn_steps
SGD steps on the augmented synthetic set with a learnable learning rate; the loss is the squared
distance from the student's end point to the expert's parameters at e + expert_epochs, divided by
the squared distance the expert itself travelled. The gradient flows through every student step
(create_graph) to the images and to the learning rate, which take one SGD step each (momentum 0.5,
as MTT's code). The student runs functionally over one flat parameter vector.

One departure from MTT's code: the rate is learned as its logarithm. MTT steps the rate itself; from
a KT or noise start the first students overshoot the expert several times over, the rate's gradient
is then large, and on the digits the rate went below zero within a few iterations (the student
stops, the images get no gradient, and the evaluation, which uses the learned rate as MTT does,
cannot train). In log space the rate stays positive and moves by a fraction of itself per step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..train.models import get_model
from .buffer import load_buffer, unflatten
from .common import Augmenter, History, LoopOptions, run_iterations

@dataclass
class MTTConfig(LoopOptions):
    buffer: str = ""                 # folder written by `kaleido buffer`
    dataset: Optional[str] = None    # checked against the buffer's (None: not checked)
    syn_steps: int = 20              # student steps per iteration
    expert_epochs: int = 2           # expert epochs the student must cover
    max_start_epoch: int = 10        # start epochs are drawn from [0, max_start_epoch)
    lr_img: float = 100.0
    lr_lr: float = 0.01              # step size of the log learning rate
    lr_init: float = 0.01            # the learnable rate starts at the experts' rate
    momentum: float = 0.5
    batch_syn: Optional[int] = None  # synthetic images per student step (None: all)


def distill_mtt(syn_images: torch.Tensor, syn_labels: torch.Tensor, real_images: torch.Tensor,
                real_labels: torch.Tensor, num_classes: int, cfg: MTTConfig, checkpoint: Optional[str] = None,
                resume: bool = False, progress: bool = True) -> Tuple[torch.Tensor, History]:
    """Runs MTT from the initial synthetic set; returns the final images and the loss history, whose
    `extra["lr"]` is the learned learning rate. Checkpoints and resume as distill_dm. The real images
    only identify the data (the experts saw them); MTT never reads them during distillation."""
    trajectories = checked_trajectories("mtt", cfg, real_images, num_classes)
    device = syn_images.device
    images = syn_images.detach().clone().requires_grad_(True)
    log_lr = torch.tensor(math.log(cfg.lr_init), device=device, requires_grad=True)
    opt = torch.optim.SGD([{"params": [images], "lr": cfg.lr_img}, {"params": [log_lr], "lr": cfg.lr_lr}],
                          momentum=cfg.momentum)
    augment = Augmenter(cfg.augment)
    net = get_model(cfg.model, real_images.shape[1], num_classes, tuple(real_images.shape[-2:]), cfg.width,
                    cfg.depth).to(device)
    net.train()
    labels = syn_labels.to(device)

    def step(it: int, g: torch.Generator) -> float:
        k = int(torch.randint(len(trajectories), (1,), generator=g))
        start_epoch = int(torch.randint(cfg.max_start_epoch, (1,), generator=g))
        loss = trajectory_loss(net, trajectories[k], start_epoch, cfg, images, labels, log_lr.exp(), augment, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    history = run_iterations("mtt", cfg, images, syn_labels, opt, step, augment, checkpoint, resume, progress,
                             extra={"log_lr": log_lr})
    history.extra = {"lr": math.exp(float(log_lr.detach()))}
    return images.detach(), history


def checked_trajectories(method: str, cfg: MTTConfig, real_images: torch.Tensor, num_classes: int):
    """The buffer's trajectories, after checking the options and that every start epoch below
    cfg.max_start_epoch has its target epoch in the buffer."""
    if cfg.syn_steps < 1 or cfg.expert_epochs < 1 or cfg.max_start_epoch < 1:
        raise ValueError(f"{method}: syn_steps, expert_epochs and max_start_epoch must be >= 1")
    if not cfg.lr_init > 0:
        raise ValueError(f"{method}: lr_init must be > 0, got {cfg.lr_init}")
    if not cfg.buffer:
        raise ValueError(f"{method} needs an expert buffer: make one with `kaleido buffer` and pass --buffer")
    trajectories = load_buffer(cfg.buffer, cfg.dataset, real_images, num_classes, cfg.model, cfg.width, cfg.depth)
    shortest = min(len(t) for t in trajectories) - 1
    if cfg.max_start_epoch + cfg.expert_epochs > shortest:
        raise ValueError(f"{method}: max_start_epoch {cfg.max_start_epoch} + expert_epochs {cfg.expert_epochs} exceeds "
                         f"the {shortest} epochs the buffer's experts trained")
    return trajectories


def trajectory_loss(net, trajectory: torch.Tensor, start_epoch: int, cfg: MTTConfig, images: torch.Tensor,
                    targets: torch.Tensor, syn_lr: torch.Tensor, augment: Augmenter, g: torch.Generator):
    """One student from the expert's parameters at start_epoch, cfg.syn_steps SGD steps at syn_lr
    on the augmented images (cfg.batch_syn per step, in random order from g) with cross-entropy on
    targets (class indices, or probabilities per image: DATM's soft labels), every step kept in
    the graph; returns the squared distance to the expert at start_epoch + cfg.expert_epochs over
    the distance the expert travelled."""
    device = images.device
    start = trajectory[start_epoch].to(device)
    target = trajectory[start_epoch + cfg.expert_epochs].to(device)
    params = start.clone().requires_grad_(True)
    batch = cfg.batch_syn or len(images)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(cfg.syn_steps):
        if len(order) < batch:  # walk through the synthetic set in random order
            order = torch.cat([order, torch.randperm(len(images), generator=g)])
        idx, order = order[:batch].to(device), order[batch:]
        x = augment(images[idx], -1)  # per-sample draws, as MTT's student
        ce = F.cross_entropy(functional_call(net, unflatten(net, params), (x,)), targets[idx])
        grad = torch.autograd.grad(ce, params, create_graph=True)[0]
        params = params - syn_lr * grad
    return ((params - target) ** 2).sum() / ((start - target) ** 2).sum()
