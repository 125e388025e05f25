"""Augmentation benchmark: the fused DSA drop-in against eager DSA and kornia, side by side.

    python benchmarks/bench_augment.py [--device cpu|cuda|all] [--out DIR] [--quick]

Implementations (per-sample parameters, as in training; forward, and forward + backward to x):
  fused DSA S / M        kaleido_cuda.dsa.DiffAugment, modes 'S' and 'M': one op call
  eager DSA S / M        the published DSA chain's structure (benchmarks/dsa_published.py):
                         per-op passes, per-sample Python construction of the affine matrices
  eager DSA M (vec.)     kaleido_cuda.dsa.DiffAugment(impl='eager'): the same passes with
                         vectorised parameters (a stronger baseline than the published code)
  kornia                 AugmentationSequential(ColorJiggle, RandomErasing, RandomHorizontalFlip,
                         RandomAffine), the closest kornia ops to DSA's mode 'M'
  kornia + noise         the same plus RandomGaussianNoise
  fused KT full          the full KT chain ('kt' preset: fold, affine, colour, cutout, noise)
Ratios: each DSA-like implementation against fused DSA M; kornia + noise against fused KT full
(the fused op doing more work: a kaleidoscope fold on top). Peak memory is the most bytes
allocated at once during forward + backward beyond what existed before (input and incoming
gradient excluded), in units of the input's size. kornia is a benchmark-only dependency: without
it those rows are skipped. Results: DIR/bench_augment_<device>[_TAG].{json,md,png}.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dsa_published  # noqa: E402
from common import RESULTS, machine_stamp, median_time, use_tiny, write_json  # noqa: E402

import kaleido_cuda as kc  # noqa: E402
from kaleido_cuda.lab.files.atomic import atomic_path, write_text_atomic  # noqa: E402
from kaleido_cuda.dsa import DEFAULT_STRATEGY, DiffAugment, ParamDiffAug  # noqa: E402

SIZES = [(256, 3, 32, 32), (64, 3, 128, 128), (32, 3, 224, 224)]
CUDA_EXTRA_SIZE = (256, 3, 224, 224)  # the H200 figure of the issue
TINY_SIZES = [(2, 3, 8, 8)]
STRATEGY = DEFAULT_STRATEGY
NOISE_STD = 0.1


def _param(mode):
    p = ParamDiffAug()
    p.aug_mode = mode
    return p


def kornia_sequence(noise: bool):
    import kornia.augmentation as K

    ops = [K.ColorJiggle(brightness=0.5, contrast=0.5, saturation=0.5, p=1.0),
           K.RandomErasing(scale=(0.25, 0.25), ratio=(1.0, 1.0), p=1.0),  # DSA's half-side square
           K.RandomHorizontalFlip(p=0.5),
           K.RandomAffine(degrees=15.0, translate=(0.125, 0.125), scale=(1 / 1.2, 1.2), p=1.0)]
    if noise:
        ops.append(K.RandomGaussianNoise(std=NOISE_STD, p=1.0))
    return K.AugmentationSequential(*ops)


def implementations(device):
    """name -> (function of x, the fused implementation its ratio is taken against)."""
    impls = {
        "fused DSA S": (lambda x: DiffAugment(x, STRATEGY, -1, _param("S")), "fused DSA M"),
        "fused DSA M": (lambda x: DiffAugment(x, STRATEGY, -1, _param("M")), "fused DSA M"),
        "eager DSA S": (lambda x: dsa_published.diff_augment(x, STRATEGY, _param("S")), "fused DSA S"),
        "eager DSA M": (lambda x: dsa_published.diff_augment(x, STRATEGY, _param("M")), "fused DSA M"),
        "eager DSA M (vec.)": (lambda x: DiffAugment(x, STRATEGY, -1, _param("M"), impl="eager"), "fused DSA M"),
    }
    try:
        kornia_plain, kornia_noise = kornia_sequence(False).to(device), kornia_sequence(True).to(device)
    except ImportError:
        print("kornia is not installed: its rows are skipped (pip install kornia)", flush=True)
    else:
        impls["kornia"] = (kornia_plain, "fused DSA M")
        impls["kornia + noise"] = (kornia_noise, "fused KT full")

    def kt_full(x):
        n, _, h, w = x.shape
        p = kc.sample_params(n, "kt", size=(h, w), cutout=0.25, noise=(NOISE_STD, NOISE_STD))
        return kc.kaleidoscope(x, p.to(x.device))

    impls["fused KT full"] = (kt_full, "fused KT full")
    return impls


def time_it(fn, x, grad, device, backward, quick):
    xg = x.detach().requires_grad_(backward)

    def run():
        if backward:
            fn(xg).backward(grad)
            xg.grad = None
        else:
            with torch.no_grad():
                fn(xg)

    budget = (0.5 if quick else 2.0) if device == "cpu" else (0.3 if quick else 1.0)
    return median_time(run, device, warmup=2, min_repeats=3 if device == "cpu" else 10, budget_s=budget)


def peak_extra_bytes(fn, x, grad, device) -> int:
    """Most bytes allocated at once during one forward + backward, beyond what was allocated before."""
    xg = x.detach().requires_grad_(True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn(xg).backward(grad)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(xg).backward(grad)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def bench_device(device, sizes, quick):
    impls = implementations(device)
    rows = []
    for shape in sizes:
        x = torch.rand(shape, device=device)
        grad = torch.randn(shape, device=device)
        times = {}
        for name, (fn, _) in impls.items():
            torch.manual_seed(0)
            times[name] = {"fwd": time_it(fn, x, grad, device, False, quick),
                           "fwd_bwd": time_it(fn, x, grad, device, True, quick),
                           "peak": peak_extra_bytes(fn, x, grad, device) / (x.numel() * x.element_size())}
            print(f"  {shape} {name}: fwd {times[name]['fwd'] * 1e3:.2f} ms, fwd+bwd {times[name]['fwd_bwd'] * 1e3:.2f} ms,"
                  f" peak {times[name]['peak']:.1f}x input", flush=True)
        for name, (_, against) in impls.items():
            t, base = times[name], times[against]
            rows.append({"shape": list(shape), "impl": name, "against": against,
                         "fwd_ms": t["fwd"] * 1e3, "fwd_bwd_ms": t["fwd_bwd"] * 1e3, "peak_extra_x_input": t["peak"],
                         "ratio_fwd": t["fwd"] / base["fwd"], "ratio_fwd_bwd": t["fwd_bwd"] / base["fwd_bwd"]})
    return rows


def breakdown(device, shape, quick):
    """Where the fused mode-'M' time goes: drawing and composing the parameters, the raw kernels
    (no Python checks, no autograd), and the whole DiffAugment call."""
    from kaleido_cuda import dsa
    from kaleido_cuda.dsa import sampling as dsa_sampling

    x = torch.rand(shape, device=device)
    grad = torch.randn(shape, device=device)
    param = _param("M")
    n, _, h, w = shape
    d = dsa.draw_params(n, (h, w), STRATEGY, -1, param)
    p = dsa_sampling.compose(d).to(device)
    budget = dict(warmup=3, min_repeats=10, budget_s=0.5 if quick else 1.5)
    raw = (x, *p.tensors(), 0, "zeros")
    out = {
        "draw_ms": median_time(lambda: dsa.draw_params(n, (h, w), STRATEGY, -1, param), "cpu", **budget),
        "compose_ms": median_time(lambda: dsa_sampling.compose(d), "cpu", **budget),
        "kernel_fwd_ms": median_time(lambda: torch.ops.kaleido_cuda.kaleidoscope(*raw), device, **budget),
        "kernel_bwd_ms": median_time(lambda: torch.ops.kaleido_cuda.kaleidoscope_backward(grad, *p.tensors(), "zeros"),
                                     device, **budget),
    }
    out = {k: v * 1e3 for k, v in out.items()}
    out["diffaugment_fwd_bwd_ms"] = time_it(lambda t: DiffAugment(t, STRATEGY, -1, param), x, grad, device, True, quick) * 1e3
    out["shape"] = list(shape)
    return out


def markdown(result):
    m = result["machine"]
    lines = [f"# bench_augment on {m.get('gpu', m['cpu'])} ({m['device']})", "",
             f"commit {m['commit']}, torch {m['torch']}, kornia {result['kornia']}, {m['torch_threads']} threads, {m['date']}"
             + (", glibc allocator tuned (kaleido_cuda.tune_cpu_allocator)" if result.get("tuned_allocator") else ""),
             f"command: `{result['command']}`" + (f", environment {m['env']}" if m.get("env") else ""), "",
             "Ratio = this implementation's time / the time of the fused implementation named in 'against' "
             "(above 1: the fused op is that many times faster).", "",
             "| shape | implementation | fwd ms | fwd+bwd ms | against | x (fwd) | x (fwd+bwd) | peak extra memory (x input) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {tuple(r['shape'])} | {r['impl']} | {r['fwd_ms']:.2f} | {r['fwd_bwd_ms']:.2f} | {r['against']} "
                     f"| {r['ratio_fwd']:.1f} | {r['ratio_fwd_bwd']:.1f} | {r['peak_extra_x_input']:.1f} |")
    b = result["breakdown"]
    lines += ["", f"Fused mode 'M' at {tuple(b['shape'])}, where the time goes (ms): draw {b['draw_ms']:.3f}, "
              f"compose {b['compose_ms']:.3f}, forward kernel {b['kernel_fwd_ms']:.3f}, backward kernel "
              f"{b['kernel_bwd_ms']:.3f}; the whole DiffAugment forward+backward {b['diffaugment_fwd_bwd_ms']:.3f} "
              "(the rest: checks, autograd, allocation)."]
    return "\n".join(lines) + "\n"


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = sorted({tuple(r["shape"]) for r in result["rows"]}, key=lambda s: s[2])
    impls = list(dict.fromkeys(r["impl"] for r in result["rows"]))
    fig, axes = plt.subplots(1, len(shapes), figsize=(4.2 * len(shapes), 4.2), squeeze=False)
    for ax, shape in zip(axes[0], shapes):
        rows = {r["impl"]: r for r in result["rows"] if tuple(r["shape"]) == shape}
        names = [n for n in impls if n in rows]
        values = [rows[n]["fwd_bwd_ms"] for n in names]
        colours = ["tab:green" if n.startswith("fused") else "tab:orange" if n.startswith("eager") else "tab:blue" for n in names]
        ax.barh(range(len(names)), values, color=colours)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("forward + backward, ms")
        ax.set_xlim(0, max(values) * 1.18)
        ax.set_title(str(shape), fontsize=9)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=7)
    m = result["machine"]
    fig.suptitle(f"DSA-style augmentation, {m.get('gpu', m['cpu'])} ({m['device']}, {m['torch_threads']} threads), commit {m['commit']}",
                 fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    ap.add_argument("--quick", action="store_true", help="shorter timing budgets")
    ap.add_argument("--tiny", action="store_true", help="one call of everything at a tiny size (a dry run, not a figure)")
    ap.add_argument("--tag", default="", help="suffix of the result files, e.g. for a run with other allocator settings")
    ap.add_argument("--tune-allocator", action="store_true",
                    help="call kaleido_cuda.tune_cpu_allocator() first (glibc keeps freed pages; all implementations benefit)")
    args = ap.parse_args(argv)
    use_tiny(args.tiny)
    tuned = kc.tune_cpu_allocator() if args.tune_allocator else False
    try:
        import kornia
        kornia_version = kornia.__version__
    except ImportError:
        kornia_version = None
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    for device in devices:
        print(f"bench_augment on {device}", flush=True)
        sizes = TINY_SIZES if args.tiny else SIZES + ([CUDA_EXTRA_SIZE] if device == "cuda" else [])
        result = {"machine": machine_stamp(device), "kornia": kornia_version, "tuned_allocator": tuned,
                  "command": " ".join(["python", "benchmarks/bench_augment.py"] + (argv if argv is not None else sys.argv[1:])),
                  "rows": bench_device(device, sizes, args.quick), "breakdown": breakdown(device, sizes[0], args.quick)}
        stem = os.path.join(args.out, f"bench_augment_{device}" + (f"_{args.tag}" if args.tag else ""))
        write_json(stem + ".json", result)
        text = markdown(result)
        write_text_atomic(stem + ".md", text)
        plot(result, stem + ".png")
        print(text)


if __name__ == "__main__":
    main()
