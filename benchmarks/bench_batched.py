"""K ConvNets trained together (kaleido_cuda.batched.train_models) against one after another
(evaluate.train_model), on the digits: throughput in model-epochs per second.

    python benchmarks/bench_batched.py [--models 8] [--out DIR]

Two workloads: an IPC-10-sized set (100 images, one batch per epoch: the audit's and evaluation's
target models) and the whole training split (1,257 images, 5 batches of 256: shadow-model sized).
Writes DIR/bench_batched_cpu.{json,md} with the commit and the machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, command_line, machine_stamp, stamp_line, write_json  # noqa: E402

import torch  # noqa: E402

from kaleido_cuda.atomic import write_text_atomic  # noqa: E402
from kaleido_cuda.batched import train_models  # noqa: E402
from kaleido_cuda.data import load_dataset  # noqa: E402
from kaleido_cuda.evaluate import EvalConfig, train_model  # noqa: E402
from kaleido_cuda.init import select_real  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    args = ap.parse_args(argv)
    ds = load_dataset("digits")
    subset = select_real(ds.train_labels, 10, ds.num_classes, seed=0)
    workloads = [("IPC-10 set (100 images)", ds.train_images[subset], ds.train_labels[subset], 10),
                 ("training split (1,257 images)", ds.train_images, ds.train_labels, 2)]
    seeds = list(range(args.models))
    rows = []
    for name, images, labels, epochs in workloads:
        cfg = EvalConfig(epochs=epochs)
        train_model(images, labels, ds.num_classes, EvalConfig(epochs=1), seed=99)  # warm-up
        t0 = time.perf_counter()
        for s in seeds:
            train_model(images, labels, ds.num_classes, cfg, seed=s)
        one_by_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_models(images, labels, ds.num_classes, cfg, seeds)
        together = time.perf_counter() - t0
        rows.append({"workload": name, "models": args.models, "epochs": epochs, "one_by_one_s": one_by_one,
                     "together_s": together, "speedup": one_by_one / together,
                     "model_epochs_per_s_one_by_one": args.models * epochs / one_by_one,
                     "model_epochs_per_s_together": args.models * epochs / together})
        print(rows[-1], flush=True)
    result = {"machine": machine_stamp("cpu"), "torch_threads": torch.get_num_threads(),
              "command": command_line("bench_batched.py", argv),
              "rows": rows}
    m = result["machine"]
    lines = [f"# {args.models} ConvNets trained together (vmap) against one after another", "",
             stamp_line(m),
             f"command: `{result['command']}`; evaluation protocol (ConvNet width 128, batch 256, DSA mode 'S')", "",
             "| workload | epochs | one by one s | together s | speed-up | model-epochs/s one by one | together |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['workload']} | {r['epochs']} | {r['one_by_one_s']:.1f} | {r['together_s']:.1f} | {r['speedup']:.2f}x "
              f"| {r['model_epochs_per_s_one_by_one']:.2f} | {r['model_epochs_per_s_together']:.2f} |" for r in rows]
    write_json(os.path.join(args.out, "bench_batched_cpu.json"), result)
    write_text_atomic(os.path.join(args.out, "bench_batched_cpu.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
