"""Distribution matching (DM; Zhao & Bilen, "Dataset Condensation with Distribution Matching", WACV 2023).

Every iteration draws a freshly initialised network; for each class, a batch of real images and the
class's synthetic images are augmented with one shared DSA seed, embedded (the features before the
classifier), and the squared distance between the two mean embeddings is added to the loss; the
synthetic images take one SGD step on the sum (learning rate 1, momentum 0.5, as DM's code).

With `dp_epsilon` (DP distribution matching) the real side of every class's term is released by
the Gaussian mechanism of kaleido_cuda/lab/dp/mechanism.py: a Poisson-sampled batch, per-example
clipped embeddings, Gaussian noise on their sum; the noise multiplier is calibrated before the
first iteration so that all `iterations` together spend dp_epsilon at dp_delta (dp/accounting.py),
and the accountant's state is checkpointed with the images, so a resumed run continues the
accounting exactly. Only the noisy means touch the training data, so the synthetic set is
(dp_epsilon, dp_delta)-DP when its initialisation is data-independent (noise; RunConfig refuses
real or KT initialisation unless dp_public_init says the initial images are public).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from ..distributed import all_sum, current_world
from ..dp.accounting import DPAccountant, check_dp_arguments
from ..dp.mechanism import ClassMeanMechanism, auto_clip
from ..train.models import get_model
from .common import (Augmenter, History, LoopOptions, class_generator, class_rows, run_iterations,
                     shard_classes)


@dataclass
class DMConfig(LoopOptions):
    lr_img: float = 1.0
    momentum: float = 0.5
    batch_real: int = 256          # real images per class and iteration (the whole class if it has fewer)
    dp_epsilon: Optional[float] = None   # DP-DM: the run's privacy budget (None: plain DM)
    dp_delta: float = 1e-5
    dp_clip: Optional[float] = None      # embedding clip norm; None: per iteration from noise images (dp/mechanism.py)
    dp_sample_rate: Optional[float] = None  # Poisson rate; None: batch_real / the smallest class's size, at most 1
    dp_accountant: str = "rdp"           # 'rdp' or 'pld' (dp/accounting.py)
    dp_public_init: bool = False         # the initial images are public (real/KT init with DP: their privacy is not counted)

    @property
    def private(self) -> bool:
        return self.dp_epsilon is not None

    def check_dp(self) -> None:
        """ValueError naming a bad DP option; nothing to check for plain DM."""
        if not self.private:
            return
        check_dp_arguments(self.dp_epsilon, self.dp_delta, self.dp_clip, self.dp_sample_rate, self.dp_accountant)
        if self.model in ("convnet_bn", "resnet18_bn"):
            raise ValueError(f"DP-DM cannot match with {self.model}: batch norm mixes the examples of a batch, so one "
                             "image would move every embedding; use convnet, convnet_nn or mlp")
        if self.iterations < 1:
            raise ValueError("DP-DM needs at least one iteration to calibrate its noise")

    def dp_rate(self, class_sizes) -> float:
        """The Poisson sample rate of a DP-DM run on classes of these sizes."""
        if self.dp_sample_rate is not None:
            return float(self.dp_sample_rate)
        return min(1.0, self.batch_real / max(1, min(int(n) for n in class_sizes)))


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
    cfg.check_dp()
    accountant = None
    if cfg.private:
        rate = cfg.dp_rate([len(r) for r in real_rows])
        accountant = DPAccountant.for_target(cfg.dp_epsilon, cfg.dp_delta, rate, cfg.iterations, cfg.dp_accountant)

    def step(it: int, g: torch.Generator) -> float:
        net = get_model(cfg.model, real_images.shape[1], num_classes, size, cfg.width, cfg.depth).to(images.device)
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        mechanism = None if accountant is None else _mechanism(cfg, accountant, net, real_images, it)
        loss = images.new_zeros(())
        for c in mine:
            loss = loss + _class_term(net, images[syn_rows[c]], real_images, real_rows[c],
                                      class_generator(cfg.seed, it, c), cfg, augment, mechanism)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if accountant is not None:
            accountant.step()
        return all_sum(world, float(loss.detach()))

    history = run_iterations("dm", cfg, images, syn_labels, opt, step, augment, checkpoint, resume, progress,
                             world=world, row_owner=row_owner,
                             stateful={"dp_accountant": accountant} if accountant is not None else None)
    if accountant is not None:
        history.dp = accountant.report()
    return images.detach(), history


def _class_term(net, syn: torch.Tensor, real_images: torch.Tensor, rows: torch.Tensor, gc: torch.Generator,
                cfg: DMConfig, augment: Augmenter, mechanism=None) -> torch.Tensor:
    """One class's term of the loss: the squared distance between the mean embeddings of a real
    batch (its rows drawn from gc) and of the class's synthetic images `syn`, both augmented with
    one seed from gc. With a DP mechanism only the noisy mean of clipped embeddings touches the
    real images."""
    pick = torch.randperm(len(rows), generator=gc)[:cfg.batch_real] if mechanism is None else \
        mechanism.batch(len(rows), gc)
    real = real_images[rows[pick].to(real_images.device)]
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gc))
    if mechanism is None:
        with torch.no_grad():
            mean_real = net.embed(augment(real, seed)).mean(0)
        mean_syn = net.embed(augment(syn, seed)).mean(0)
    else:
        embedded_syn = net.embed(augment(syn, seed))
        with torch.no_grad():
            embedded = net.embed(augment(real, seed)) if len(real) else None
            mean_real = mechanism.real_mean(embedded, embedded_syn.shape[1], len(rows), gc).to(embedded_syn.device)
        mean_syn = mechanism.synthetic_mean(embedded_syn)
    return ((mean_real - mean_syn) ** 2).sum()


def _mechanism(cfg: DMConfig, accountant: DPAccountant, net, real_images: torch.Tensor, it: int) -> ClassMeanMechanism:
    """Iteration it's Gaussian mechanism; the automatic clip norm comes from noise images drawn
    by a generator keyed like a class's (class -1), so every rank finds the same one."""
    clip = cfg.dp_clip
    if clip is None:
        clip = auto_clip(net, real_images.shape[1:], class_generator(cfg.seed, it, -1), real_images.device)
    return ClassMeanMechanism(accountant.noise_multiplier, accountant.sample_rate, clip)
