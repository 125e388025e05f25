"""Shared benchmark plumbing: timing, machine stamp, atomic result files."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time

import torch

from kaleido_cuda.atomic import write_text_atomic

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


def git_commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_stamp(device: str) -> dict:
    import kaleido_cuda

    stamp = {
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "build": kaleido_cuda.build_info(),
        # Allocator settings change CPU timings (glibc returning freed pages costs page faults).
        "env": {k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "OMP_", "LD_PRELOAD"))},
    }
    if device.startswith("cuda"):
        stamp["gpu"] = torch.cuda.get_device_name()
    return stamp


def write_json(path: str, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
