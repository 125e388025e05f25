"""The reference points of a membership audit: models trained on the whole training split, with no
distillation in between. Plain training is what a distilled set is meant to protect better than;
DP-SGD (dp/dpsgd.py) is the formal-privacy baseline it is compared with.

`audit_full_training_set` audits `models` ConvNets trained on every training image with the
evaluation protocol for `epochs` epochs (the run's 'full training set' baseline uses 30);
`audit_dpsgd_run` audits a `kaleido dpsgd` folder, its target models trained by DP-SGD with the
run's options. Both apply the model attacks and, with shadows, LiRA: shadow s trains the same way
on its random half of the pooled members and non-members (shadows.cached_shadows, so cached and
resumable in OUT/shadows). Every member is trained on as itself, so all of them are the canaries.
The data attacks do not apply: the "released set" would be the training images.

The other reference, a random real subset of the distilled set's size, is a run with no
distillation iterations (`--init real`, 0 iterations): its shadows repeat that selection.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional

import torch

from ..distributed import check_same_options, init_world
from ..dp.dpsgd import DPSGDConfig, dpsgd_model, pipeline_record, train_dpsgd
from ..files.layout import RunFolder
from ..privacy.audit import AuditConfig, audit_set
from ..privacy.shadows import STATISTIC, cached_shadows
from ..train.data import load_dataset
from ..train.evaluate import EvalConfig, train_model
from .evaluation import record_membership

DATA_ATTACKS_DO_NOT_APPLY = ("the data attacks do not apply to models trained on the training split: their released "
                             "images would be the training images themselves")


def _audit_training_split(out: str, ds, audit: AuditConfig, eval_cfg: EvalConfig, train_target: Callable,
                          train_shadow: Callable, record: dict, device: str, progress: bool, source: str) -> dict:
    """The audit of models that train_target(x, y, seed, on_epoch) fits on ds's whole training
    split, against shadows fitted by train_shadow on halves of the pool (`record` names the
    pipeline in the shadow cache)."""
    os.makedirs(out, exist_ok=True)

    def shadows(pool_images, pool_labels):
        meta = {**record, "seed": audit.seed, "pool": len(pool_images), "statistic": STATISTIC}

        def pipeline(s, x, y, checkpoint):
            return train_shadow(x, y, audit.seed + 7919 * (s + 1), None)

        return cached_shadows(RunFolder(out), meta, pool_images, pool_labels, audit.shadow_config(),
                              pipeline, torch.device(device), progress)

    return audit_set(out, ds.train_images, ds.train_labels, ds, range(len(ds.train_images)), source, eval_cfg,
                     torch.device(device), audit, progress, shadows=shadows, train_target=train_target)


def audit_full_training_set(out: str, dataset: str = "digits", audit: Optional[AuditConfig] = None,
                            epochs: int = 30, data_root: Optional[str] = None, device: str = "cpu",
                            progress: bool = True) -> dict:
    """Audits models trained on the whole training split of `dataset`; writes audit.json, .md and
    _roc.png in `out` (see audit.audit_set) and returns the report."""
    audit = audit or AuditConfig(attacks=("model",))
    if "data" in audit.attacks:
        raise ValueError(DATA_ATTACKS_DO_NOT_APPLY)
    audit.check()
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    ds = load_dataset(dataset, data_root)
    eval_cfg = dataclasses.replace(EvalConfig(), epochs=audit.epochs or epochs)
    shadow_eval = dataclasses.replace(eval_cfg, epochs=audit.shadow_config().epochs or eval_cfg.epochs)

    def target(x, y, seed, on_epoch):
        return train_model(x, y, ds.num_classes, eval_cfg, seed=seed, on_epoch=on_epoch)

    def shadow(x, y, seed, on_epoch):
        return train_model(x, y, ds.num_classes, shadow_eval, seed=seed, on_epoch=on_epoch)

    record = {"reference": "full training set", "dataset": dataset, "eval": dataclasses.asdict(shadow_eval)}
    return _audit_training_split(out, ds, audit, eval_cfg, target, shadow, record, device, progress,
                                 "every member (the models train on the training split itself)")


def audit_dpsgd_run(out: str, audit: Optional[AuditConfig] = None, progress: bool = True) -> dict:
    """Audits the DP-SGD run in `out` (`kaleido dpsgd`): target models and LiRA shadows are trained
    with its DP-SGD options (the shadows on halves of the pool, at the same epsilon); writes
    audit.json, .md, _roc.png and metrics.json's "membership"."""
    audit = audit or AuditConfig(attacks=("model",))
    if "data" in audit.attacks:
        raise ValueError(DATA_ATTACKS_DO_NOT_APPLY + " (DP-SGD releases a model); use --attacks model,lira")
    if audit.epochs is not None or audit.shadow_epochs is not None or audit.shadow_iterations is not None:
        raise ValueError("--epochs, --shadow-epochs and --shadow-iterations do not apply to a DP-SGD run: its epochs "
                         "are part of its privacy budget (the targets and shadows repeat its options)")
    audit.check()
    saved = RunFolder(out).saved_config()
    cfg = DPSGDConfig(**saved["dpsgd"])
    check_same_options(init_world(saved["device"]), {"audit": dataclasses.asdict(audit), "run": os.path.abspath(out)})
    ds = load_dataset(saved["dataset"], saved["data_root"])

    def target(x, y, seed, on_epoch):  # the run's own models where their seeds match
        return dpsgd_model(out, x, y, ds.num_classes, cfg, seed, on_epoch)[0]

    def shadow(x, y, seed, on_epoch):
        return train_dpsgd(x, y, ds.num_classes, cfg, seed, on_epoch)[0]

    record = {"reference": "DP-SGD", "dataset": saved["dataset"], "dpsgd": pipeline_record(cfg)}
    report = _audit_training_split(out, ds, audit, dataclasses.replace(EvalConfig(), epochs=cfg.epochs), target,
                                   shadow, record, saved["device"], progress,
                                   "every member (DP-SGD trains on the training split itself)")
    record_membership(out, report)
    return report
