"""The main job of the README: DM on the bundled digits at IPC 10, from KT initialisation and from
real initialisation, with one comparison table (accuracy, nearest-neighbour SSIM, time).

It uses a lighter configuration than `kaleido distill`'s defaults so that setup plus the job fit in
10 minutes on 2 CPU cores (QUICK below: 40 DM iterations instead of 300, 2 evaluation models of 100
epochs instead of 3 of 500, the full-set baseline for 10 epochs). The README's results table comes
from full-default runs; this job shows the same comparison, smaller.
"""
from __future__ import annotations

import dataclasses
import os

from ..distill import DMConfig
from ..files.atomic import write_json_atomic, write_text_atomic
from ..files.provenance import machine_stamp
from ..train.evaluate import EvalConfig
from .config import RunConfig
from .distill import distill_run

QUICK = dict(iterations=40, eval_runs=2, eval_epochs=100, full_epochs=10)


def run_quickstart(out: str, seed: int = 0, device: str = "cpu", progress: bool = True) -> dict:
    rows = {}
    for init in ("kt", "real"):
        cfg = RunConfig(dataset="digits", method="dm", ipc=10, init=init, seed=seed, device=device,
                        dm=DMConfig(iterations=QUICK["iterations"], seed=seed),
                        eval=EvalConfig(runs=QUICK["eval_runs"], epochs=QUICK["eval_epochs"]),
                        full_epochs=QUICK["full_epochs"], baselines=(init == "kt"))
        print(f"DM on digits, IPC 10, {init} initialisation -> {os.path.join(out, init)}", flush=True)
        rows[init] = distill_run(cfg, os.path.join(out, init), progress=progress)
    kt, real = rows["kt"], rows["real"]
    table = {
        "machine": machine_stamp(device),
        "command": f"kaleido quickstart --out {out}",
        "config": {**QUICK, "dataset": "digits", "method": "dm", "ipc": 10, "seed": seed,
                   "eval": dataclasses.asdict(EvalConfig(runs=QUICK["eval_runs"], epochs=QUICK["eval_epochs"]))},
        "rows": [
            {"set": f"DM, {name} init", "accuracy_mean": m["accuracy"]["mean"], "accuracy_std": m["accuracy"]["std"],
             "nn_ssim_mean": m["privacy"]["nn_ssim_mean"], "frac_ssim_over_0.9": m["privacy"]["frac_ssim_over_0.9"],
             "seconds_per_iteration": m["timing"]["seconds_per_iteration"]}
            for name, m in (("KT", kt), ("real", real))
        ] + [
            {"set": "random real subset (IPC 10)", "accuracy_mean": kt["baselines"]["random_real"]["mean"],
             "accuracy_std": kt["baselines"]["random_real"]["std"], "nn_ssim_mean": 1.0, "frac_ssim_over_0.9": 1.0},
            {"set": f"full training set ({QUICK['full_epochs']} epochs)", "accuracy_mean": kt["baselines"]["full"]["mean"]},
            {"set": "held-out real test images", "nn_ssim_mean": kt["privacy"]["heldout_nn_ssim_mean"],
             "frac_ssim_over_0.9": kt["privacy"]["heldout_frac_ssim_over_0.9"]},
        ],
    }
    write_json_atomic(os.path.join(out, "comparison.json"), table)
    text = markdown(table)
    write_text_atomic(os.path.join(out, "comparison.md"), text)
    print(text)
    return table


def markdown(table: dict) -> str:
    def cell(row, key, fmt, scale=1.0):
        return fmt.format(scale * row[key]) if key in row else "-"

    c, m = table["config"], table.get("machine", {})
    lines = [f"commit {m.get('commit')}, torch {m.get('torch')}, {m.get('cpu')} ({m.get('torch_threads')} threads), "
             f"{m.get('date')}; command: `{table.get('command')}`", "",
             f"DM on the digits, IPC {c['ipc']}, {c['iterations']} iterations, accuracy of {c['eval_runs']} ConvNets "
             f"trained {c['eval_epochs']} epochs on each set (test split of 540 images):", "",
             "| set | accuracy % | nearest-neighbour SSIM (mean) | SSIM > 0.9 | s / iteration |",
             "|---|---|---|---|---|"]
    for r in table["rows"]:
        acc = cell(r, "accuracy_mean", "{:.1f}", 100)
        if "accuracy_std" in r:
            acc += f" +- {100 * r['accuracy_std']:.1f}"
        lines.append(f"| {r['set']} | {acc} | {cell(r, 'nn_ssim_mean', '{:.3f}')} | "
                     f"{cell(r, 'frac_ssim_over_0.9', '{:.0f}%', 100)} | {cell(r, 'seconds_per_iteration', '{:.2f}')} |")
    lines += ["", "A synthetic set whose images are no closer to the training images than held-out real images "
              "are does not copy any one of them."]
    return "\n".join(lines) + "\n"
