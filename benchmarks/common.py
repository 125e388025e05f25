"""Shared benchmark plumbing: timing, machine stamp, atomic result files."""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch

from kaleido_cuda.lab.files import provenance
from kaleido_cuda.lab.files.atomic import write_json_atomic

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def command_line(script: str, argv) -> str:
    """How a result file says it was made: `python benchmarks/SCRIPT ARGS`."""
    return " ".join(["python", f"benchmarks/{script}"] + (argv if argv is not None else sys.argv[1:]))


def stamp_line(machine: dict) -> str:
    """The markdown line naming the commit, torch, the CPU and the date of a result."""
    m = machine
    return f"commit {m['commit']}, torch {m['torch']}, {m['cpu']} ({m['torch_threads']} threads), {m['date']}"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --tiny (scripts/gpu_check.sh --dry-run, in the test suite): one timed call of everything, at tiny
# sizes, to show that a benchmark still runs end to end; its figures mean nothing.
TINY = {"on": False}


def use_tiny(on: bool) -> None:
    TINY["on"] = bool(on)


def median_time(fn, device: str, *, warmup: int = 2, min_repeats: int = 5, budget_s: float = 3.0) -> float:
    """Median wall time of fn() in seconds after warm-up; repeats until min_repeats and the budget."""
    if TINY["on"]:
        warmup, min_repeats, budget_s = 0, 1, 0.0
    for _ in range(warmup):
        fn()
    sync(device)
    times, start = [], time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - start < budget_s and len(times) < 200):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine_stamp(device: str) -> dict:
    """The commit of this checkout, versions, CPU/GPU and thread count (kaleido_cuda.lab.files.provenance)."""
    return provenance.machine_stamp(device, repo=os.path.dirname(os.path.abspath(__file__)))


write_json = write_json_atomic  # the benchmarks' name for it


def committed_rows(path, args) -> list:
    """The rows of an earlier run of a table script with the same budget (args.iterations and
    args.eval_epochs), none otherwise: a fresh checkout has no run folders (they are not committed),
    so a resumed table carries on from the rows its committed JSON holds."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        old = json.load(f)
    same = old.get("iterations") == args.iterations and old.get("eval_epochs") == args.eval_epochs
    return list(old.get("rows", [])) if same else []
