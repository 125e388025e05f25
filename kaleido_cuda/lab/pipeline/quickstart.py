"""The README's main job (`kaleido quickstart`): DM on the bundled digits at IPC 10, from KT
initialisation and from real initialisation, with one comparison table (accuracy, nearest-neighbour
SSIM, time) beside a random real subset of the same size and held-out real images.

Its budget is small, so that the README's quick start, setup included, stays within its stated
time (QUICK below): 40 DM iterations on real batches of QUICK["batch_real"] images per class
(instead of 300 on every image of the class), 2 evaluation models of 100 epochs (instead of 3 of
500), and no full-training-set model (the KT-against-real comparison does not need it). The table
states this budget and the job's time; docs/results/distillation.md has the measured time and the
full-length results.
"""
from __future__ import annotations

import dataclasses
import os
import time

import torch

from ..distill import DMConfig
from ..files.atomic import write_json_atomic, write_text_atomic
from ..files.provenance import machine_stamp
from ..train.data import load_dataset
from ..train.evaluate import EvalConfig
from .baselines import train_baselines
from .config import RunConfig
from .distill import distill_run

QUICK = dict(iterations=40, batch_real=64, eval_runs=2, eval_epochs=100)


def quick_config(init: str, seed: int = 0, device: str = "cpu") -> RunConfig:
    return RunConfig(dataset="digits", method="dm", ipc=10, init=init, seed=seed, device=device,
                     dm=DMConfig(iterations=QUICK["iterations"], batch_real=QUICK["batch_real"], seed=seed),
                     eval=EvalConfig(runs=QUICK["eval_runs"], epochs=QUICK["eval_epochs"]), baselines=False)


def run_quickstart(out: str, seed: int = 0, device: str = "cpu", progress: bool = True) -> dict:
    start = time.perf_counter()
    runs = {}
    for init in ("kt", "real"):
        print(f"DM on digits, IPC 10, {init} initialisation -> {os.path.join(out, init)}", flush=True)
        runs[init] = distill_run(quick_config(init, seed, device), os.path.join(out, init), progress=progress)
    subset = train_baselines(quick_config("real", seed, device), load_dataset("digits"), torch.device(device),
                             progress, full=False)["random_real"]
    table = comparison(out, runs, subset, seed, device, time.perf_counter() - start)
    write_json_atomic(os.path.join(out, "comparison.json"), table)
    text = markdown(table)
    write_text_atomic(os.path.join(out, "comparison.md"), text)
    print(text)
    return table


def comparison(out: str, runs: dict, subset: dict, seed: int, device: str, seconds: float) -> dict:
    kt = runs["kt"]
    rows = [{"set": f"DM, {name} init", "accuracy_mean": m["accuracy"]["mean"], "accuracy_std": m["accuracy"]["std"],
             "nn_ssim_mean": m["privacy"]["nn_ssim_mean"], "frac_ssim_over_0.9": m["privacy"]["frac_ssim_over_0.9"],
             "seconds_per_iteration": m["timing"]["seconds_per_iteration"]}
            for name, m in (("KT", kt), ("real", runs["real"]))]
    rows += [{"set": "random real subset (IPC 10)", "accuracy_mean": subset["mean"], "accuracy_std": subset["std"],
              "nn_ssim_mean": 1.0, "frac_ssim_over_0.9": 1.0},
             {"set": "held-out real test images", "nn_ssim_mean": kt["privacy"]["heldout_nn_ssim_mean"],
              "frac_ssim_over_0.9": kt["privacy"]["heldout_frac_ssim_over_0.9"]}]
    eval_cfg = EvalConfig(runs=QUICK["eval_runs"], epochs=QUICK["eval_epochs"])
    return {"machine": machine_stamp(device), "command": f"kaleido quickstart --out {out}",
            "config": {**QUICK, "dataset": "digits", "method": "dm", "ipc": 10, "seed": seed,
                       "eval": dataclasses.asdict(eval_cfg)},
            "job_seconds": seconds, "rows": rows}


def markdown(table: dict) -> str:
    def cell(row, key, fmt, scale=1.0):
        return fmt.format(scale * row[key]) if key in row else "-"

    c, m = table["config"], table.get("machine", {})
    lines = [f"commit {m.get('commit')}, torch {m.get('torch')}, {m.get('cpu')} ({m.get('torch_threads')} threads), "
             f"{m.get('date')}; command: `{table.get('command')}`; the job took {table['job_seconds']:.0f} s", "",
             f"DM on the digits, IPC {c['ipc']}, {c['iterations']} iterations on real batches of {c['batch_real']} "
             f"images per class, accuracy of {c['eval_runs']} ConvNets trained {c['eval_epochs']} epochs on each set "
             "(test split of 540 images):", "",
             "| set | accuracy % | nearest-neighbour SSIM (mean) | SSIM > 0.9 | s / iteration |",
             "|---|---|---|---|---|"]
    for r in table["rows"]:
        acc = cell(r, "accuracy_mean", "{:.1f}", 100)
        if "accuracy_std" in r:
            acc += f" +- {100 * r['accuracy_std']:.1f}"
        lines.append(f"| {r['set']} | {acc} | {cell(r, 'nn_ssim_mean', '{:.3f}')} | "
                     f"{cell(r, 'frac_ssim_over_0.9', '{:.0f}%', 100)} | {cell(r, 'seconds_per_iteration', '{:.2f}')} |")
    lines += ["", "A synthetic set whose images are no closer to the training images than held-out real images "
              "are does not copy any one of them. This is a short run: docs/results/distillation.md has the "
              "full-length figures."]
    return "\n".join(lines) + "\n"
