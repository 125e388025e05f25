"""A distillation run from start to report: what `kaleido distill` and `kaleido eval` execute.

Output folder (every file written atomically):
    config.json           the run's configuration
    log.txt               what happened, with times
    checkpoint.pt         the loop's state, every few minutes (`--resume` continues from it)
    synthetic.pt          {"images", "labels", "mean", "std", "init_indices", ...}: the distilled set
                          (normalised) and the training images its initialisation selected
    init_grid.png, final_grid.png   one row per class
    nearest_grid.png      each synthetic image beside its nearest training image (by SSIM)
    metrics.json          accuracy, baselines, privacy, timing
    models/seed_S_*.pt    the evaluation models (the audit's target models when its seeds and epochs match)
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch

from .atomic import atomic_path, write_json_atomic
from .data import load_dataset
from .distributed import check_same_options, current_world, gather_keyed, init_world
from .distill import CONFIGS, LOOPS, METHODS, DCConfig, DMConfig, MTTConfig
from .distill.buffer import missing_buffer_error
from .evaluate import EvalConfig, EvalResult, evaluate_set, train_and_test
from .grids import save_class_grid, save_pairs_grid
from .init import METHODS as INITS, initial_indices, initialize, select_real
from .privacy import nearest_neighbours
from .provenance import machine_stamp

# The methods whose loop splits its classes across torchrun's ranks.
SHARDED_METHODS = ("dm", "dc")


@dataclass
class RunConfig:
    dataset: str = "digits"
    data_root: Optional[str] = None
    method: str = "dm"
    ipc: int = 10
    init: str = "kt"
    strength: float = 1.0
    seed: int = 0
    device: str = "cpu"
    dm: DMConfig = field(default_factory=DMConfig)     # used when method == 'dm'
    dc: DCConfig = field(default_factory=DCConfig)     # used when method == 'dc'
    mtt: MTTConfig = field(default_factory=MTTConfig)  # used when method == 'mtt'
    eval: EvalConfig = field(default_factory=EvalConfig)
    full_epochs: int = 30          # the 'full training set' baseline
    baselines: bool = True

    def check(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; available: {', '.join(METHODS)}")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if not isinstance(self.ipc, int) or self.ipc < 1:
            raise ValueError(f"ipc must be a positive int, got {self.ipc!r}")
        if self.loop().iterations < 0 or self.eval.runs < 1 or self.eval.epochs < 1:
            raise ValueError("iterations must be >= 0, eval runs and epochs >= 1")
        self.check_dp()
        if self.method == "mtt":
            if self.mtt.dataset not in (None, self.dataset):
                raise ValueError(f"mtt.dataset {self.mtt.dataset!r} differs from the run's dataset {self.dataset!r}")
            if not os.path.exists(os.path.join(self.mtt.buffer, "buffer.json")):  # before any work
                raise missing_buffer_error(self.mtt.buffer, self.dataset, self.mtt.model)

    def check_dp(self) -> None:
        """DP-DM's options (DMConfig.check_dp), and what the mechanism does not cover: a real or KT
        initialisation starts from training images that no noise protects."""
        if self.method != "dm":
            if self.dm.private:
                raise ValueError(f"--dp-epsilon is DP distribution matching: use it with --method dm, not {self.method}")
            return
        self.dm.check_dp()
        if self.dm.private and self.init != "noise" and not self.dm.dp_public_init:
            raise ValueError(f"--init {self.init} with --dp-epsilon: the initial images are training images, whose "
                             "privacy the DP mechanism does not cover; use --init noise, or --dp-public-init if those "
                             "images are public")

    def loop(self):
        """The configuration of the chosen method's loop."""
        return getattr(self, self.method)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        d = dict(d)
        for method, config in CONFIGS.items():
            d[method] = config(**d.get(method, {}))
        d["eval"] = EvalConfig(**d.get("eval", {}))
        return cls(**d)


def _logger(out: str) -> logging.Logger:
    log = logging.getLogger(f"kaleido.run.{os.path.abspath(out)}")
    log.setLevel(logging.INFO)
    if not log.handlers:
        fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
        handler = logging.FileHandler(os.path.join(out, "log.txt"))
        handler.setFormatter(fmt)
        log.addHandler(handler)
    return log


def _silent_logger() -> logging.Logger:
    """For ranks other than 0: they write no log."""
    log = logging.getLogger("kaleido.run.other_rank")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
        log.propagate = False
    return log


@contextlib.contextmanager
def _stage(name: str, total_epochs: int, progress: bool):
    """A progress bar over a stage's training epochs (models x epochs), then one line with its time:
    without them, evaluation and baselines ran for minutes with nothing on the terminal."""
    from tqdm import tqdm

    start = time.perf_counter()
    bar = tqdm(total=total_epochs, desc=name, unit="epoch", disable=not progress or total_epochs == 0, leave=False)
    try:
        yield lambda _epoch: bar.update(1)
    finally:
        bar.close()
    if progress:
        print(f"{name}: done in {time.perf_counter() - start:.0f} s", flush=True)


def _baselines(cfg: RunConfig, ds, device, progress: bool = False) -> dict:
    """'random_real': a random real subset of the same IPC (a new subset per evaluation model);
    'full': the whole training set, trained for cfg.full_epochs epochs. Under torchrun the models
    (the subsets' and the full set's, keyed by index) are split across the ranks."""
    x, y = ds.train_images.to(device), ds.train_labels.to(device)
    tx, ty = ds.test_images.to(device), ds.test_labels.to(device)
    one = dataclasses.replace(cfg.eval, runs=1)
    full_cfg = dataclasses.replace(cfg.eval, runs=1, epochs=cfg.full_epochs)
    world = current_world()

    def model(r: int, tick) -> float:
        if r == cfg.eval.runs:  # the last key: the full training set
            return train_and_test(x, y, tx, ty, ds.num_classes, full_cfg, cfg.seed, tick)
        idx = select_real(ds.train_labels, cfg.ipc, ds.num_classes, seed=cfg.seed + 1000 + r).to(device)
        return train_and_test(x[idx], y[idx], tx, ty, ds.num_classes, one, cfg.seed + r, tick)

    total = cfg.eval.runs * cfg.eval.epochs + cfg.full_epochs
    with _stage(f"baselines: random real subsets ({cfg.eval.runs} models) and the full training set", total,
                progress and world.main) as tick:
        accuracies = gather_keyed(world, cfg.eval.runs + 1, lambda r: model(r, tick))
    return {"random_real": EvalResult(accuracies[:-1]).as_dict(),
            "full": {"mean": accuracies[-1], "epochs": cfg.full_epochs}}


def privacy_report(images: torch.Tensor, ds, out: Optional[str] = None) -> dict:
    """Nearest-neighbour SSIM/L2 of the synthetic images to the training set, and the held-out
    level: the same statistics for the real test images."""
    train01 = ds.denormalise(ds.train_images)
    syn = nearest_neighbours(ds.denormalise(images.cpu()), train01)
    held = nearest_neighbours(ds.denormalise(ds.test_images), train01)
    if out is not None:
        save_pairs_grid(ds.denormalise(images.cpu()), train01[syn.ssim_index], os.path.join(out, "nearest_grid.png"))
    return {**syn.summary(), **held.summary("heldout_")}


def model_folder(out: str) -> str:
    """Where a run keeps its evaluation models (evaluate.saved_or_trained), which its audit reuses."""
    return os.path.join(out, "models")


def _use_learned_lr(cfg: RunConfig, learned: dict) -> None:
    """MTT evaluates with the learning rate it learned (synthetic.pt's "lr"), as MTT's code does."""
    if "lr" in learned:
        cfg.eval = dataclasses.replace(cfg.eval, lr=float(learned["lr"]))


def evaluate_run(out: str, eval_cfg: Optional[EvalConfig] = None, baselines: Optional[bool] = None,
                 progress: bool = True) -> dict:
    """(Re-)evaluates the synthetic set of a finished run and rewrites its metrics.json. Under
    torchrun the evaluation models and baselines are split across the ranks."""
    cfg = RunConfig.from_dict(json.load(open(os.path.join(out, "config.json"))))
    init_world(cfg.device)
    if eval_cfg is not None:
        cfg.eval = eval_cfg
    if baselines is not None:
        cfg.baselines = baselines
    saved = torch.load(os.path.join(out, "synthetic.pt"), map_location="cpu", weights_only=False)
    _use_learned_lr(cfg, saved)
    metrics_path = os.path.join(out, "metrics.json")
    old = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    return _evaluate_and_report(cfg, out, saved["images"], saved["labels"], old.get("timing", {}), progress,
                                dp=saved.get("dp"))


def _evaluate_and_report(cfg: RunConfig, out: str, images, labels, timing: dict, progress: bool,
                         dp: Optional[dict] = None) -> dict:
    """Evaluation models and baselines (split across ranks under torchrun), then rank 0 alone
    measures privacy and writes metrics.json; the other ranks return {}."""
    world = current_world()
    log = _logger(out) if world.main else _silent_logger()
    progress = progress and world.main
    ds = load_dataset(cfg.dataset, cfg.data_root)
    device = torch.device(cfg.device)
    t0 = time.perf_counter()
    with _stage(f"evaluation ({cfg.eval.runs} models)", cfg.eval.runs * cfg.eval.epochs, progress) as tick:
        acc = evaluate_set(images.to(device), labels.to(device), ds.test_images.to(device), ds.test_labels.to(device),
                           ds.num_classes, cfg.eval, seed=cfg.seed, progress=tick, folder=model_folder(out))
    log.info(f"accuracy {acc.mean:.4f} +- {acc.std:.4f} over {cfg.eval.runs} models ({time.perf_counter() - t0:.0f} s)")
    metrics = {"accuracy": acc.as_dict(), "eval": asdict(cfg.eval)}
    if cfg.baselines:
        t0 = time.perf_counter()
        metrics["baselines"] = _baselines(cfg, ds, device, progress)
        log.info(f"baselines {json.dumps(metrics['baselines'])} ({time.perf_counter() - t0:.0f} s)")
    if not world.main:
        return {}
    t0 = time.perf_counter()
    with _stage("privacy: nearest neighbours", 0, progress):
        metrics["privacy"] = privacy_report(images, ds, out)
    log.info(f"privacy {json.dumps(metrics['privacy'])} ({time.perf_counter() - t0:.0f} s)")
    metrics["timing"] = timing
    if dp:  # DP-DM: the mechanism and the epsilon it spent, from the accountant
        metrics["dp"] = dp
    metrics["machine"] = machine_stamp(cfg.device)
    write_json_atomic(os.path.join(out, "metrics.json"), metrics)
    return metrics


def distill_run(cfg: RunConfig, out: str, resume: bool = False, progress: bool = True) -> dict:
    """Initialise, distil, save, evaluate, measure privacy, report. Returns metrics.json's content.

    Under torchrun (DM and DC) every rank distils its share of the classes and trains its
    share of the evaluation models; rank 0 alone writes the outputs and reports, and the other
    ranks return {}. The output folder must be one that every rank sees (a shared file system when
    the ranks are on several machines): the checkpoint that --resume reads is there."""
    cfg.check()
    world = init_world(cfg.device)
    if world.distributed and cfg.method not in SHARDED_METHODS:
        raise ValueError(f"torchrun: {cfg.method} runs as one process (it matches one trajectory per iteration, "
                         "not classes); make its expert buffer under torchrun (`kaleido buffer`) instead")
    check_same_options(world, {"config": asdict(cfg), "out": os.path.abspath(out), "resume": resume})
    config_path = os.path.join(out, "config.json")
    if resume and os.path.exists(config_path):
        saved = json.load(open(config_path))
        mine = json.loads(json.dumps(asdict(cfg)))
        for d in (saved, mine):
            for method in METHODS:
                d.get(method, {}).pop("iterations", None)
        if saved != mine:
            raise ValueError(f"--resume: {out} holds a run with another configuration; use another --out")
    if world.main:
        os.makedirs(out, exist_ok=True)
        write_json_atomic(config_path, asdict(cfg))
        log = _logger(out)
        log.info(f"run {json.dumps(asdict(cfg))}")
        if world.distributed:
            log.info(f"torchrun: {world.size} ranks, classes split among them")
    ds = load_dataset(cfg.dataset, cfg.data_root)
    device = torch.device(cfg.device)
    x, y = ds.train_images.to(device), ds.train_labels.to(device)
    syn, syn_labels = initialize(x, y, cfg.ipc, cfg.init, strength=cfg.strength, seed=cfg.seed,
                                 num_classes=ds.num_classes)
    if world.main:
        save_class_grid(ds.denormalise(syn.cpu()), syn_labels.cpu(), ds.num_classes, os.path.join(out, "init_grid.png"))
    start = time.perf_counter()
    images, history = LOOPS[cfg.method](syn, syn_labels, x, y, ds.num_classes, cfg.loop(),
                                        checkpoint=os.path.join(out, "checkpoint.pt"), resume=resume,
                                        progress=progress and world.main)
    learned = dict(history.extra)
    _use_learned_lr(cfg, learned)
    if not world.main:  # the other ranks help evaluate
        return _evaluate_and_report(cfg, out, images.cpu(), syn_labels.cpu(), {}, progress)
    if history.dp:
        log.info(f"DP-DM: epsilon {history.dp['epsilon']:.3f} at delta {history.dp['delta']:g} spent in "
                 f"{history.dp['steps']} iterations (noise multiplier {history.dp['noise_multiplier']:.3f}, "
                 f"sample rate {history.dp['sample_rate']:.3f}; {history.dp['accountant']})")
    iterations = max(len(history.losses), 1)
    timing = {"seconds_per_iteration": history.seconds / iterations, "distill_seconds": history.seconds,
              "augment_forward_share": history.augment_seconds / history.seconds if history.seconds else 0.0,
              "augment": cfg.loop().augment, "iterations": len(history.losses)}
    log.info(f"distilled {len(history.losses)} iterations in {time.perf_counter() - start:.0f} s this session; "
             f"loss {history.losses[0] if history.losses else float('nan'):.4g} -> "
             f"{history.losses[-1] if history.losses else float('nan'):.4g}")
    # The training images the initialisation started from: the canaries of a membership audit.
    init_indices = initial_indices(y, cfg.ipc, cfg.init, ds.num_classes, cfg.seed)
    with atomic_path(os.path.join(out, "synthetic.pt")) as tmp:
        torch.save({"images": images.cpu(), "labels": syn_labels.cpu(), "mean": ds.mean, "std": ds.std,
                    "dataset": cfg.dataset, "losses": history.losses, "init_indices": init_indices, **learned,
                    **({"dp": history.dp} if history.dp else {})}, tmp)
    save_class_grid(ds.denormalise(images.cpu()), syn_labels.cpu(), ds.num_classes, os.path.join(out, "final_grid.png"))
    return _evaluate_and_report(cfg, out, images.cpu(), syn_labels.cpu(), timing, progress, dp=history.dp)
