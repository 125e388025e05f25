"""One table of every committed digits result: methods x init x IPC, from the results files that
`digits_table.py` wrote (benchmarks/results/digits_table*.json), each row naming its file, commit,
iterations and the command that made it. Nothing is re-run.

    python benchmarks/digits_summary.py [--results benchmarks/results] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS  # noqa: E402

from kaleido_cuda.lab.files.atomic import write_text_atomic  # noqa: E402

METHOD_ORDER, INIT_ORDER = ("dm", "dc", "mtt"), ("kt", "real", "noise")


def collect(results: str):
    rows, baselines, held, sources = [], {}, None, []
    for path in sorted(glob.glob(os.path.join(results, "digits_table*.json"))):
        table = json.load(open(path))
        name = os.path.basename(path)
        sources.append((name, table["command"], table["machine"]["commit"], table["machine"]["torch_threads"]))
        for ipc, b in table.get("baselines", {}).items():
            baselines.setdefault(int(ipc), b)
        for r in table["rows"]:
            if r.get("strength", 1.0) != 1.0:
                continue  # exploratory strength probes live in their own files
            rows.append(dict(r, source=name))
            held = held or r["metrics"]["privacy"]
    rows.sort(key=lambda r: (-r["ipc"], METHOD_ORDER.index(r["method"]), INIT_ORDER.index(r["init"])))
    return rows, baselines, held, sources


def markdown(rows, baselines, held, sources) -> str:
    lines = ["# Digits: every method, initialisation and IPC (collected from digits_table*.json)", "",
             "| method | init | IPC | iterations | accuracy % | NN SSIM mean | NN SSIM max | SSIM > 0.9 | s / iteration | file |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["metrics"]
        a, p, t = m["accuracy"], m["privacy"], m["timing"]
        lr = f" (learned lr {m['eval']['lr']:.3g})" if r["method"] == "mtt" else ""
        lines.append(f"| {r['method'].upper()} | {r['init']} | {r['ipc']} | {t['iterations']} | "
                     f"{100 * a['mean']:.1f} +- {100 * a['std']:.1f}{lr} | {p['nn_ssim_mean']:.3f} | "
                     f"{p['nn_ssim_max']:.3f} | {100 * p['frac_ssim_over_0.9']:.0f}% | "
                     f"{t['seconds_per_iteration']:.2f} | {r['source']} |")
    for ipc in sorted(baselines, reverse=True):
        b = baselines[ipc]["random_real"]
        lines.append(f"| random real subset | - | {ipc} | - | {100 * b['mean']:.1f} +- {100 * b['std']:.1f} "
                     f"| 1.000 | 1.000 | 100% | - | |")
    if baselines:
        full = next(iter(baselines.values()))["full"]
        lines.append(f"| full training set ({full['epochs']} epochs) | - | all | - | {100 * full['mean']:.1f} "
                     f"| - | - | - | - | |")
    if held:
        lines.append(f"| held-out real test images | - | - | - | - | {held['heldout_nn_ssim_mean']:.3f} | "
                     f"{held['heldout_nn_ssim_max']:.3f} | {100 * held['heldout_frac_ssim_over_0.9']:.0f}% | - | |")
    lines += ["", "Sources (file: command, commit, torch threads):", ""]
    lines += [f"- {name}: `{command}`, {commit}, {threads}" for name, command, commit, threads in sources]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=RESULTS, help="folder with digits_table*.json")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args(argv)
    text = markdown(*collect(args.results))
    write_text_atomic(os.path.join(args.out, "digits_summary.md"), text)
    print(text)


if __name__ == "__main__":
    main()
