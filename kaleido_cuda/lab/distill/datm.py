"""Difficulty-aligned trajectory matching (DATM; Guo, Wang, Chen, Wang, Zhao & You, "Towards Lossless
Dataset Distillation via Difficulty-Aligned Trajectory Matching", ICLR 2024), on top of MTT (mtt.py).

What DATM adds to MTT, as its code does:
- The matching window. The start epoch is drawn from [min_start_epoch, upper) where upper rises
  linearly from initial_max_start_epoch at iteration 0 to max_start_epoch at iteration
  expansion_end (half the run's iterations unless set; then stays): early, easy trajectory segments first, later ones as the set
  improves. How far the window reaches is set by IPC (`window_for_ipc`): small sets match the
  early segments, large sets the later ones.
- Learned soft labels. Every synthetic image has a row of label logits, initialised from the
  experts' final logits on the initial image (averaged over the experts that classify it
  correctly) and optimised with the images (SGD, lr_labels, momentum_labels). The student's loss
  is cross-entropy against softmax(logits); the evaluation trains on the same probabilities.
  Under KT the initial image is not the real one, and DATM does not say where its labels then
  come from; `label_init` chooses (LABEL_INITS): "images", DATM's rule applied to the images the
  set starts from (the KT images, which the experts mostly misclassify); "sources", the real
  images they were made from (a row of logits per canary: a small per-image leak); "class_mean",
  the class's mean expert logits over the training images they classify correctly (no
  per-image information). `kaleido distill` chooses by initialisation (`default_label_init`):
  "images" from real images (DATM's rule), "class_mean" from KT or noise, whose images the
  experts do not recognise (docs/results/methods.md: 78.9% from the KT images' own logits on the
  digits, 96.8% from the class means).
- The initial real images are drawn among those the first expert's final network classifies
  correctly (`eligible_images`); the run records them, they are the canaries of an audit.

Departures (docs/distill.md says why): the rate is learned in log space as in our MTT; DATM's
loss threshold (no update while the loss is above it) is off by default (threshold None); one
buffer of our experts (`kaleido buffer`: plain SGD, DSA), not DATM's FTD-trained ones.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ..train.models import get_model
from .buffer import buffer_epochs, load_buffer, unflatten
from .common import Augmenter, History, run_iterations
from .mtt import MTTConfig, checked_trajectories, trajectory_loss


@dataclass
class DATMConfig(MTTConfig):
    max_start_epoch: Optional[int] = None          # None: window_for_ipc's, for the run's IPC and buffer
    min_start_epoch: Optional[int] = None
    initial_max_start_epoch: Optional[int] = None  # the window's upper bound at iteration 0 (None: max_start_epoch)
    expansion_end: Optional[int] = None            # iteration at which the bound reaches max (None: half the run's)
    lr_labels: float = 2.0                         # DATM's lr_y at IPC 10 and 50
    momentum_labels: float = 0.9
    threshold: Optional[float] = None              # DATM: skip the update while the loss exceeds it (None: never)
    label_init: Optional[str] = None               # where the label logits start (LABEL_INITS); must be set

    def resolve_window(self, ipc: int, buffer_epochs: int) -> None:
        """Fills the window options left None with window_for_ipc's values."""
        low, first, high = window_for_ipc(ipc, buffer_epochs, self.expert_epochs)
        if self.max_start_epoch is None:
            self.max_start_epoch = high
        if self.min_start_epoch is None:
            self.min_start_epoch = low
        if self.initial_max_start_epoch is None:
            self.initial_max_start_epoch = min(first, self.max_start_epoch)
        if self.expansion_end is None:  # recorded, so a resumed run that goes on longer keeps its schedule
            self.expansion_end = max(1, self.iterations // 2)

    def check_window(self) -> None:
        if self.max_start_epoch is None or self.min_start_epoch is None:
            raise ValueError("datm: the start epoch window is not set (resolve_window fills it from the IPC)")
        first = self.max_start_epoch if self.initial_max_start_epoch is None else self.initial_max_start_epoch
        if not 0 <= self.min_start_epoch < first <= self.max_start_epoch:
            raise ValueError(f"datm: the start epoch window needs 0 <= min_start_epoch ({self.min_start_epoch}) < "
                             f"initial_max_start_epoch ({first}) <= max_start_epoch ({self.max_start_epoch})")
        if self.expansion_end is not None and self.expansion_end < 1:
            raise ValueError(f"datm: expansion_end must be >= 1, got {self.expansion_end}")
        if not self.lr_labels >= 0:
            raise ValueError(f"datm: lr_labels must be >= 0, got {self.lr_labels}")
        if self.label_init is None:
            raise ValueError(f"datm: label_init is not set; choose one of {LABEL_INITS} (kaleido distill chooses by "
                             "--init: default_label_init)")
        if self.label_init not in LABEL_INITS:
            raise ValueError(f"datm: unknown label_init {self.label_init!r}; choose one of {LABEL_INITS}")


# What the label logits are initialised from (DATMConfig.label_init; the module docstring says why).
LABEL_INITS = ("images", "sources", "class_mean")


def default_label_init(init: str) -> str:
    """label_init for an initialisation ('real', 'kt' or 'noise') when none is asked for: DATM's
    rule for real images; the class means for images the experts were not trained on."""
    return "images" if init == "real" else "class_mean"


def window_for_ipc(ipc: int, buffer_epochs: int, expert_epochs: int) -> Tuple[int, int, int]:
    """(min, initial max, max) start epochs for a set of `ipc` images per class, as shares of the
    buffer's epochs. On CIFAR-10, DATM's window at IPC 10 and 50 grows from half of MTT's bound at
    that IPC to all of it (10 -> 20 and 20 -> 40 epochs), and MTT's bound rises with IPC; our MTT's
    one bound is half the buffer (10 of 20 epochs), so: IPC under 10, a fixed [0, 20%); IPC 10 to
    49, [0, 25%) growing to [0, 50%); IPC 50 and up, [0, 50%) growing to [0, 90%). Never past the
    last epoch that has its target in the buffer."""
    last = buffer_epochs - expert_epochs
    scale = lambda share: max(1, min(last, round(share * buffer_epochs)))  # noqa: E731
    if ipc < 10:
        return 0, scale(0.2), scale(0.2)
    if ipc < 50:
        return 0, scale(0.25), scale(0.5)
    return 0, scale(0.5), scale(0.9)


def resolved(cfg: DATMConfig, ipc: int) -> DATMConfig:
    """A copy of cfg with its window filled in for `ipc` and the buffer's epoch count, checked."""
    cfg = dataclasses.replace(cfg)
    if not cfg.buffer:
        raise ValueError("datm needs an expert buffer: make one with `kaleido buffer` and pass --buffer")
    if cfg.model.endswith("_bn"):  # the experts' final logits label the images and select them
        raise ValueError(f"datm: model {cfg.model!r} has batch norm, whose running statistics the expert buffer does "
                         "not record, so the experts' logits would be wrong; use convnet, convnet_nn or mlp")
    cfg.resolve_window(ipc, buffer_epochs(cfg.buffer, cfg.dataset, cfg.model))
    cfg.check_window()
    return cfg


def upper_start_epoch(cfg: DATMConfig, it: int) -> int:
    """The window's (exclusive) upper bound at iteration it: linear from initial_max_start_epoch to
    max_start_epoch over expansion_end iterations, as DATM's Sequential_Generation."""
    first = cfg.max_start_epoch if cfg.initial_max_start_epoch is None else cfg.initial_max_start_epoch
    end = cfg.expansion_end if cfg.expansion_end is not None else max(1, cfg.iterations // 2)
    return min(cfg.max_start_epoch, first + int((cfg.max_start_epoch - first) * it / end))


def final_networks(cfg: MTTConfig, real_images: torch.Tensor, num_classes: int):
    """Every expert's network at the end of its trajectory, in eval mode, on real_images' device."""
    trajectories = load_buffer(cfg.buffer, cfg.dataset, real_images, num_classes, cfg.model, cfg.width, cfg.depth)
    nets = []
    for t in trajectories:
        net = get_model(cfg.model, real_images.shape[1], num_classes, tuple(real_images.shape[-2:]), cfg.width,
                        cfg.depth).to(real_images.device)
        with torch.no_grad():
            for p, v in zip(net.parameters(), unflatten(net, t[-1].to(real_images.device)).values()):
                p.copy_(v)
        nets.append(net.eval())
    return nets


@torch.no_grad()
def _logits(net, images: torch.Tensor, batch: int = 512) -> torch.Tensor:
    return torch.cat([net(images[s:s + batch]) for s in range(0, len(images), batch)])


def eligible_images(cfg: MTTConfig, real_images: torch.Tensor, real_labels: torch.Tensor,
                    num_classes: int) -> torch.Tensor:
    """(N,) bool: the training images the first expert's final network classifies correctly, the
    ones DATM initialises from."""
    net = final_networks(cfg, real_images, num_classes)[0]
    return (_logits(net, real_images).argmax(1) == real_labels).cpu()


def _right_expert_logits(nets, images: torch.Tensor, labels: torch.Tensor, num_classes: int):
    """(sum of the logits of the experts that classify each image correctly, their count, sum of
    every expert's logits), each (N, K) or (N, 1)."""
    total = torch.zeros(len(images), num_classes, device=images.device)
    count = torch.zeros(len(images), 1, device=images.device)
    everyone = torch.zeros_like(total)
    for net in nets:
        z = _logits(net, images)
        right = (z.argmax(1) == labels).unsqueeze(1).to(z.dtype)
        total += z * right
        count += right
        everyone += z
    return total, count, everyone


def initial_label_logits(cfg: MTTConfig, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, K): each image's final-expert logits averaged over the experts that classify it
    correctly (over all experts for an image none classifies correctly)."""
    nets = final_networks(cfg, images, num_classes)
    total, count, everyone = _right_expert_logits(nets, images, labels, num_classes)
    return torch.where(count > 0, total / count.clamp_min(1), everyone / len(nets))


def class_mean_logits(cfg: MTTConfig, real_images: torch.Tensor, real_labels: torch.Tensor,
                      num_classes: int) -> torch.Tensor:
    """(K, K): row c is the mean of the experts' final logits over the (training image, expert)
    pairs of class c where the expert is right."""
    nets = final_networks(cfg, real_images, num_classes)
    total, count, _ = _right_expert_logits(nets, real_images, real_labels, num_classes)
    onehot = F.one_hot(real_labels, num_classes).to(total.dtype)  # (N, K): sums per class
    per_class, pairs = onehot.T @ total, onehot.T @ count
    if bool((pairs == 0).any()):
        missing = [int(c) for c in torch.nonzero(pairs.squeeze(1) == 0).flatten()]
        raise ValueError(f"datm: label_init 'class_mean' needs an expert that classifies a training image of every "
                         f"class correctly; none does for class(es) {missing}")
    return per_class / pairs


def starting_label_logits(cfg: DATMConfig, images: torch.Tensor, labels: torch.Tensor,
                          real: Tuple[torch.Tensor, torch.Tensor], sources: Optional[torch.Tensor],
                          num_classes: int) -> torch.Tensor:
    """(N, K): the label logits DATM starts from, as cfg.label_init says. real: the training
    (images, labels); sources: (N, C, H, W), the training images the set was made from ("sources")."""
    if cfg.label_init == "class_mean":
        return class_mean_logits(cfg, *real, num_classes)[labels]
    if cfg.label_init == "sources":
        if sources is None or sources.shape != images.shape:
            raise ValueError("datm: label_init 'sources' needs the real images the set was made from, one per "
                             "synthetic image (a real or kt initialisation, not noise)")
        images = sources.to(images.device)
    return initial_label_logits(cfg, images, labels, num_classes)


def distill_datm(syn_images: torch.Tensor, syn_labels: torch.Tensor, real_images: torch.Tensor,
                 real_labels: torch.Tensor, num_classes: int, cfg: DATMConfig, checkpoint: Optional[str] = None,
                 resume: bool = False, progress: bool = True,
                 sources: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, History]:
    """Runs DATM from the initial synthetic set (drawn among `eligible_images`); returns the final
    images and the history, whose extra holds the learned rate ("lr"), the learned label logits
    ("label_logits", (N, K)) and the labels the evaluation trains on ("soft_labels",
    softmax of the logits). sources: the training images the set was made from, row by row (needed
    by label_init "sources"). Checkpoints and resume as the other loops (bit for bit)."""
    cfg = resolved(cfg, len(syn_labels) // num_classes)
    trajectories = checked_trajectories("datm", cfg, real_images, num_classes)
    device = syn_images.device
    images = syn_images.detach().clone().requires_grad_(True)
    logits = starting_label_logits(cfg, images.detach(), syn_labels.to(device), (real_images, real_labels), sources,
                                   num_classes).requires_grad_(True)
    log_lr = torch.tensor(math.log(cfg.lr_init), device=device, requires_grad=True)
    opt = torch.optim.SGD([{"params": [images], "lr": cfg.lr_img},
                           {"params": [log_lr], "lr": cfg.lr_lr},
                           {"params": [logits], "lr": cfg.lr_labels, "momentum": cfg.momentum_labels}],
                          momentum=cfg.momentum)
    augment = Augmenter(cfg.augment)
    net = get_model(cfg.model, real_images.shape[1], num_classes, tuple(real_images.shape[-2:]), cfg.width,
                    cfg.depth).to(device)
    net.train()

    def step(it: int, g: torch.Generator) -> float:
        k = int(torch.randint(len(trajectories), (1,), generator=g))
        low, high = cfg.min_start_epoch, upper_start_epoch(cfg, it)
        start_epoch = int(torch.randint(low, high, (1,), generator=g))
        loss = trajectory_loss(net, trajectories[k], start_epoch, cfg, images, F.softmax(logits, dim=1),
                               log_lr.exp(), augment, g)
        opt.zero_grad(set_to_none=True)
        if cfg.threshold is None or float(loss.detach()) <= cfg.threshold:
            loss.backward()
            opt.step()
        return float(loss.detach())

    history = run_iterations("datm", cfg, images, syn_labels, opt, step, augment, checkpoint, resume, progress,
                             extra={"log_lr": log_lr, "label_logits": logits})
    final = logits.detach().cpu()
    history.extra = {"lr": math.exp(float(log_lr.detach())), "label_logits": final,
                     "soft_labels": F.softmax(final, dim=1)}
    return images.detach(), history
