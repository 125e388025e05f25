"""K ConvNets trained together (kaleido_cuda.batched.train_models) against one after another
(evaluate.train_model), on the digits: throughput in model-epochs per second.

    python benchmarks/bench_batched.py [--models 8] [--out DIR]

Two workloads: an IPC-10-sized set (100 images, one batch per epoch: the audit's and evaluation's
target models) and the whole training split (1,257 images, 5 batches of 256: shadow-model sized).

Then where one model's training step (IPC-10 set, DSA, SGD) spends its time, from torch.profiler:
convolutions, the other ATen kernels, and the rest (autograd, dispatch, Python). Training K models
together runs the same kernels on K times the data, so on a CPU it can save at most that rest:
1 / (1 - rest share) is the ceiling of its speed-up. The step's FLOP rate (FlopCounterMode) is
put beside a large float32 matrix product's, the most this CPU delivers.
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
from kaleido_cuda.models import get_model  # noqa: E402

CONVOLUTIONS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution",
                "aten::convolution", "aten::conv2d", "aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward")


def step_profile(images, labels, num_classes, steps: int = 10) -> dict:
    """Shares of one training step's wall time (evaluation protocol, one batch) by kind of work,
    its FLOP rate and the peak float32 matrix-product rate of this CPU."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    cfg = EvalConfig(epochs=steps)
    train_model(images, labels, num_classes, EvalConfig(epochs=3), seed=98)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        train_model(images, labels, num_classes, cfg, seed=97)
        wall = time.perf_counter() - t0
    events = prof.key_averages()
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONVOLUTIONS) / 1e6
    kernels = sum(e.self_cpu_time_total for e in events if e.key.startswith("aten::")) / 1e6
    model = get_model("convnet", images.shape[1], num_classes, tuple(images.shape[-2:]))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(images), labels).backward()
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    gemm = 10 * 2 * 2048 ** 3 / (time.perf_counter() - t0) / 1e9
    rest = max(0.0, wall - kernels)
    return {"steps": steps, "wall_s": wall, "convolution_share": conv / wall, "other_kernel_share": (kernels - conv) / wall,
            "rest_share": rest / wall, "batching_ceiling": wall / (wall - rest) if wall > rest else float("inf"),
            "step_gflops": counter.get_total_flops() * steps / wall / 1e9, "sgemm_gflops": gemm}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--workloads", nargs="*", choices=["ipc10", "split"], default=["ipc10", "split"],
                    help="ipc10 and/or split (8 models together on the training split take about 21 GB: more than a "
                         "24 GB machine has free beside other work)")
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    args = ap.parse_args(argv)
    ds = load_dataset("digits")
    subset = select_real(ds.train_labels, 10, ds.num_classes, seed=0)
    profile = step_profile(ds.train_images[subset], ds.train_labels[subset], ds.num_classes)  # first: little memory
    print(profile, flush=True)
    workloads = {"ipc10": ("IPC-10 set (100 images)", ds.train_images[subset], ds.train_labels[subset], 10),
                 "split": ("training split (1,257 images)", ds.train_images, ds.train_labels, 2)}
    workloads = [workloads[key] for key in args.workloads]
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
              "rows": rows, "step_profile": profile}
    m = result["machine"]
    lines = [f"# {args.models} ConvNets trained together (vmap) against one after another", "",
             stamp_line(m),
             f"command: `{result['command']}`; evaluation protocol (ConvNet width 128, batch 256, DSA mode 'S')", "",
             "| workload | epochs | one by one s | together s | speed-up | model-epochs/s one by one | together |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['workload']} | {r['epochs']} | {r['one_by_one_s']:.1f} | {r['together_s']:.1f} | {r['speedup']:.2f}x "
              f"| {r['model_epochs_per_s_one_by_one']:.2f} | {r['model_epochs_per_s_together']:.2f} |" for r in rows]
    if "split" not in args.workloads:
        lines += ["", "The training-split workload was left out (`--workloads`): 8 models together on it took about "
                  "21 GB and were killed for memory on this 24 GB machine (they ran in 2026-11-29's results)."]
    p = profile
    lines += ["", f"One model's step on the IPC-10 set ({p['steps']} steps, torch.profiler): convolutions "
              f"{100 * p['convolution_share']:.0f}%, other ATen kernels {100 * p['other_kernel_share']:.0f}%, the rest "
              f"(autograd, dispatch, Python) {100 * p['rest_share']:.0f}% of {p['wall_s']:.1f} s. Training models "
              f"together can save at most the rest: a ceiling of {p['batching_ceiling']:.2f}x. The step runs at "
              f"{p['step_gflops']:.0f} GFLOP/s; a 2048 x 2048 float32 matrix product at {p['sgemm_gflops']:.0f} GFLOP/s."]
    write_json(os.path.join(args.out, "bench_batched_cpu.json"), result)
    write_text_atomic(os.path.join(args.out, "bench_batched_cpu.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
