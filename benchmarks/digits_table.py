"""The digits results table: `kaleido distill` with default options for each (method, init, IPC).
A DC iteration at IPC 10 is 10 matching rounds with 50 network epochs between them: on a 2-core CPU,
run it on a GPU or with fewer --iterations.

    python benchmarks/digits_table.py [--methods dm] [--inits kt real noise] [--ipcs 10 1]
                                      [--iterations 300] [--runs-dir runs/digits] [--out DIR]
                                      [--buffer runs/buffers/digits_convnet] [--batch-syn N]

Each configuration is one run folder under --runs-dir (a finished run is reused, an interrupted one
resumes from its checkpoint); the baselines (random real subset, full training set) are computed by
the first run of each IPC and shared. Writes DIR/STEM.{json,md} (default digits_table), stamped
with the commit and the machine, after every run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, command_line, machine_stamp, stamp_line, write_json  # noqa: E402

from kaleido_cuda.lab.distill import DCConfig, DMConfig, MTTConfig  # noqa: E402
from kaleido_cuda.lab.files.atomic import write_text_atomic  # noqa: E402
from kaleido_cuda.lab.files.layout import BufferFolder  # noqa: E402
from kaleido_cuda.lab.pipeline.config import RunConfig  # noqa: E402
from kaleido_cuda.lab.pipeline.distill import distill_run  # noqa: E402


def markdown(result) -> str:
    m = result["machine"]
    lines = [f"# Distillation on the digits with `kaleido distill` defaults ({result['iterations']} iterations)", "",
             stamp_line(m),
             f"command: `{result['command']}`", "",
             "| method | init | IPC | accuracy % | NN SSIM mean | NN SSIM max | SSIM > 0.9 | NN L2 mean | s / iteration |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        a, p, t = r["metrics"]["accuracy"], r["metrics"]["privacy"], r["metrics"]["timing"]
        init = r["init"] + (f" (strength {r['strength']:g})" if r["init"] == "kt" and r.get("strength", 1.0) != 1.0 else "")
        lines.append(f"| {r['method']} | {init} | {r['ipc']} | {100 * a['mean']:.1f} +- {100 * a['std']:.1f} "
                     f"| {p['nn_ssim_mean']:.3f} | {p['nn_ssim_max']:.3f} | {100 * p['frac_ssim_over_0.9']:.0f}% "
                     f"| {p['nn_l2_mean']:.2f} | {t['seconds_per_iteration']:.2f} |")
    for ipc, b in sorted(result["baselines"].items()):
        lines.append(f"| random real subset | - | {ipc} | {100 * b['random_real']['mean']:.1f} +- "
                     f"{100 * b['random_real']['std']:.1f} | 1.000 | 1.000 | 100% | 0.00 | - |")
    full = next(iter(result["baselines"].values()), None)
    if full:
        lines.append(f"| full training set ({full['full']['epochs']} epochs) | - | all | {100 * full['full']['mean']:.1f} | - | - | - | - | - |")
    if result["rows"]:
        p = result["rows"][0]["metrics"]["privacy"]
        lines.append(f"| held-out real test images | - | - | - | {p['heldout_nn_ssim_mean']:.3f} | {p['heldout_nn_ssim_max']:.3f} "
                     f"| {100 * p['heldout_frac_ssim_over_0.9']:.0f}% | {p['heldout_nn_l2_mean']:.2f} | - |")
    return "\n".join(lines) + "\n"


def ensure_buffer(path: str) -> None:
    """Trains the digits expert buffer with `kaleido buffer`'s defaults unless it is finished."""
    from kaleido_cuda.lab.train.data import load_dataset
    from kaleido_cuda.lab.distill import BufferConfig, train_buffer

    if os.path.exists(BufferFolder(path).meta):
        return
    ds = load_dataset("digits")
    print(f"training the expert buffer {path}", flush=True)
    train_buffer(ds.train_images, ds.train_labels, ds.test_images, ds.test_labels, ds.num_classes, BufferConfig(),
                 path, dataset="digits", progress=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["dm"])
    ap.add_argument("--inits", nargs="+", default=["kt", "real", "noise"])
    ap.add_argument("--ipcs", nargs="+", type=int, default=[10, 1])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--runs-dir", default="runs/digits")
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    ap.add_argument("--stem", default="digits_table", help="result file name without extension")
    ap.add_argument("--strength", type=float, default=1.0, help="KT strength (default 1, the CLI's default)")
    ap.add_argument("--seed", type=int, default=0, help="selection, KT draws, distillation and evaluation seed")
    ap.add_argument("--no-baselines", action="store_true", help="skip the baselines (exploratory runs)")
    ap.add_argument("--buffer", default="runs/buffers/digits_convnet",
                    help="mtt: expert buffer (made with `kaleido buffer`'s defaults when missing)")
    ap.add_argument("--batch-syn", type=int, default=None, help="mtt: synthetic images per student step (default all)")
    args = ap.parse_args(argv)
    result = {"machine": machine_stamp("cpu"), "iterations": args.iterations,
              "command": command_line("digits_table.py", argv),
              "rows": [], "baselines": {}}
    if "mtt" in args.methods:
        ensure_buffer(args.buffer)
    for ipc in args.ipcs:
        for method in args.methods:
            for init in args.inits:
                suffix = f"_s{args.strength:g}" if init == "kt" and args.strength != 1.0 else ""
                suffix += f"_seed{args.seed}" if args.seed else ""
                out = os.path.join(args.runs_dir, f"{method}_{init}_ipc{ipc}{suffix}")
                metrics_path = os.path.join(out, "metrics.json")
                if os.path.exists(metrics_path):
                    metrics = json.load(open(metrics_path))
                else:
                    cfg = RunConfig(dataset="digits", method=method, ipc=ipc, init=init, strength=args.strength,
                                    seed=args.seed, kt_views=1,  # the committed table's single chain
                                    dm=DMConfig(iterations=args.iterations, seed=args.seed),
                                    dc=DCConfig(iterations=args.iterations, seed=args.seed),
                                    mtt=MTTConfig(iterations=args.iterations, buffer=args.buffer, dataset="digits", seed=args.seed,
                                                  batch_syn=args.batch_syn),
                                    baselines=not args.no_baselines and str(ipc) not in result["baselines"])
                    print(f"{method} {init} IPC {ipc} -> {out}", flush=True)
                    metrics = distill_run(cfg, out, resume=True, progress=False)
                if "baselines" in metrics:
                    result["baselines"].setdefault(str(ipc), metrics["baselines"])
                result["rows"].append({"method": method, "init": init, "ipc": ipc, "strength": args.strength,
                                       "seed": args.seed, "run": out,
                                       "metrics": metrics})
                write_json(os.path.join(args.out, args.stem + ".json"), result)
                write_text_atomic(os.path.join(args.out, args.stem + ".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
