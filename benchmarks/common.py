"""Shared benchmark plumbing: timing, machine stamp, atomic result files."""
from __future__ import annotations

import os
import statistics
import time

import torch

from kaleido_cuda import provenance
from kaleido_cuda.atomic import write_json_atomic

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_time(fn, device: str, *, warmup: int = 2, min_repeats: int = 5, budget_s: float = 3.0) -> float:
    """Median wall time of fn() in seconds after warm-up; repeats until min_repeats and the budget."""
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
    """The commit of this checkout, versions, CPU/GPU and thread count (kaleido_cuda.provenance)."""
    return provenance.machine_stamp(device, repo=os.path.dirname(os.path.abspath(__file__)))


write_json = write_json_atomic  # the benchmarks' name for it
