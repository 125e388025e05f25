"""The reference points a distilled set is read against: a random real subset of the same IPC and
the whole training set, each trained with the evaluation protocol."""
from __future__ import annotations

import dataclasses

from ...init import select_real
from ..distributed import current_world, gather_keyed
from ..train.evaluate import EvalResult, train_and_test
from .config import RunConfig
from .log import stage


def _baseline_accuracy(r: int, cfg: RunConfig, ds, device, tick) -> float:
    """Baseline model r: for r < cfg.eval.runs, a model on random real subset r (a new subset per
    model); for r == cfg.eval.runs, the model on the whole training set (cfg.full_epochs epochs)."""
    x, y = ds.train_images.to(device), ds.train_labels.to(device)
    tx, ty = ds.test_images.to(device), ds.test_labels.to(device)
    if r == cfg.eval.runs:
        full_cfg = dataclasses.replace(cfg.eval, runs=1, epochs=cfg.full_epochs)
        return train_and_test(x, y, tx, ty, ds.num_classes, full_cfg, cfg.seed, tick)
    idx = select_real(ds.train_labels, cfg.ipc, ds.num_classes, seed=cfg.seed + 1000 + r).to(device)
    return train_and_test(x[idx], y[idx], tx, ty, ds.num_classes, dataclasses.replace(cfg.eval, runs=1),
                          cfg.seed + r, tick)


def train_baselines(cfg: RunConfig, ds, device, progress: bool = False, full: bool = True) -> dict:
    """'random_real': a random real subset of the same IPC per evaluation model; 'full' (unless
    full is False): the whole training set, trained for cfg.full_epochs epochs. Under torchrun
    the models (keyed by index, the full set's last) are split across the ranks."""
    world = current_world()
    keys = cfg.eval.runs + (1 if full else 0)
    total = cfg.eval.runs * cfg.eval.epochs + (cfg.full_epochs if full else 0)
    name = f"baselines: random real subsets ({cfg.eval.runs} models)" + (" and the full training set" if full else "")
    with stage(name, total, progress and world.main) as tick:
        accuracies = gather_keyed(world, keys, lambda r: _baseline_accuracy(r, cfg, ds, device, tick))
    result = {"random_real": EvalResult(accuracies[:cfg.eval.runs]).as_dict()}
    if full:
        result["full"] = {"mean": accuracies[-1], "epochs": cfg.full_epochs}
    return result
