"""The membership audit of a synthetic set: which attacks run, their statistics, their figures.

Members are the training images the distillation read, non-members the held-out test split, and
the canaries the members its initialisation selected (membership.py). Attacks:
- 'data': on the released images alone, each candidate's largest SSIM and negated smallest L2 to
  any synthetic image (attacks.data_attack_scores);
- 'model': `models` ConvNets trained on the synthetic set with the run's evaluation protocol (the
  run's own evaluation models, when they are the same models); each candidate's negated loss and
  LiRA's logit-scaled confidence, averaged over the models;
- 'lira' (with shadows): LiRA online and offline, the target models' logit-scaled confidence
  against shadow models that repeat the pipeline on random halves of the pooled candidates
  (shadows.py), scored per target model and averaged.
Every attack is reported for all members and for the canaries, against all non-members (AUC, TPR
at 1% and 0.1% FPR), with the empirical epsilon lower bound on the canaries (delta 1e-5); the
audit's headline epsilon is the largest of those. Which set, which pipeline and which shadows are
the caller's (pipeline/audit.py for run folders and foreign sets, pipeline/references.py for
models trained on the training split).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional, Tuple

import torch

from ..distributed import current_world, gather_keyed
from ..train.evaluate import accuracy, saved_or_trained
from .attacks import data_attack_scores, lira_scores, model_scores
from .audit_report import write_report
from .epsilon import epsilon_lower_bound
from .membership import MembershipSplit, membership_split
from .metrics import attack_metrics
from .shadows import ShadowConfig

ATTACKS = ("data", "model", "lira")
DEFAULT_ATTACKS = ("data", "model")


@dataclass
class AuditConfig:
    attacks: Tuple[str, ...] = DEFAULT_ATTACKS
    models: int = 2                 # target models for the model attacks
    epochs: Optional[int] = None    # their epochs (default: the run's evaluation epochs)
    delta: float = 1e-5
    seed: int = 0
    shadows: int = 0                # LiRA: shadow pipelines (privacy/shadows.py)
    shadow_iterations: Optional[int] = None
    shadow_epochs: Optional[int] = None

    def check(self) -> None:
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown or not self.attacks:
            raise ValueError(f"unknown attack(s) {unknown or '(none given)'}; choose from {', '.join(ATTACKS)}")
        if self.models < 1:
            raise ValueError(f"--models must be at least 1, got {self.models}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
        if not 0 < self.delta < 1:
            raise ValueError(f"--delta must lie in (0, 1), got {self.delta}")
        if "lira" in self.attacks:
            self.shadow_config().check()

    def shadow_config(self) -> ShadowConfig:
        # LiRA's shadows train like the targets unless told otherwise
        return ShadowConfig(self.shadows, self.shadow_iterations, self.shadow_epochs or self.epochs, self.seed)


def _figures(member: torch.Tensor, nonmember: torch.Tensor, canaries: torch.Tensor, delta: float) -> dict:
    """The attack's figures on all members and on the canaries, and the epsilon lower bounds its
    scores prove with the canaries ("epsilon") and with all members ("epsilon_all": the bound a
    set without canaries, such as one initialised from noise, can still be given)."""
    out = {"all": attack_metrics(member, nonmember), "canaries": None, "epsilon": None,
           "epsilon_all": epsilon_lower_bound(member.numpy(), nonmember.numpy(), delta=delta)}
    if canaries.numel() >= 2:
        out["canaries"] = attack_metrics(member[canaries], nonmember)
        out["epsilon"] = epsilon_lower_bound(member[canaries].numpy(), nonmember.numpy(), delta=delta)
    return out


def _model_statistics(images, labels, ds, split, eval_cfg, device, audit: AuditConfig,
                      progress: bool, train_target=None, model_folder=None) -> Dict[str, torch.Tensor]:
    """Each model statistic of the target models, (models, P) over the P pooled candidates
    (members then non-members), and "accuracy", (models,) their accuracy on the non-members (the
    test split). `train_target(images, labels, seed, on_epoch)` trains one (default: the
    evaluation protocol of eval_cfg, whose epochs also size the progress bar, reading the run's
    evaluation models from `model_folder` where they are the same models)."""
    from tqdm import tqdm

    images, labels = images.to(device), labels.to(device)
    candidates, candidate_labels = (t.to(device) for t in split.pooled())
    m = len(split.member_images)
    world = current_world()
    bar = tqdm(total=len(world.owned(audit.models)) * eval_cfg.epochs, desc="audit: target models (x epochs)",
               disable=not (progress and world.main), leave=False)

    def target(k: int) -> Dict[str, torch.Tensor]:
        tick = lambda _: bar.update(1)  # noqa: E731
        model = (saved_or_trained(images, labels, ds.num_classes, eval_cfg, audit.seed + k, model_folder, tick)
                 if train_target is None else train_target(images, labels, audit.seed + k, tick))
        stats = {name: s.cpu() for name, s in model_scores(model, candidates, candidate_labels).items()}
        stats["accuracy"] = torch.tensor(accuracy(model, candidates[m:], candidate_labels[m:]))
        return stats

    per_model = gather_keyed(world, audit.models, target)  # under torchrun: split across ranks by index
    bar.close()
    return {name: torch.stack([p[name] for p in per_model]) for name in per_model[0]}


def _data_statistics(images: torch.Tensor, ds, split: MembershipSplit, timing: dict,
                     progress: bool) -> Dict[str, torch.Tensor]:
    t0 = time.perf_counter()
    pool_images, _ = split.pooled()
    scores = data_attack_scores(ds.denormalise(pool_images), ds.denormalise(images.cpu()))
    timing["data_seconds"] = time.perf_counter() - t0
    if progress:
        print(f"audit: data attacks done ({timing['data_seconds']:.0f} s)", flush=True)
    return {f"data_{name}": s for name, s in scores.items()}


def _lira_statistics(target: torch.Tensor, shadows: Callable, split: MembershipSplit,
                     timing: dict) -> Dict[str, torch.Tensor]:
    """Online and offline LiRA scores. Each target model is one model like each shadow, so LiRA
    scores each target model against the shadows' single-model fits and averages the scores
    (averaging the statistic first would shrink its spread below the shadows')."""
    t0 = time.perf_counter()
    shadow_stats, in_mask = shadows(*split.pooled())
    out = {}
    for name, online in (("lira_online", True), ("lira_offline", False)):
        scores = [lira_scores(t, shadow_stats, in_mask, online=online) for t in target]
        out[name] = torch.from_numpy(sum(scores) / len(scores)).float()
    timing["lira_seconds"] = time.perf_counter() - t0
    return out


def _report(out: str, audit: AuditConfig, split: MembershipSplit, canary_source: str,
            statistics: Dict[str, torch.Tensor], target_accuracy, timing: dict) -> dict:
    m = len(split.member_images)
    attacks = {name: _figures(s[:m].double(), s[m:].double(), split.canaries, audit.delta)
               for name, s in statistics.items()}
    bounds = [(f["epsilon"]["epsilon_lb"], name) for name, f in attacks.items() if f["epsilon"]]
    return {"run": out, "config": asdict(audit), "members": m, "nonmembers": len(split.nonmember_images),
            "canaries": int(split.canaries.numel()), "canaries_source": canary_source,
            "target_accuracy": target_accuracy, "attacks": attacks,
            "epsilon_lb": ({"epsilon_lb": max(bounds)[0], "attack": max(bounds)[1]} if bounds else None),
            "timing": timing}


def audit_set(out: str, images: torch.Tensor, labels: torch.Tensor, ds, canaries, canary_source: str, eval_cfg,
              device, audit: AuditConfig, progress: bool = True, shadows=None, train_target=None,
              model_folder: Optional[str] = None) -> dict:
    """Audits a synthetic set (normalised as ds is) against ds's members and non-members; writes
    audit.json, audit.md and audit_roc.png in `out`. `shadows(pool_images, pool_labels)` gives
    LiRA's shadow statistics and in-masks over the pooled members and non-members;
    `train_target` trains the target models another way than eval_cfg's protocol (DP-SGD);
    `model_folder`: where the run that made the set keeps its evaluation models. Under torchrun
    the target models are split across the ranks; rank 0 alone writes and returns the report,
    the other ranks return {}."""
    audit.check()
    if "lira" in audit.attacks and shadows is None:
        raise ValueError("LiRA needs the pipeline that made the set (its shadows repeat it): audit a run folder")
    split = membership_split(ds, canaries)
    statistics: Dict[str, torch.Tensor] = {}
    timing = {}
    world = current_world()  # under torchrun the ranks share the models; rank 0 alone reports
    progress = progress and world.main
    if "data" in audit.attacks and world.main:
        statistics.update(_data_statistics(images, ds, split, timing, progress))
    target, target_accuracy = None, None
    if "model" in audit.attacks or "lira" in audit.attacks:
        t0 = time.perf_counter()
        model_stats = _model_statistics(images, labels, ds, split, eval_cfg, device, audit, progress, train_target,
                                        model_folder)
        target_accuracy = model_stats.pop("accuracy").tolist()
        target = model_stats["logit_conf"]
        if "model" in audit.attacks:  # the threshold attacks average the statistic over the target models
            statistics.update({f"model_{name}": s.mean(0) for name, s in model_stats.items()})
        timing["model_seconds"] = time.perf_counter() - t0
        if progress:
            print(f"audit: target models done ({timing['model_seconds']:.0f} s)", flush=True)
    if "lira" in audit.attacks:
        statistics.update(_lira_statistics(target, shadows, split, timing))
    if not world.main:  # after the last collective: rank 0 alone scores and writes
        return {}
    report = _report(out, audit, split, canary_source, statistics, target_accuracy, timing)
    write_report(out, report, statistics, split)
    return report
