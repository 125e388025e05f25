"""`kaleido audit`: membership inference against a finished run's distilled set (privacy/audit.py
says what is attacked and how), or against a set made by another tool.

A run folder of `kaleido distill`: its canaries are the training images its initialisation
selected; its target models are its own evaluation models where the seeds and epochs match
(RUN/models); LiRA's shadows repeat the run's pipeline on halves of the pooled candidates. A
folder of `kaleido dpsgd` is audited by pipeline/references.py. A foreign set (--synthetic) has no
known initialisation, so no canaries, and no pipeline to repeat, so no LiRA.
Outputs: audit.json, audit.md, audit_roc.png, and a "membership" section in metrics.json.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict
from typing import Optional, Tuple

import torch

from ...init import initial_indices, initialize
from ..distill import BUFFER_METHODS, LOOPS
from ..distributed import check_same_options, current_world, init_world
from ..files.layout import DPSGD, RunFolder
from ..privacy.audit import AuditConfig, audit_set
from ..privacy.foreign import load_foreign_set
from ..privacy.shadows import STATISTIC, ShadowConfig, cached_shadows
from ..train.data import load_dataset
from ..train.evaluate import EvalConfig, saved_or_trained, train_model
from .config import SINGLE_CHAIN_VIEWS, RunConfig
from .evaluation import record_membership, supervision
from .references import audit_dpsgd_run


def _load_run(folder: RunFolder):
    folder.finished_distillation()
    cfg = RunConfig.from_dict(json.load(open(folder.config)))
    saved = torch.load(folder.synthetic, map_location="cpu", weights_only=False)
    return cfg, saved


def _canaries(cfg: RunConfig, saved: dict, ds) -> Tuple[list, str]:
    if "init_indices" in saved:
        return list(saved["init_indices"]), "synthetic.pt"
    if cfg.init == "noise":
        return [], "none (noise initialisation)"
    # Runs made before init_indices was recorded: the selection is a function of (labels, ipc, seed).
    return initial_indices(ds.train_labels, cfg.ipc, cfg.init, ds.num_classes, cfg.seed), "recomputed from config.json"


def _shadow_record(cfg: RunConfig, shadow_cfg: ShadowConfig, pool_size: int) -> dict:
    # The number of shadows is left out: shadow s is the same whatever K, so K may grow.
    shadow = {k: v for k, v in asdict(shadow_cfg).items() if k != "shadows"}
    # kt_views and kt_families at their values of before those options existed (the single chain,
    # every family) are left out too, so shadows cached then stay valid.
    defaults = {**asdict(RunConfig()), "kt_views": SINGLE_CHAIN_VIEWS}
    # So are the configurations of methods the run does not use that came after the cache existed.
    run = {k: v for k, v in asdict(cfg).items() if k not in ("device", "baselines", "full_epochs")
           and not (k in ("kt_views", "kt_families") and v == defaults[k])
           and not (k in ("datm", "rded") and k != cfg.method)}
    run["eval"] = {k: v for k, v in run["eval"].items()  # and the label options at their defaults
                   if not (k in ("labels", "temperature") and v == defaults["eval"][k])}
    return {"run": run,
            "shadow": shadow, "pool": pool_size, "statistic": STATISTIC}


def shadow_statistics(out: str, cfg: RunConfig, pool_images: torch.Tensor, pool_labels: torch.Tensor,
                      num_classes: int, shadow_cfg: ShadowConfig,
                      progress: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """(statistics (K, P), in_mask (K, P)) over the P pooled candidates, from the cached shadows of
    the run in `out`, training the missing ones. Shadow s initialises as the run did (same method,
    init, IPC, strength) with seed + s, distils for the shadow iterations (default: the run's) and
    trains one model with the run's evaluation protocol for the shadow epochs (default: the run's).
    MTT and DATM runs are refused (each shadow would need its own expert buffer), and RDED runs
    (each shadow would need its own observer)."""
    shadow_cfg.check()
    if cfg.method in BUFFER_METHODS:
        raise ValueError(f"LiRA shadows are not available for {cfg.method.upper()} runs: each shadow would need its own "
                         "expert buffer; audit with --attacks data,model")
    if cfg.method == "rded":
        raise ValueError("LiRA shadows are not available for RDED runs: each shadow would need its own observer; "
                         "audit with --attacks data,model")
    loop_cfg = cfg.loop()
    if shadow_cfg.iterations is not None:
        loop_cfg = dataclasses.replace(loop_cfg, iterations=shadow_cfg.iterations)
    eval_cfg = dataclasses.replace(cfg.eval, epochs=shadow_cfg.epochs or cfg.eval.epochs)
    bars = progress and current_world().main  # progress bars on rank 0 only

    def pipeline(s: int, x: torch.Tensor, y: torch.Tensor, checkpoint: str) -> torch.nn.Module:
        syn, syn_labels = initialize(x, y, cfg.ipc, cfg.init, strength=cfg.strength, seed=cfg.seed + s,
                                     num_classes=num_classes, views=cfg.kt_views, families=cfg.kt_families)
        images, _ = LOOPS[cfg.method](syn, syn_labels, x, y, num_classes, loop_cfg, checkpoint=checkpoint,
                                      resume=True, progress=bars)
        return train_model(images.detach(), syn_labels, num_classes, eval_cfg, seed=cfg.seed + 7919 * (s + 1))

    return cached_shadows(RunFolder(out), _shadow_record(cfg, shadow_cfg, len(pool_images)), pool_images,
                          pool_labels, shadow_cfg, pipeline, torch.device(cfg.device), progress)


def audit_run(out: str, audit: Optional[AuditConfig] = None, progress: bool = True) -> dict:
    """Audits the run in `out` (a `kaleido distill` or `kaleido dpsgd` folder), writes
    audit.json/.md/_roc.png and metrics.json's "membership". Under torchrun the target models and
    the shadows are split across the ranks by index (each keyed by it, so the figures do not depend
    on the number of ranks); rank 0 writes and returns the report, the other ranks return {}."""
    audit = audit or AuditConfig()
    audit.check()
    folder = RunFolder(out)
    if os.path.isdir(out) and folder.kind() == DPSGD:
        return audit_dpsgd_run(out, audit, progress)
    cfg, saved = _load_run(folder)
    check_same_options(init_world(cfg.device), {"audit": asdict(audit), "run": os.path.abspath(out)})
    ds = load_dataset(cfg.dataset, cfg.data_root)
    canaries, canary_source = _canaries(cfg, saved, ds)
    eval_cfg = dataclasses.replace(cfg.eval, epochs=audit.epochs or cfg.eval.epochs)
    if "lr" in saved:  # MTT's learned rate, as its evaluation uses
        eval_cfg = dataclasses.replace(eval_cfg, lr=float(saved["lr"]))

    def shadows(pool_images, pool_labels):
        return shadow_statistics(out, cfg, pool_images, pool_labels, ds.num_classes, audit.shadow_config(), progress)

    # The run's evaluation models are the targets where seeds and epochs match.
    report = audit_set(out, saved["images"], saved["labels"], ds, canaries, canary_source, eval_cfg,
                       torch.device(cfg.device), audit, progress, shadows=shadows, model_folder=folder.models,
                       train_target=_method_targets(out, eval_cfg, saved, ds.num_classes, folder, cfg.device)
                       if {"model", "lira"} & set(audit.attacks) else None)
    record_membership(out, report)
    return report


def _method_targets(out: str, eval_cfg: EvalConfig, saved: dict, num_classes: int, folder: RunFolder, device):
    """For a set whose evaluation trains on soft labels or a teacher (DATM, RDED), the target
    models trained that way (the run's evaluation models where they match); None otherwise, so
    the audit trains on the hard labels as before."""
    targets, teacher, protocol = supervision(eval_cfg, out, saved, saved["labels"], torch.device(device))
    if protocol == "hard":
        return None

    def train(images, labels, seed, on_epoch):
        return saved_or_trained(images, targets.to(images.device), num_classes, eval_cfg, seed, folder.models,
                                on_epoch=on_epoch, teacher=teacher)
    return train


def audit_foreign_set(path: str, dataset: str, audit: AuditConfig, data_root: Optional[str] = None,
                      pixel_range: str = "normalised", index: int = -1, out: Optional[str] = None,
                      device: str = "cpu", options: Optional[dict] = None, progress: bool = True) -> Tuple[dict, str]:
    """Audits a set made by another tool (privacy/foreign.py reads it) with the data and model
    attacks; writes the audit files in `out` (default: the file's folder). Returns the report ({}
    on ranks other than 0) and that folder. `options`: the command's options, which every rank
    under torchrun must share."""
    audit.check()
    if dataset is None:
        raise ValueError("--synthetic needs --dataset NAME: the data the set was distilled from")
    world = init_world(device)
    check_same_options(world, options if options is not None else {"audit": asdict(audit), "synthetic": path})
    ds = load_dataset(dataset, data_root)
    images, labels = load_foreign_set(path, ds, pixel_range, index)
    out = out or os.path.dirname(os.path.abspath(path))
    if world.main:
        print("audit: a set made elsewhere: its initialisation images are unknown, so there are no canaries; "
              "data and model attacks only", flush=True)
    report = audit_set(out, images, labels, ds, [], "none (a set made elsewhere: its initialisation is unknown)",
                       EvalConfig(epochs=audit.epochs or EvalConfig.epochs), torch.device(device), audit,
                       progress=progress)
    return report, out
