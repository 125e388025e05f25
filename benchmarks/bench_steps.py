"""How much of a distillation step is augmentation, with the fused op and with DSA's eager chain.

    python benchmarks/bench_steps.py [--device cpu|cuda] [--iterations 4] [--buffer DIR] [--out DIR]

For each method (DM at IPC 10, DC at IPC 1, MTT at IPC 1 and at IPC 10 with 20 images per student
step, on the digits; DM at IPC 10 on CIFAR-sized random data, 3x32x32 with 256 real images per
class) and each augmentation (fused, eager, none), the seconds per iteration after one warm-up
iteration. MTT reads the expert buffer --buffer (default runs/buffers/digits_convnet, the one the
results table uses); without one, it trains a one-expert buffer of 12 epochs first (about a minute). The augmentation share of a step is
(t_with - t_none) / t_with: forward and backward of the augmentation, everything it costs.
Writes DIR/bench_steps_<device>.{json,md}.
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, machine_stamp, write_json  # noqa: E402

from kaleido_cuda.lab.files.atomic import write_text_atomic  # noqa: E402
from kaleido_cuda.lab.files.layout import BufferFolder  # noqa: E402
from kaleido_cuda.lab.train.data import load_dataset  # noqa: E402
from kaleido_cuda.lab.distill import (BufferConfig, DCConfig, DMConfig, MTTConfig, distill_dc, distill_dm,  # noqa: E402
                                  distill_mtt, train_buffer)
from kaleido_cuda.init import initialize  # noqa: E402

AUGMENTS = ("fused", "eager", "none")


def digits_buffer(path, ds, device, epochs=12):
    if os.path.exists(BufferFolder(path).meta):
        return path
    path = tempfile.mkdtemp(prefix="kaleido_bench_buffer_")
    train_buffer(ds.train_images.to(device), ds.train_labels.to(device), ds.test_images.to(device),
                 ds.test_labels.to(device), ds.num_classes, BufferConfig(experts=1, epochs=epochs), path, "digits",
                 progress=False)
    return path


def tiny_workloads(device):
    """The same loops on a tiny random set (--tiny: a dry run of the script, not a figure)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat_interleave(4)
    x = torch.randn(len(y), 1, 8, 8, generator=g).to(device)
    y = y.to(device)
    small = dict(width=8)
    buffer = tempfile.mkdtemp(prefix="kaleido_bench_buffer_")
    train_buffer(x, y, x, y, 10, BufferConfig(experts=1, epochs=2, width=8), buffer, "tiny", progress=False)
    mtt = functools.partial(MTTConfig, buffer=buffer, max_start_epoch=1, expert_epochs=1, syn_steps=2, **small)
    return {"DM, tiny": (distill_dm, functools.partial(DMConfig, **small), x, y, 1),
            "DC, tiny": (distill_dc, functools.partial(DCConfig, **small), x, y, 1),
            "MTT, tiny": (distill_mtt, mtt, x, y, 1)}


def workloads(device, buffer):
    ds = load_dataset("digits")
    x, y = ds.train_images.to(device), ds.train_labels.to(device)
    mtt = functools.partial(MTTConfig, buffer=digits_buffer(buffer, ds, device))
    g = torch.Generator().manual_seed(0)
    cifar_y = torch.arange(10).repeat_interleave(256)
    cifar_x = torch.randn(len(cifar_y), 3, 32, 32, generator=g)
    return {
        "DM, digits, IPC 10": (distill_dm, DMConfig, x, y, 10),
        "DC, digits, IPC 1": (distill_dc, DCConfig, x, y, 1),
        "MTT, digits, IPC 1": (distill_mtt, mtt, x, y, 1),
        "MTT, digits, IPC 10, 20 images per student step": (distill_mtt, functools.partial(mtt, batch_syn=20), x, y, 10),
        "DM, CIFAR-sized random data, IPC 10": (distill_dm, DMConfig, cifar_x.to(device), cifar_y.to(device), 10),
    }


def seconds_per_iteration(loop, config, x, y, ipc, augment, iterations):
    """Median seconds of iterations 1..N (iteration 0 warms up)."""
    syn, syn_y = initialize(x, y, ipc, "real", seed=0)
    _, history = loop(syn, syn_y, x, y, 10, config(iterations=iterations + 1, augment=augment), progress=False)
    return statistics.median(history.iteration_seconds[1:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--buffer", default="runs/buffers/digits_convnet", help="MTT's expert buffer (digits, convnet)")
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    ap.add_argument("--tiny", action="store_true", help="the loops on a tiny random set, one iteration (a dry run, not a figure)")
    args = ap.parse_args(argv)
    rows = []
    runs = tiny_workloads(args.device) if args.tiny else workloads(args.device, args.buffer)
    iterations = 1 if args.tiny else args.iterations
    for name, (loop, config, x, y, ipc) in runs.items():
        t = {a: seconds_per_iteration(loop, config, x, y, ipc, a, iterations) for a in AUGMENTS}
        row = {"workload": name, **{f"{a}_s_per_it": t[a] for a in AUGMENTS},
               "fused_share": max(t["fused"] - t["none"], 0.0) / t["fused"],
               "eager_share": max(t["eager"] - t["none"], 0.0) / t["eager"],
               "step_speedup": t["eager"] / t["fused"]}
        rows.append(row)
        print(row, flush=True)
    result = {"machine": machine_stamp(args.device), "iterations": args.iterations, "rows": rows,
              "command": " ".join(["python", "benchmarks/bench_steps.py"] + (argv if argv is not None else sys.argv[1:]))}
    stem = os.path.join(args.out, f"bench_steps_{args.device}")
    write_json(stem + ".json", result)
    m = result["machine"]
    lines = [f"# Augmentation's share of a distillation step ({m.get('gpu', m['cpu'])}, {m['torch_threads']} threads)", "",
             f"commit {m['commit']}, torch {m['torch']}, {m['date']}; command: `{result['command']}`", "",
             "| workload | s/it fused | s/it eager | s/it no augmentation | augmentation share, fused | augmentation share, eager | step: eager / fused |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['fused_s_per_it']:.3f} | {r['eager_s_per_it']:.3f} | {r['none_s_per_it']:.3f} "
                     f"| {100 * r['fused_share']:.1f}% | {100 * r['eager_share']:.1f}% | {r['step_speedup']:.2f}x |")
    text = "\n".join(lines) + "\n"
    write_text_atomic(stem + ".md", text)
    print(text)


if __name__ == "__main__":
    main()
