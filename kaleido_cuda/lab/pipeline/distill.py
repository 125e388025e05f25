"""`kaleido distill`: a distillation run from start to report, in a run folder (files/layout.py):
initialise, distil (checkpointed, resumable), save the set and its grids, evaluate, measure
privacy, write metrics.json. Every file is written atomically."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from typing import Optional

import torch

from ..distill import LOOPS, METHODS
from ..distributed import World, check_same_options, init_world
from ..files.atomic import atomic_path, write_json_atomic
from ..files.grids import save_class_grid
from ..files.layout import RunFolder
from ..train.data import load_dataset
from .config import SHARDED_METHODS, RunConfig
from .evaluation import evaluate_and_report, use_learned_lr
from .log import run_logger
from .methods import initial_set, loop_inputs, prepare, rded_run, resolve


# Why each method that does not split across torchrun's ranks runs as one process.
UNSHARDED = {
    "mtt": "torchrun: mtt runs as one process (it matches one trajectory per iteration, not classes); make its "
           "expert buffer under torchrun (`kaleido buffer`) instead",
    "datm": "torchrun: datm runs as one process (it matches one trajectory per iteration, not classes); make its "
            "expert buffer under torchrun (`kaleido buffer`) instead",
    "rded": "torchrun: rded runs as one process (it selects crops once, with no loop to split); run it without "
            "torchrun, and `kaleido eval` its set under torchrun to split the evaluation models",
}


def _check_folder(cfg: RunConfig, folder: RunFolder, saved: Optional[dict], resume: bool, world: World) -> None:
    """Checks that every rank runs the same options and, on --resume, that the folder holds this
    run (iteration counts may differ). Only the run's own method's options are compared: the others
    are unused, and the CLI fills them from the run's dataset and seed, so an older config.json
    that lacks a method added since still resumes. saved: the folder's config.json on --resume."""
    check_same_options(world, {"config": asdict(cfg), "out": os.path.abspath(folder.root), "resume": resume})
    if saved is None:
        return
    saved = json.loads(json.dumps(asdict(RunConfig.from_dict(saved))))  # options added since: defaults
    mine = json.loads(json.dumps(asdict(cfg)))
    for d in (saved, mine):
        for method in METHODS:
            if method == cfg.method:
                d.get(method, {}).pop("iterations", None)
            else:
                d.pop(method, None)
    if saved != mine:
        raise ValueError(f"--resume: {folder.root} holds a run with another configuration "
                         f"({'; '.join(_differences(saved, mine))}); pass the run's options or use another --out")


def _differences(saved: dict, mine: dict, prefix: str = "") -> list:
    """'name: X in the folder, Y here' for every option that differs (nested sections dotted)."""
    out = []
    for k in sorted(set(saved) | set(mine)):
        a, b = saved.get(k), mine.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} in the folder, {b!r} here")
    return out


def _start_folder(cfg: RunConfig, folder: RunFolder, world: World) -> None:
    """Rank 0 writes config.json and starts the log."""
    if world.main:
        os.makedirs(folder.root, exist_ok=True)
        write_json_atomic(folder.config, asdict(cfg))
        log = run_logger(folder.root)
        log.info(f"run {json.dumps(asdict(cfg))}")
        if world.distributed:
            log.info(f"torchrun: {world.size} ranks, classes split among them")


def _timing(cfg: RunConfig, history, augment: str) -> dict:
    if cfg.method == "rded":  # no iterations: the selection's time
        return {"seconds_per_iteration": None, "distill_seconds": history.seconds, "augment": augment, "iterations": 0}
    iterations = len(history.losses)
    return {"seconds_per_iteration": history.seconds / iterations if iterations else None, "distill_seconds": history.seconds,
            "augment_forward_share": history.augment_seconds / history.seconds if history.seconds else 0.0,
            "augment": augment, "iterations": len(history.losses)}


def _save_set(cfg: RunConfig, folder: RunFolder, ds, images: torch.Tensor, syn_labels: torch.Tensor, history,
              learned: dict, init_indices: list) -> None:
    """synthetic.pt (with the training images the initialisation started from: the canaries of a
    membership audit) and final_grid.png."""
    with atomic_path(folder.synthetic) as tmp:
        torch.save({"images": images.cpu(), "labels": syn_labels.cpu(), "mean": ds.mean, "std": ds.std,
                    "dataset": cfg.dataset, "losses": history.losses, "init_indices": init_indices, **learned,
                    **({"dp": history.dp} if history.dp else {})}, tmp)
    save_class_grid(ds.denormalise(images.cpu()), syn_labels.cpu(), ds.num_classes, folder.grid("final"))


def _log_distillation(cfg: RunConfig, log, history, session_seconds: float) -> None:
    if history.dp:
        dp = history.dp
        log.info(f"DP-DM: epsilon {dp['epsilon']:.3f} at delta {dp['delta']:g} spent in {dp['steps']} iterations "
                 f"(noise multiplier {dp['noise_multiplier']:.3f}, sample rate {dp['sample_rate']:.3f}; "
                 f"{dp['accountant']})")
    if cfg.method == "rded":
        log.info(f"selected and stitched the crops in {session_seconds:.0f} s")
        return
    first = history.losses[0] if history.losses else float("nan")
    last = history.losses[-1] if history.losses else float("nan")
    log.info(f"distilled {len(history.losses)} iterations in {session_seconds:.0f} s this session; "
             f"loss {first:.4g} -> {last:.4g}")


def distill_run(cfg: RunConfig, out: str, resume: bool = False, progress: bool = True,
                lpips_weights: Optional[str] = None) -> dict:
    """Initialise, distil, save, evaluate, measure privacy, report. Returns metrics.json's content.
    lpips_weights: AlexNet's weights for min-LPIPS (default: the torch hub cache, else skipped).

    Under torchrun (DM and DC) every rank distils its share of the classes and trains its
    share of the evaluation models; rank 0 alone writes the outputs and reports, and the other
    ranks return {}. The output folder must be one that every rank sees (a shared file system when
    the ranks are on several machines): the checkpoint that --resume reads is there."""
    cfg.check()
    world = init_world(cfg.device)
    if world.distributed and cfg.method not in SHARDED_METHODS:
        raise ValueError(UNSHARDED[cfg.method])
    folder = RunFolder(out)
    ds = load_dataset(cfg.dataset, cfg.data_root)
    device = torch.device(cfg.device)
    x, y = ds.train_images.to(device), ds.train_labels.to(device)
    saved = folder.saved_config() if resume else None
    resolve(cfg, ds.train_images.shape[-2:], saved)  # DATM's window and RDED's factor, as config.json records them
    _check_folder(cfg, folder, saved, resume, world)  # before the observer of RDED is trained
    prepared = prepare(cfg, ds, x, y)  # the checks that need the data: nothing is written before them
    _start_folder(cfg, folder, world)
    start = time.perf_counter()
    if cfg.method == "rded":
        images, syn_labels, history, learned, init_indices = rded_run(cfg, ds, x, y, prepared, out)
    else:
        syn, syn_labels, init_indices = initial_set(cfg, ds, x, y, prepared)
        if world.main:
            save_class_grid(ds.denormalise(syn.cpu()), syn_labels.cpu(), ds.num_classes, folder.grid("init"))
        images, history = LOOPS[cfg.method](syn, syn_labels, x, y, ds.num_classes, cfg.loop(),
                                            checkpoint=folder.checkpoint, resume=resume,
                                            progress=progress and world.main, **loop_inputs(cfg, x, init_indices))
        learned = dict(history.extra)
    use_learned_lr(cfg, learned)
    if not world.main:  # the other ranks help evaluate
        return evaluate_and_report(cfg, out, images.cpu(), syn_labels.cpu(), {}, progress, learned=learned)
    _log_distillation(cfg, run_logger(out), history, time.perf_counter() - start)
    _save_set(cfg, folder, ds, images, syn_labels, history, learned, init_indices)
    return evaluate_and_report(cfg, out, images.cpu(), syn_labels.cpu(),
                               _timing(cfg, history, getattr(cfg.loop(), "augment", "none")),
                               progress, dp=history.dp, lpips_weights=lpips_weights, learned=learned)
