"""Evaluation of a (synthetic) training set: train fresh models on it, test them on the real test split.

The protocol of the distillation literature (DC/DSA/DM's evaluate_synset): SGD with momentum 0.9,
weight decay 5e-4, learning rate 0.01 divided by 10 halfway, batch 256, cross-entropy, DSA
augmentation with DSA's default ParamDiffAug (mode 'S') at every step, R models from different
seeds; accuracy mean and (population) std over the R models.

The supervision is one of three protocols (`protocol_of`): 'hard', cross-entropy on the class
labels (the literature's protocol for DC, DSA, DM and MTT); 'soft', cross-entropy on a probability
vector per image (DATM's learned labels); 'kd', knowledge distillation from a teacher network run
on every augmented batch, KL divergence between the temperature-softened outputs times T^2 (RDED's
protocol, after FKD). A set without soft labels or teacher always trains on its hard labels.
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F

from ...dsa import DEFAULT_STRATEGY, DiffAugment, ParamDiffAug
from ..distributed import current_world, gather_keyed
from ..files.atomic import atomic_path
from ..files.layout import model_file
from .models import get_model

EVAL_AUG_MODE = "S"


@dataclass
class EvalConfig:
    model: str = "convnet"
    epochs: int = 500
    lr: float = 0.01
    batch_size: int = 256
    weight_decay: float = 5e-4
    momentum: float = 0.9
    augment: bool = True
    impl: str = "fused"          # DSA implementation: 'fused' or 'eager'
    runs: int = 3
    width: int = 128
    depth: Optional[int] = None
    labels: str = "method"       # 'method': the supervision the method made (soft labels, teacher); 'hard': class labels
    temperature: float = 4.0     # 'kd': the softmax temperature of teacher and student

    def check(self) -> None:
        if self.labels not in LABEL_CHOICES:
            raise ValueError(f"eval labels must be one of {', '.join(LABEL_CHOICES)}, got {self.labels!r}")
        if not self.temperature > 0:
            raise ValueError(f"eval temperature must be > 0, got {self.temperature}")


LABEL_CHOICES = ("method", "hard")
PROTOCOLS = ("hard", "soft", "kd")


def protocol_of(cfg: EvalConfig, soft_labels: Optional[torch.Tensor] = None, teacher=None) -> str:
    """The protocol an evaluation runs: the method's supervision (a teacher, else soft labels) unless
    cfg.labels is 'hard' or the set has none."""
    if cfg.labels == "hard":
        return "hard"
    return "kd" if teacher is not None else "soft" if soft_labels is not None else "hard"


def supervision_loss(logits: torch.Tensor, targets: torch.Tensor, x: torch.Tensor, teacher, temperature: float):
    """The training loss of one batch: knowledge distillation from `teacher` on the batch x it sees,
    else cross-entropy on targets, class indices (N,) or probabilities (N, K)."""
    if teacher is None:
        return F.cross_entropy(logits, targets)
    with torch.no_grad():
        teacher_log_p = F.log_softmax(teacher(x) / temperature, dim=1)
    student_log_p = F.log_softmax(logits / temperature, dim=1)
    return F.kl_div(student_log_p, teacher_log_p, log_target=True, reduction="batchmean") * temperature ** 2


@dataclass
class EvalResult:
    accuracies: List[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def as_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "runs": list(self.accuracies)}


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        correct += int((logits.argmax(1) == labels[start:start + batch_size]).sum())
    return correct / max(len(images), 1)


def train_model(images: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: EvalConfig, seed: int,
                on_epoch: Optional[Callable[[int], None]] = None, teacher=None) -> torch.nn.Module:
    """A fresh model (seeded) trained on (images, labels) with the evaluation protocol. labels:
    class indices (N,) or probabilities (N, K) (soft labels); teacher: a network to distil from
    on every augmented batch (labels are then unused)."""
    if labels.dim() == 2 and labels.shape != (len(images), num_classes):
        raise ValueError(f"soft labels must be (N, {num_classes}) for {len(images)} images, got {tuple(labels.shape)}")
    if teacher is not None:
        teacher.eval()
    torch.manual_seed(seed)
    model = get_model(cfg.model, images.shape[1], num_classes, tuple(images.shape[-2:]), cfg.width,
                      cfg.depth).to(images.device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[cfg.epochs // 2], gamma=0.1)
    param = ParamDiffAug()
    param.aug_mode = EVAL_AUG_MODE
    g = torch.Generator().manual_seed(seed)
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(images), generator=g).to(images.device)
        for start in range(0, len(images), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            x = images[idx]
            if cfg.augment:
                x = DiffAugment(x, DEFAULT_STRATEGY, seed=-1, param=param, impl=cfg.impl)
            loss = supervision_loss(model(x), labels[idx], x, teacher, cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        if on_epoch is not None:
            on_epoch(epoch)
    return model


def _model_record(images: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: EvalConfig, seed: int,
                  teacher) -> dict:
    """What a saved evaluation model is the model of. The label options (cfg.labels, temperature)
    enter only through what they change, the labels' bytes and the teacher, so the records of
    hard-label models are those written before the options existed."""
    digest = hashlib.sha256()
    for t in (images, labels):
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    fields = {k: v for k, v in asdict(cfg).items() if k not in ("runs", "labels", "temperature")}
    record = {"eval": fields, "seed": seed, "classes": num_classes, "set_sha256": digest.hexdigest()}
    if teacher is not None:
        weights = hashlib.sha256()
        for v in teacher.state_dict().values():
            weights.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        record["teacher"] = {"sha256": weights.hexdigest(), "temperature": cfg.temperature}
    return record


def saved_or_trained(images: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: EvalConfig, seed: int,
                     folder: Optional[str] = None, on_epoch: Optional[Callable[[int], None]] = None,
                     teacher=None) -> torch.nn.Module:
    """train_model's model, read from `folder` when the model of this very set (a hash of images
    and labels, hard or soft, and of the teacher's weights), protocol and seed was saved there,
    else trained and saved there (with folder None: trained only). A run's evaluation saves its
    models, and the audit of the run reads them back as its target models when its seeds and
    epochs are the evaluation's: the same training twice would give the same model
    (tests/lab/test_privacy_attacks.py). Files are named by seed and a hash of all of that, so
    models of other protocols sit beside each other."""
    if folder is None:
        return train_model(images, labels, num_classes, cfg, seed, on_epoch=on_epoch, teacher=teacher)
    record = _model_record(images, labels, num_classes, cfg, seed, teacher)
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    path = model_file(folder, seed, key)
    if os.path.exists(path):
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved["record"] == record:
            model = get_model(cfg.model, images.shape[1], num_classes, tuple(images.shape[-2:]), cfg.width, cfg.depth)
            model.load_state_dict(saved["state_dict"])
            for epoch in range(cfg.epochs if on_epoch is not None else 0):
                on_epoch(epoch)
            return model.to(images.device)
    model = train_model(images, labels, num_classes, cfg, seed, on_epoch=on_epoch, teacher=teacher)
    os.makedirs(folder, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"record": record, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, tmp)
    return model


def evaluate_set(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
                 num_classes: int, cfg: EvalConfig, seed: int = 0,
                 progress: Optional[Callable[[int], None]] = None, folder: Optional[str] = None,
                 teacher=None) -> EvalResult:
    """Trains cfg.runs fresh models (seeds seed, seed + 1, ...) and tests each on the test split;
    with `folder`, the models are saved there (saved_or_trained). labels and teacher: as
    train_model's. Under torchrun the models are split across the ranks by index (every rank gets
    every accuracy)."""
    def one(run: int) -> float:
        return train_and_test(images, labels, test_images, test_labels, num_classes, cfg, seed + run, progress, folder,
                              teacher)

    return EvalResult(gather_keyed(current_world(), cfg.runs, one))


def train_and_test(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
                   num_classes: int, cfg: EvalConfig, seed: int,
                   progress: Optional[Callable[[int], None]] = None, folder: Optional[str] = None,
                   teacher=None) -> float:
    """One model trained from `seed` on (images, labels): its accuracy on the test split."""
    model = saved_or_trained(images, labels, num_classes, cfg, seed, folder, on_epoch=progress, teacher=teacher)
    return float(accuracy(model, test_images, test_labels))
