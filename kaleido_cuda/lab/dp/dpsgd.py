"""DP-SGD (Abadi et al. 2016) through Opacus: the baseline a distilled set has to beat at the
same privacy. ConvNets train on the real training split with per-example gradient clipping,
Gaussian noise and Poisson sampling; Opacus chooses the noise multiplier for the target epsilon
before training (make_private_with_epsilon) and its accountant (RDP by default, or PRV) reports
the epsilon spent.

Choices, each a place where DP-SGD differs from the evaluation protocol of train/evaluate.py:
- no DSA augmentation (augmenting each example once per step only adds variance under clipping);
- plain SGD with a large learning rate: clipped, noise-dominated gradients have norm at most 1;
- ReLUs are made out-of-place (Opacus's per-sample hooks refuse in-place activations) and models
  with batch norm are refused (it mixes the examples of a batch);
- the noise and the Poisson batches come from generators seeded by the model's seed, so a run is
  reproducible (Opacus's secure_mode, a cryptographic generator, is off: this is research code).

`kaleido dpsgd` (pipeline/dpsgd.py) trains cfg.runs models into a run folder (each model saved
when done, so an interrupted run resumes at the next one); `kaleido audit` audits such a folder
with the model attacks and LiRA (pipeline/references.py).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F

from ..files.atomic import atomic_path
from ..files.layout import RunFolder, model_file
from ..train.models import get_model
from .accounting import check_dp_arguments

OPACUS_ACCOUNTANTS = {"rdp": "opacus.accountants.RDPAccountant (Renyi DP)",
                      "prv": "opacus.accountants.PRVAccountant (privacy random variables)"}


@dataclass
class DPSGDConfig:
    epsilon: float = 8.0
    delta: float = 1e-5
    epochs: int = 20
    batch_size: int = 256          # expected batch size (Poisson sampling at rate batch_size / N)
    lr: float = 2.0
    momentum: float = 0.0
    clip: float = 1.0              # per-example gradient norm
    accountant: str = "rdp"        # Opacus's 'rdp' or 'prv'
    model: str = "convnet"
    width: int = 128
    depth: Optional[int] = None
    runs: int = 3                  # models trained (kaleido dpsgd), accuracy mean and std reported

    def check(self) -> None:
        check_dp_arguments(self.epsilon, self.delta, self.clip, accountant=None, flag="--")
        if self.accountant not in OPACUS_ACCOUNTANTS:
            raise ValueError(f"unknown DP-SGD accountant {self.accountant!r}; choose one of {', '.join(OPACUS_ACCOUNTANTS)}")
        if self.model in ("convnet_bn", "resnet18_bn"):
            raise ValueError(f"DP-SGD cannot train {self.model}: batch norm mixes the examples of a batch")
        for name in ("epochs", "batch_size", "runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"DP-SGD: {name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"DP-SGD: the learning rate must be positive, got {self.lr}")


def train_dpsgd(images: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: DPSGDConfig, seed: int,
                on_epoch: Optional[Callable[[int], None]] = None) -> Tuple[torch.nn.Module, dict]:
    """A fresh model (seeded) trained with DP-SGD on (images, labels); returns it (a plain module
    in eval mode, Opacus's hooks removed) and the privacy report {noise_multiplier, sample_rate,
    steps, epsilon, delta, accountant}."""
    from opacus import PrivacyEngine
    from opacus.validators import ModuleValidator

    cfg.check()
    torch.manual_seed(seed)
    model = get_model(cfg.model, images.shape[1], num_classes, tuple(images.shape[-2:]), cfg.width,
                      cfg.depth).to(images.device)
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    ModuleValidator.validate(model, strict=True)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=cfg.batch_size,
                                         generator=torch.Generator().manual_seed(seed))
    with warnings.catch_warnings():  # Opacus warns that secure_mode is off: said in the module doc
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant=cfg.accountant)
        private, opt, loader = engine.make_private_with_epsilon(
            module=model, optimizer=opt, data_loader=loader, target_epsilon=cfg.epsilon, target_delta=cfg.delta,
            epochs=cfg.epochs, max_grad_norm=cfg.clip, poisson_sampling=True,
            noise_generator=torch.Generator(device=images.device).manual_seed(seed + 1))
        steps = 0
        for epoch in range(cfg.epochs):
            private.train()
            for x, y in loader:
                loss = F.cross_entropy(private(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
            if on_epoch is not None:
                on_epoch(epoch)
        epsilon = float(engine.get_epsilon(cfg.delta))
    report = {"noise_multiplier": float(opt.noise_multiplier), "sample_rate": float(loader.sample_rate), "steps": steps,
              "epsilon": epsilon, "delta": cfg.delta, "target_epsilon": cfg.epsilon,
              "accountant": OPACUS_ACCOUNTANTS[cfg.accountant]}
    model = private.to_standard_module()
    model.eval()
    return model, report


def pipeline_record(cfg: DPSGDConfig) -> dict:
    """What makes one DP-SGD model (the number of models left out): a shadow cache and a resumed
    run compare it."""
    return {k: v for k, v in asdict(cfg).items() if k != "runs"}


def dpsgd_model(out: str, images: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: DPSGDConfig, seed: int,
                on_epoch: Optional[Callable[[int], None]] = None) -> Tuple[torch.nn.Module, dict]:
    """The run's model of `seed` trained on the whole training split: read from OUT/models/seed_S.pt
    when it was trained before (by `kaleido dpsgd` or an audit, whose target models are the run's
    own), else trained and saved there (atomically)."""
    path = model_file(RunFolder(out).models, seed)
    if os.path.exists(path):
        saved = torch.load(path, map_location="cpu", weights_only=False)
        torch.manual_seed(seed)
        model = get_model(cfg.model, images.shape[1], num_classes, tuple(images.shape[-2:]), cfg.width, cfg.depth)
        model.load_state_dict(saved["state_dict"])
        if on_epoch is not None:
            for epoch in range(cfg.epochs):
                on_epoch(epoch)
        return model.to(images.device).eval(), saved["dp"]
    model, report = train_dpsgd(images, labels, num_classes, cfg, seed, on_epoch)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "dp": report}, tmp)
    return model, report
