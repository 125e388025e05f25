"""The reference point of a membership audit: a model trained on the whole training split, with
no distillation in between (what a distilled set is meant to protect better than).

`audit_full_training_set` audits `models` ConvNets trained on every training image with the
evaluation protocol for `epochs` epochs (the run's 'full training set' baseline uses 30), with
the model attacks and, with shadows, LiRA: shadow s trains the same model on its random half of
the pooled members and non-members (shadows.cached_shadows, so cached and resumable in
OUT/shadows). Every member is trained on as itself, so all of them are the canaries. The data
attacks do not apply: the "released set" would be the training images.

The other reference, a random real subset of the distilled set's size, is a run with no
distillation iterations (`--init real`, 0 iterations): its shadows repeat that selection.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import torch

from ..data import load_dataset
from ..evaluate import EvalConfig, train_model
from .audit import AuditConfig, audit_set
from .shadows import STATISTIC, cached_shadows


def audit_full_training_set(out: str, dataset: str = "digits", audit: Optional[AuditConfig] = None,
                            epochs: int = 30, data_root: Optional[str] = None, device: str = "cpu",
                            progress: bool = True) -> dict:
    """Audits models trained on the whole training split of `dataset`; writes audit.json, .md and
    _roc.png in `out` (see audit.audit_set) and returns the report."""
    audit = audit or AuditConfig(attacks=("model",))
    if "data" in audit.attacks:
        raise ValueError("the data attacks do not apply to the full training set: its released images would be the "
                         "training images themselves")
    audit.check()
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    ds = load_dataset(dataset, data_root)
    eval_cfg = dataclasses.replace(EvalConfig(), epochs=audit.epochs or epochs)
    shadow_cfg = audit.shadow_config()
    shadow_eval = dataclasses.replace(eval_cfg, epochs=shadow_cfg.epochs or eval_cfg.epochs)
    os.makedirs(out, exist_ok=True)

    def shadows(pool_images, pool_labels):
        record = {"reference": "full training set", "dataset": dataset, "eval": dataclasses.asdict(shadow_eval),
                  "seed": audit.seed, "pool": len(pool_images), "statistic": STATISTIC}

        def pipeline(s, x, y, checkpoint):
            return train_model(x, y, ds.num_classes, shadow_eval, seed=audit.seed + 7919 * (s + 1))

        return cached_shadows(os.path.join(out, "shadows"), record, pool_images, pool_labels, shadow_cfg, pipeline,
                              torch.device(device), progress)

    members = range(len(ds.train_images))
    return audit_set(out, ds.train_images, ds.train_labels, ds, members,
                     "every member (the models train on the training split itself)", eval_cfg,
                     torch.device(device), audit, progress, shadows=shadows)
