"""Provenance stamps for results files: which commit, machine and versions produced a figure."""
from __future__ import annotations

import os
import platform
import subprocess
import time
from typing import Optional

import torch


def git_commit(repo: Optional[str] = None) -> str:
    """Short commit of the git checkout at `repo` (default: the working directory), '-dirty' when
    tracked files changed, 'unknown' outside a checkout."""
    try:
        here = repo or os.getcwd()
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


def machine_stamp(device: str = "cpu", repo: Optional[str] = None) -> dict:
    """Where a figure came from: commit, date, versions, CPU/GPU, threads, allocator settings."""
    from ...ops import build_info

    stamp = {
        "commit": git_commit(repo),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "build": build_info(),
        # Allocator settings change CPU timings (glibc returning freed pages costs page faults).
        "env": {k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "OMP_", "LD_PRELOAD"))},
    }
    if device.startswith("cuda"):
        stamp["gpu"] = torch.cuda.get_device_name()
    return stamp
