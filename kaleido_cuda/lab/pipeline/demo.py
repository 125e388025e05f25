"""The demo job: KT applied to scikit-learn's bundled handwritten digits (real data, no download).

Writes a PNG grid (one column per class, one row per KT strength) and report.json, and prints a
speed line: fused against reference, forward+backward, on the whole digits set at 32x32.
"""
from __future__ import annotations

import os
import statistics
import time

import torch

from ... import reference
from ...ops import build_info, kaleidoscope
from ...presets import sample_params
from ..files.atomic import atomic_path, write_json_atomic
from ..train.data import digits_32

STRENGTHS = (0.0, 0.25, 0.5, 1.0)


def load_digits_32(device="cpu"):
    """sklearn's 1797 digits at 32x32 in [0, 1] (kaleido_cuda.data.digits_32) and labels, on device."""
    images, labels, _ = digits_32()
    return images.to(device), labels.to(device)


def _median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _fwd_bwd(fn, x, params):
    def run():
        xg = x.detach().requires_grad_(True)
        fn(xg, params).sum().backward()
    return run


def save_grid(rows, labels, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), rows[0][1].shape[0]
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * 1.0, n_rows * 1.1))
    for r, (title, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.imshow(images[c, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(str(int(labels[c])), fontsize=9)
            if c == 0:
                ax.set_ylabel(title, fontsize=8)
    fig.suptitle("Kaleidoscopic Transformation of sklearn digits (rows: KT strength)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def run_demo(out: str, seed: int = 0, device: str = "cpu", repeats: int = 5) -> dict:
    images, labels = load_digits_32(device)
    first = torch.tensor([int((labels == c).nonzero()[0]) for c in range(10)], device=images.device)
    samples, sample_labels = images[first], labels[first]
    data_std = float(images.std())
    rows = []
    for s in STRENGTHS:
        p = sample_params(10, "kt", size=32, seed=seed, strength=s, data_std=data_std).to(device)
        rows.append((f"strength {s}", kaleidoscope(samples, p).clamp(0, 1)))
    grid_path = os.path.join(out, "kt_grid.png")
    save_grid(rows, sample_labels, grid_path)

    params = sample_params(images.shape[0], "kt", size=32, seed=seed, data_std=data_std, cutout=0.25).to(device)
    fused_ms = _median_ms(_fwd_bwd(kaleidoscope, images, params), repeats)
    ref_ms = _median_ms(_fwd_bwd(reference.kaleidoscope, images, params), repeats)
    report = {
        "data": {"name": "sklearn digits", "images": int(images.shape[0]), "size": [32, 32]},
        "grid": os.path.abspath(grid_path),
        "timing": {"batch": list(images.shape), "fused_fwd_bwd_ms": fused_ms,
                   "reference_fwd_bwd_ms": ref_ms, "speedup": ref_ms / fused_ms,
                   "threads": torch.get_num_threads(), "device": device},
        "build": build_info(),
        "seed": seed,
    }
    write_json_atomic(os.path.join(out, "report.json"), report)
    return report
