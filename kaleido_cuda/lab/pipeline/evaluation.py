"""A distilled set's report: evaluation models, baselines, explicit privacy, metrics.json. What
`kaleido eval` re-runs on a finished run, and the last stage of `kaleido distill`."""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import asdict
from typing import Optional

import torch

from ..distributed import current_world, init_world
from ..files.atomic import write_json_atomic
from ..files.cache import cached_json, content_key
from ..files.grids import save_pairs_grid
from ..files.layout import RunFolder
from ..files.provenance import machine_stamp
from ..privacy import nearest
from ..privacy.lpips_distance import lpips_report
from ..train.data import load_dataset
from ..train.evaluate import EvalConfig, evaluate_set, protocol_of
from .baselines import train_baselines
from .config import RunConfig
from .log import run_logger, stage


def heldout_level(ds, train01: torch.Tensor) -> dict:
    """The held-out real images' nearest-neighbour statistics against the training set: the level
    an honest synthetic set should not exceed. It is the same for every run on a dataset, so it is
    computed once and cached by content (files/cache.py)."""
    test01 = ds.denormalise(ds.test_images)
    key = content_key((train01, test01), (nearest,), {"statistic": "heldout nearest neighbours"})
    return cached_json("heldout_nearest", key, lambda: nearest.nearest_neighbours(test01, train01).summary("heldout_"))


def privacy_report(images: torch.Tensor, ds, out: Optional[str] = None, lpips_weights: Optional[str] = None) -> dict:
    """Nearest-neighbour SSIM/L2 of the synthetic images to the training set, and the held-out
    level: the same statistics for the real test images; min-LPIPS where AlexNet's weights are
    found (lpips_distance.find_weights), else one line saying why not. With `out`, also the run's
    nearest_grid.png."""
    train01 = ds.denormalise(ds.train_images)
    syn = nearest.nearest_neighbours(ds.denormalise(images.cpu()), train01)
    if out is not None:
        save_pairs_grid(ds.denormalise(images.cpu()), train01[syn.ssim_index], RunFolder(out).grid("nearest"))
    lpips = lpips_report(ds.denormalise(images.cpu()).clamp(0, 1), train01.clamp(0, 1),
                         ds.denormalise(ds.test_images).clamp(0, 1), lpips_weights)
    return {**syn.summary(), **heldout_level(ds, train01), **lpips}


def supervision(cfg: EvalConfig, out: str, learned: Optional[dict], labels: torch.Tensor, device):
    """(what the models train on, teacher, protocol name) for a set whose method left `learned`
    (synthetic.pt's content): DATM's soft labels ("soft_labels"), RDED's observer ("teacher": a
    file in the run folder), else the hard labels; cfg.labels 'hard' forces the hard labels."""
    learned = learned or {}
    soft = learned.get("soft_labels")
    teacher = None
    if learned.get("teacher") and cfg.labels != "hard":
        from ..distill.observer import network

        path = os.path.join(out, learned["teacher"])
        if not os.path.exists(path):
            raise FileNotFoundError(f"{out}: the run's teacher {learned['teacher']} is missing; it is needed for the "
                                    "'kd' evaluation (or evaluate with --eval-labels hard)")
        teacher = network(torch.load(path, map_location="cpu", weights_only=False), device)
    protocol = protocol_of(cfg, soft, teacher)
    targets = soft.to(device) if protocol == "soft" else labels.to(device)
    return targets, teacher, protocol


def use_learned_lr(cfg: RunConfig, learned: dict) -> None:
    """MTT evaluates with the learning rate it learned (synthetic.pt's "lr"), as MTT's code does."""
    if "lr" in learned:
        cfg.eval = dataclasses.replace(cfg.eval, lr=float(learned["lr"]))


def evaluate_run(out: str, eval_cfg: Optional[EvalConfig] = None, baselines: Optional[bool] = None,
                 progress: bool = True) -> dict:
    """(Re-)evaluates the synthetic set of a finished run and rewrites its metrics.json. Under
    torchrun the evaluation models and baselines are split across the ranks."""
    folder = RunFolder(out)
    cfg = RunConfig.from_dict(json.load(open(folder.config)))
    init_world(cfg.device)
    if eval_cfg is not None:
        eval_cfg.check()
        cfg.eval = eval_cfg
    if baselines is not None:
        cfg.baselines = baselines
    saved = torch.load(folder.synthetic, map_location="cpu", weights_only=False)
    use_learned_lr(cfg, saved)
    old = json.load(open(folder.metrics)) if os.path.exists(folder.metrics) else {}
    return evaluate_and_report(cfg, out, saved["images"], saved["labels"], old.get("timing", {}), progress,
                               dp=saved.get("dp"), learned=saved)


def evaluate_and_report(cfg: RunConfig, out: str, images, labels, timing: dict, progress: bool,
                        dp: Optional[dict] = None, lpips_weights: Optional[str] = None,
                        learned: Optional[dict] = None) -> dict:
    """Evaluation models and baselines (split across ranks under torchrun), then rank 0 alone
    measures privacy and writes metrics.json; the other ranks return {}. learned: what the
    method left beside the images (`supervision`: soft labels, a teacher)."""
    world = current_world()
    log = run_logger(out, world.main)
    progress = progress and world.main
    ds = load_dataset(cfg.dataset, cfg.data_root)
    device = torch.device(cfg.device)
    t0 = time.perf_counter()
    targets, teacher, protocol = supervision(cfg.eval, out, learned, labels, device)
    with stage(f"evaluation ({cfg.eval.runs} models, {protocol} labels)", cfg.eval.runs * cfg.eval.epochs,
               progress) as tick:
        acc = evaluate_set(images.to(device), targets, ds.test_images.to(device), ds.test_labels.to(device),
                           ds.num_classes, cfg.eval, seed=cfg.seed, progress=tick, folder=RunFolder(out).models,
                           teacher=teacher)
    log.info(f"accuracy {acc.mean:.4f} +- {acc.std:.4f} over {cfg.eval.runs} models, {protocol} labels "
             f"({time.perf_counter() - t0:.0f} s)")
    metrics = {"accuracy": acc.as_dict(), "eval": {**asdict(cfg.eval), "protocol": protocol}}
    if cfg.baselines:
        t0 = time.perf_counter()
        metrics["baselines"] = train_baselines(cfg, ds, device, progress)
        log.info(f"baselines {json.dumps(metrics['baselines'])} ({time.perf_counter() - t0:.0f} s)")
    if not world.main:
        return {}
    t0 = time.perf_counter()
    with stage("privacy: nearest neighbours", 0, progress):
        metrics["privacy"] = privacy_report(images, ds, out, lpips_weights)
    log.info(f"privacy {json.dumps(metrics['privacy'])} ({time.perf_counter() - t0:.0f} s)")
    metrics["timing"] = timing
    if dp:  # DP-DM: the mechanism and the epsilon it spent, from the accountant
        metrics["dp"] = dp
    metrics["machine"] = machine_stamp(cfg.device)
    write_json_atomic(RunFolder(out).metrics, metrics)
    return metrics


def record_membership(out: str, report: dict) -> None:
    """Adds an audit's figures to the run's metrics.json as its "membership" section (nothing
    for the ranks other than 0, whose report is {}, or for a folder without metrics.json)."""
    path = RunFolder(out).metrics
    if report and os.path.exists(path):
        metrics = json.load(open(path))
        metrics["membership"] = {k: report[k] for k in ("config", "members", "nonmembers", "canaries", "attacks",
                                                        "epsilon_lb")}
        write_json_atomic(path, metrics)
