"""Seconds per iteration of DM and DC split by class across torchrun's ranks, at 1 and 2 ranks.

    python benchmarks/bench_scale.py [--ranks 1 2] [--iterations 3] [--out DIR]

Workloads: on the digits, DM at IPC 10 and DC at IPC 1 and IPC 10. DC at IPC 10 runs 10 matching
rounds with network training on the synthetic set between them, so the per-round gather of the
synthetic set and the training every rank repeats are in the figure; it runs 5 training epochs
per round instead of DC's 50, because one iteration of DC's schedule takes minutes on this CPU
(the repeated part then grows about tenfold). On CIFAR-sized random data (3x32x32, 10 classes of
256 images): DM at IPC 10 and DC at IPC 1. Each configuration
is launched on its own (one process, or `torchrun --standalone --nproc-per-node R`) with one thread
per process (OMP_NUM_THREADS=1), so 2 ranks use the machine's 2 cores; the figure is the median
seconds of iterations 2..N (iteration 1 warms up), from rank 0's loop history.

From the times at 1 and 2 ranks, each workload is split into a part that every rank repeats
(network draw, DC's network training, collectives) and a per-class part: t(R) = repeated +
max classes per rank x per-class. Writes DIR/bench_scale_cpu.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, command_line, machine_stamp, stamp_line, write_json  # noqa: E402

# name -> (method, data, ipc, config changes)
WORKLOADS = {
    "DM, digits, IPC 10": ("dm", "digits", 10, {}),
    "DC, digits, IPC 1": ("dc", "digits", 1, {}),
    "DC, digits, IPC 10, 5 training epochs per round": ("dc", "digits", 10, {"inner_loop": 5}),
    "DM, CIFAR-sized random data, IPC 10": ("dm", "cifar", 10, {}),
    "DC, CIFAR-sized random data, IPC 1": ("dc", "cifar", 1, {}),
}
CLASSES = 10


def worker(name: str, iterations: int, out_json: str) -> None:
    """One configuration, in this process (a rank under torchrun, or alone)."""
    import torch

    from kaleido_cuda.lab.files.atomic import write_json_atomic
    from kaleido_cuda.lab.train.data import load_dataset
    from kaleido_cuda.lab.distill import DCConfig, DMConfig, distill_dc, distill_dm
    from kaleido_cuda.lab.distributed import close_world, init_world
    from kaleido_cuda.init import initialize

    world = init_world("cpu")
    method, data, ipc, changes = WORKLOADS[name]
    if data == "digits":
        ds = load_dataset("digits")
        x, y = ds.train_images, ds.train_labels
    else:
        g = torch.Generator().manual_seed(0)
        y = torch.arange(CLASSES).repeat_interleave(256)
        x = torch.randn(len(y), 3, 32, 32, generator=g)
    syn, syn_y = initialize(x, y, ipc, "real", seed=0, num_classes=CLASSES)
    loop, config = (distill_dm, DMConfig) if method == "dm" else (distill_dc, DCConfig)
    _, history = loop(syn, syn_y, x, y, CLASSES, config(iterations=iterations, **changes), progress=False)
    if world.main:
        write_json_atomic(out_json, {"iteration_seconds": history.iteration_seconds, "world_size": world.size})
    close_world()


def launch(name: str, ranks: int, iterations: int) -> float:
    """Median seconds per iteration (after the first) of one configuration at `ranks` processes."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    with tempfile.TemporaryDirectory() as tmp:
        out_json = os.path.join(tmp, "times.json")
        args = [os.path.abspath(__file__), "--worker", name, "--iterations", str(iterations), "--json", out_json]
        if ranks == 1:
            cmd = [sys.executable, *args]
        else:
            torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
            cmd = [torchrun, "--standalone", "--nproc-per-node", str(ranks), *args]
        subprocess.run(cmd, env=env, check=True, cwd=tmp)
        times = json.load(open(out_json))["iteration_seconds"]
    return statistics.median(times[1:] if len(times) > 1 else times)


def split(t1: float, t2: float) -> dict:
    """t(R) = repeated + ceil(classes / R) x per_class, fitted to R = 1 and 2."""
    per_class = max(t1 - t2, 0.0) / (CLASSES - CLASSES // 2)
    repeated = max(t1 - CLASSES * per_class, 0.0)
    predicted = {r: repeated + math.ceil(CLASSES / r) * per_class for r in (8,)}
    return {"per_class_s": per_class, "repeated_s": repeated, "predicted_8_ranks_s": predicted[8],
            "predicted_8_ranks_speedup": t1 / predicted[8],
            "predicted_8_ranks_speedup_100_classes": (repeated + 100 * per_class) /
            (repeated + math.ceil(100 / 8) * per_class)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--iterations", type=int, default=3, help="iterations per configuration (the first warms up)")
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.iterations, args.json)
    if args.iterations < 2:
        ap.error("--iterations must be at least 2 (the first warms up)")
    rows = []
    for name in args.workloads:
        times = {r: launch(name, r, args.iterations) for r in args.ranks}
        row = {"workload": name, "s_per_it": {str(r): t for r, t in times.items()},
               "speedup": {str(r): times[args.ranks[0]] / t for r, t in times.items()}}
        if 1 in times and 2 in times:
            row.update(split(times[1], times[2]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    machine = machine_stamp("cpu")
    machine["torch_threads"] = 1  # per process: each configuration runs with OMP_NUM_THREADS=1
    result = {"machine": machine, "iterations": args.iterations, "ranks": args.ranks, "rows": rows,
              "command": command_line("bench_scale.py", argv)}
    stem = os.path.join(args.out, "bench_scale_cpu")
    write_json(stem + ".json", result)
    head = " | ".join(f"s/it, {r} rank{'s' if r > 1 else ''}" for r in args.ranks)
    lines = ["# DM and DC split by class across torchrun ranks (gloo, one thread per rank)", "",
             stamp_line(machine) + f"; command: `{result['command']}`", "",
             f"| workload | {head} | speedup | per class s | repeated by every rank s | 8 ranks, 10 classes (model) "
             "| 8 ranks, 100 classes (model) |",
             "|---|" + "---|" * (len(args.ranks) + 5)]
    for r in rows:
        cells = " | ".join(f"{r['s_per_it'][str(k)]:.3f}" for k in args.ranks)
        last = str(args.ranks[-1])
        model = (f"{r['per_class_s']:.3f} | {r['repeated_s']:.3f} | {r['predicted_8_ranks_speedup']:.1f}x | "
                 f"{r['predicted_8_ranks_speedup_100_classes']:.1f}x") if "per_class_s" in r else "- | - | - | -"
        lines.append(f"| {r['workload']} | {cells} | {r['speedup'][last]:.2f}x | {model} |")
    lines += ["", "Model: t(R) = repeated + ceil(classes / R) x per class, fitted to the 1- and 2-rank times; "
              "the 100-class column scales the per-class part to 100 classes (CIFAR-100) with the same "
              "repeated part. Iteration 1 of each configuration is a warm-up and not counted."]
    text = "\n".join(lines) + "\n"
    from kaleido_cuda.lab.files.atomic import write_text_atomic

    write_text_atomic(stem + ".md", text)
    print(text)


if __name__ == "__main__":
    main()
