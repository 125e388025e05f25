"""Benchmark of the fused KT op against the plain-PyTorch reference and an eager chain.

    python benchmarks/bench_op.py [--device cpu|cuda|all] [--out DIR] [--quick]

Implementations, all doing the full chain (fold, affine, bilinear, colour, cutout, noise):
  fused      kaleido_cuda.kaleidoscope: one pass, hand-written backward
  reference  kaleido_cuda.reference.kaleidoscope: the test oracle (gathers, autograd)
  eager      the usual eager code: colour and cutout elementwise, a folded affine grid,
             one grid_sample, torch.randn noise
Times are medians after warm-up; results go to DIR/bench_op_<device>.{json,md}.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kaleido_cuda as kc  # noqa: E402
from common import RESULTS, machine_stamp, median_time, use_tiny, write_json  # noqa: E402
from kaleido_cuda.lab.files.atomic import write_text_atomic  # noqa: E402

SIZES = [(256, 3, 32, 32), (64, 3, 128, 128), (32, 3, 224, 224)]
TINY_SIZES = [(2, 3, 8, 8)]
CUDA_COPY_SIZE = (256, 3, 224, 224)


# 'full': the 'kt' preset with every stage on (cutout included).
# 'affine_colour_cutout': the same without fold and noise: the work that one affine_grid +
#   grid_sample and elementwise colour and cutout express directly.
CHAINS = ("full", "affine_colour_cutout")


def chain_params(chain, n, h, w, device):
    p = kc.sample_params(n, "kt", size=(h, w), seed=0, cutout=0.25)
    if chain == "affine_colour_cutout":
        p.fold_k = torch.zeros_like(p.fold_k)
        p.noise_std = torch.zeros_like(p.noise_std)
    return p.to(device)


def eager_chain(x, p):
    """What a user would write without the fused op: elementwise colour and cutout, an affine grid
    (folded when a fold is on), one grid_sample, torch.randn noise (when noise is on)."""
    n, c, h, w = x.shape
    b, s, con = (t.view(-1, 1, 1, 1) for t in (p.brightness, p.saturation, p.contrast))
    y = x + b
    m = y.mean(1, keepdim=True)
    y = (y - m) * s + m
    m = y.mean((1, 2, 3), keepdim=True)
    y = (y - m) * con + m
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    cut = p.cutout.view(-1, 4, 1, 1)
    inside = (rows >= cut[:, 0:1]) & (rows < cut[:, 2:3]) & (cols >= cut[:, 1:2]) & (cols < cut[:, 3:4])
    y = y * (~inside)
    if not bool((p.fold_k > 0).any()):
        grid = F.affine_grid(p.affine, [n, c, h, w], align_corners=False)
        y = F.grid_sample(y, grid, mode="bilinear", padding_mode=p.padding_mode, align_corners=False)
        return y + p.noise_std.view(-1, 1, 1, 1) * torch.randn_like(y) if bool((p.noise_std > 0).any()) else y
    base = F.affine_grid(torch.eye(2, 3, device=x.device).expand(n, 2, 3), [n, c, h, w], align_corners=False)
    u, v = base[..., 0], base[..., 1]
    k = p.fold_k.view(-1, 1, 1).to(x.dtype)
    cx, cy = p.fold_center[:, 0].view(-1, 1, 1), p.fold_center[:, 1].view(-1, 1, 1)
    phase = p.fold_phase.view(-1, 1, 1)
    dx, dy = (u - cx) * (w / 2), (v - cy) * (h / 2)
    r, t = torch.hypot(dx, dy), torch.atan2(dy, dx) - phase
    wedge = math.pi / k.clamp(min=1)
    mm = torch.remainder(t, 2 * wedge)
    mm = torch.where(mm > wedge, 2 * wedge - mm, mm)
    u = torch.where(k > 0, cx + r * torch.cos(mm + phase) / (w / 2), u)
    v = torch.where(k > 0, cy + r * torch.sin(mm + phase) / (h / 2), v)
    grid = torch.einsum("nij,nhwj->nhwi", p.affine[:, :, :2], torch.stack([u, v], -1)) + p.affine[:, None, None, :, 2]
    y = F.grid_sample(y, grid, mode="bilinear", padding_mode=p.padding_mode, align_corners=False)
    return y + p.noise_std.view(-1, 1, 1, 1) * torch.randn_like(y)


IMPLS = {"fused": kc.kaleidoscope, "reference": kc.reference.kaleidoscope, "eager": eager_chain}


def time_impl(fn, x, p, device, backward):
    xg = x.detach().requires_grad_(backward)
    grad = torch.ones_like(x)

    def run():
        y = fn(xg, p)
        if backward:
            y.backward(grad)
            xg.grad = None

    return median_time(run, device, budget_s=2.0 if device == "cpu" else 1.0, min_repeats=3 if device == "cpu" else 10)


def agreement(device, shape):
    """Max abs difference fused vs reference, forward and input gradient, float32 and float64."""
    out = {}
    for dtype in (torch.float32, torch.float64):
        n, c, h, w = shape
        g = torch.Generator().manual_seed(1)
        x = torch.randn(n, c, h, w, generator=g, dtype=dtype).to(device)
        grad = torch.randn(n, c, h, w, generator=g, dtype=dtype).to(device)
        p = chain_params("full", n, h, w, device)
        res = []
        for fn in (kc.kaleidoscope, kc.reference.kaleidoscope):
            xg = x.clone().requires_grad_(True)
            y = fn(xg, p)
            y.backward(grad)
            res.append((y.detach(), xg.grad))
        out[str(dtype).replace("torch.", "")] = {
            "forward_max_abs_diff": float((res[0][0] - res[1][0]).abs().max()),
            "grad_max_abs_diff": float((res[0][1] - res[1][1]).abs().max()),
        }
    return out


def bench_device(device, sizes, quick):
    rows = []
    for shape in sizes:
        n, c, h, w = shape
        x = torch.rand(shape, device=device)
        for chain in CHAINS:
            p = chain_params(chain, n, h, w, device)
            row = {"shape": list(shape), "chain": chain}
            for name, fn in IMPLS.items():
                if name == "reference" and (chain != "full" or (quick and shape != sizes[0])):
                    continue
                for backward in (False, True):
                    key = f"{name}_{'fwd_bwd' if backward else 'fwd'}_ms"
                    row[key] = 1e3 * time_impl(fn, x, p, device, backward)
                    print(f"  {device} {shape} {chain} {key}: {row[key]:.3f}", flush=True)
            for other in ("reference", "eager"):
                for mode in ("fwd", "fwd_bwd"):
                    if f"{other}_{mode}_ms" in row:
                        row[f"speedup_vs_{other}_{mode}"] = row[f"{other}_{mode}_ms"] / row[f"fused_{mode}_ms"]
            rows.append(row)
    return rows


def breakdown(device, shape):
    """Where the fused time goes at one size: the op with one stage at a time, raw op calls (no
    Python checks, no autograd), next to torch.randn_like for the same number of values."""
    n, c, h, w = shape
    x = torch.rand(shape, device=device)
    grad = torch.ones_like(x)
    stages = {"identity": kc.KTParams.identity(1, device=device)}
    noise = kc.KTParams.identity(1, device=device)
    noise.noise_std = torch.full((1,), 0.1, device=device)
    stages["noise_only"] = noise
    fold = kc.KTParams.identity(1, device=device)
    fold.fold_k = torch.full((1,), 4, dtype=torch.int64, device=device)
    stages["fold_only"] = fold
    stages["full"] = chain_params("full", n, h, w, device)
    out = {"shape": list(shape), "randn_like_ms": 1e3 * median_time(lambda: torch.randn_like(x), device)}
    for name, p in stages.items():
        args = p.tensors()
        out[f"raw_fwd_{name}_ms"] = 1e3 * median_time(
            lambda: torch.ops.kaleido_cuda.kaleidoscope(x, *args, 0, p.padding_mode), device)
        out[f"raw_bwd_{name}_ms"] = 1e3 * median_time(
            lambda: torch.ops.kaleido_cuda.kaleidoscope_backward(grad, *args, p.padding_mode), device)
    return out


def copy_ratio(device, shape):
    """Fused forward time over a device-to-device copy of the same bytes (the memory-bound floor),
    for each chain and for identity parameters."""
    x = torch.rand(shape, device=device)
    y = torch.empty_like(x)
    n, _, h, w = x.shape
    out = {"shape": list(shape), "copy_ms": 1e3 * median_time(lambda: y.copy_(x), device, min_repeats=20)}
    variants = {chain: chain_params(chain, n, h, w, device) for chain in CHAINS}
    variants["identity"] = kc.KTParams.identity(1, device=device)
    for name, p in variants.items():
        ms = 1e3 * median_time(lambda: kc.kaleidoscope(x, p), device, min_repeats=20)
        out[f"fused_fwd_{name}_ms"] = ms
        out[f"fused_over_copy_{name}"] = ms / out["copy_ms"]
    return out


def markdown(result):
    lines = [f"# bench_op on {result['machine'].get('gpu', result['machine']['cpu'])} ({result['machine']['device']})",
             "", f"commit {result['machine']['commit']}, torch {result['machine']['torch']}, "
             f"{result['machine']['torch_threads']} threads, {result['machine']['date']}", "",
             "| shape | chain | fused fwd ms | fused fwd+bwd ms | reference fwd+bwd ms | eager fwd ms | eager fwd+bwd ms "
             "| x ref (fwd+bwd) | x eager (fwd) | x eager (fwd+bwd) |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    for r in result["rows"]:
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            tuple(r["shape"]), r["chain"], fmt(r["fused_fwd_ms"], ".2f"), fmt(r["fused_fwd_bwd_ms"], ".2f"),
            fmt(r.get("reference_fwd_bwd_ms"), ".2f"), fmt(r["eager_fwd_ms"], ".2f"), fmt(r["eager_fwd_bwd_ms"], ".2f"),
            fmt(r.get("speedup_vs_reference_fwd_bwd"), ".1f"), fmt(r["speedup_vs_eager_fwd"], ".2f"),
            fmt(r["speedup_vs_eager_fwd_bwd"], ".2f")))
    lines += ["", "Agreement with the reference (max abs difference, (256,3,32,32), full chain):", ""]
    for dtype, d in result["agreement"].items():
        lines.append(f"- {dtype}: forward {d['forward_max_abs_diff']:.2e}, gradient {d['grad_max_abs_diff']:.2e}")
    if "breakdown" in result:
        b = result["breakdown"]
        lines += ["", f"Breakdown at {tuple(b['shape'])}, raw op calls (no checks, no autograd), ms:", "",
                  "| parameters | forward | backward |", "|---|---|---|"]
        for name in ("identity", "noise_only", "fold_only", "full"):
            lines.append(f"| {name} | {b[f'raw_fwd_{name}_ms']:.2f} | {b[f'raw_bwd_{name}_ms']:.2f} |")
        lines += ["", f"torch.randn_like for the same number of values: {b['randn_like_ms']:.2f} ms"]
    if "copy" in result:
        c = result["copy"]
        lines += ["", f"Forward at {tuple(c['shape'])} against a device-to-device copy of {c['copy_ms']:.3f} ms:", ""]
        for name in (*CHAINS, "identity"):
            lines.append(f"- {name}: {c[f'fused_fwd_{name}_ms']:.3f} ms = {c[f'fused_over_copy_{name}']:.2f}x the copy")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    ap.add_argument("--quick", action="store_true", help="reference only at the smallest size")
    ap.add_argument("--tiny", action="store_true", help="one call of everything at a tiny size (a dry run, not a figure)")
    args = ap.parse_args(argv)
    use_tiny(args.tiny)
    sizes, copy_size = (TINY_SIZES, TINY_SIZES[0]) if args.tiny else (SIZES, CUDA_COPY_SIZE)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    for device in devices:
        print(f"bench_op on {device}", flush=True)
        result = {"machine": machine_stamp(device), "command": " ".join(["python", "benchmarks/bench_op.py"] + (argv or sys.argv[1:])),
                  "agreement": agreement(device, sizes[0]), "rows": bench_device(device, sizes, args.quick)}
        result["breakdown"] = breakdown(device, sizes[0])
        if device == "cuda":
            result["copy"] = copy_ratio(device, copy_size)
        write_json(os.path.join(args.out, f"bench_op_{device}.json"), result)
        text = markdown(result)
        write_text_atomic(os.path.join(args.out, f"bench_op_{device}.md"), text)
        print(text)


if __name__ == "__main__":
    main()
