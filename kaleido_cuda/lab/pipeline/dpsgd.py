"""`kaleido dpsgd`: ConvNets trained on the real training split with DP-SGD (dp/dpsgd.py), the
formal-privacy baseline, in a run folder that `kaleido audit` can audit (pipeline/references.py)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Optional

import torch

from ..dp.dpsgd import DPSGDConfig, dpsgd_model, pipeline_record
from ..files.atomic import write_json_atomic
from ..files.layout import DPSGD, RunFolder
from ..files.provenance import machine_stamp
from ..train.data import load_dataset
from ..train.evaluate import EvalResult, accuracy


def _claim_folder(folder: RunFolder, record: dict, cfg: DPSGDConfig) -> None:
    """Refuses a folder that holds another kind of run, or a DP-SGD run with other options (more or
    fewer models is fine: that run resumes), then writes the run's config.json."""
    kind = folder.kind()
    if kind == DPSGD:
        old = folder.saved_config()
        same = dict(old, dpsgd=pipeline_record(DPSGDConfig(**old["dpsgd"]))) == json.loads(
            json.dumps(dict(record, dpsgd=pipeline_record(cfg))))
        if not same:
            raise ValueError(f"{folder.root} holds a DP-SGD run with other options; use another --out")
    elif kind is not None:
        raise ValueError(f"{folder.root} holds another kind of run (not DP-SGD); use another --out")
    os.makedirs(folder.root, exist_ok=True)
    write_json_atomic(folder.config, record)


def dpsgd_run(out: str, cfg: DPSGDConfig, dataset: str = "digits", data_root: Optional[str] = None,
              device: str = "cpu", seed: int = 0, progress: bool = True) -> dict:
    """Trains cfg.runs DP-SGD models (seeds seed, seed + 1, ...) on the training split, tests them
    on the held-out split, writes OUT/config.json, OUT/models/seed_S.pt per model (a finished
    one is not trained again) and OUT/metrics.json; returns the metrics."""
    from tqdm import tqdm

    cfg.check()
    folder = RunFolder(out)
    record = {"dpsgd": asdict(cfg), "dataset": dataset, "data_root": data_root, "device": device, "seed": seed}
    _claim_folder(folder, record, cfg)
    ds = load_dataset(dataset, data_root)
    dev = torch.device(device)
    x, y = ds.train_images.to(dev), ds.train_labels.to(dev)
    tx, ty = ds.test_images.to(dev), ds.test_labels.to(dev)
    accuracies, reports = [], []
    with tqdm(total=cfg.runs * cfg.epochs, desc=f"DP-SGD (epsilon {cfg.epsilon:g}, {cfg.runs} models x epochs)",
              unit="epoch", disable=not progress) as bar:
        for r in range(cfg.runs):
            model, report = dpsgd_model(out, x, y, ds.num_classes, cfg, seed + r, on_epoch=lambda _: bar.update(1))
            accuracies.append(accuracy(model, tx, ty))
            reports.append(report)
    metrics = {"accuracy": EvalResult(accuracies).as_dict(), "dp": reports[0], "dp_per_model": reports,
               "config": record, "machine": machine_stamp(device)}
    write_json_atomic(folder.metrics, metrics)
    return metrics
