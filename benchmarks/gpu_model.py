"""A roofline model of the KT CUDA kernels per GPU, from what nvcc emits: a model, not a
measurement, until scripts/gpu_check.sh measures the real thing on a GPU.

    python benchmarks/gpu_model.py [--out DIR]

1. Per-pixel instruction counts. Probe kernels (below) run one output pixel's straight-line code
   for each variant: the geometry (fold on/off x zeros/border/reflection) in the precision of the
   input, one channel's gather and colour, one channel's backward scatter; and, per group of four
   pixels (the forward's unit: they share one Philox block per channel), the noise and the index
   walk, counted as a quarter per pixel. Each is compiled for the GPU's architecture and its SASS is
   counted up to the first EXIT (the fast path: float division's slow-path subroutine is left
   out), by class (scripts/sass_report.py's classes), leaving out the constant-bank loads of the
   probes' by-value parameters (the kernels load a parameter row once per image).
2. Bytes per pass (N C H W elements of s bytes, float32 accumulation):
   forward: the image means (read x), the kernel (read x, write y): 3 n s;
   backward: zero the float32 gradient (4 n), read the upstream gradient (n s), the atomic scatter's
   read-modify-write reaching DRAM (8 n), the contrast pivot pass (8 n), and for 16-bit inputs the
   conversion (4 n + n s). The deterministic backward (fixed point): zero the int64 sums (8 n),
   the largest-|g| pass and the scatter each read the upstream gradient (2 n s), the scatter's
   int64 read-modify-write (16 n), the conversion back (read 8 n, write 4 n), its per-contribution
   instructions from a probe of its own (the two small passes' instructions are left out: they are
   memory bound). A device copy moves 2 n s.
3. Time per pass = the largest of: bytes / bandwidth; all instructions / issue rate (4 warp
   instructions per SM per clock); float32 / float32 rate; float64 / float64 rate; special
   functions / 16 per SM per clock; integer / integer rate. Latency, occupancy, cache misses of the
   gather, atomic contention and launch overhead are not modelled: real times will be higher.

GPU figures: vendor datasheets and architecture whitepapers (non-tensor-core peak rates, boost
clocks): H200 SXM and H100 SXM (NVIDIA H100/H200 datasheets: 67 TFLOPS FP32, 34 TFLOPS FP64,
4.8 / 3.35 TB/s, 132 SMs at 1.98 GHz); A100 SXM 80GB (A100 datasheet: 19.5 / 9.7 TFLOPS, 2.04 TB/s,
108 SMs at 1.41 GHz); L4 (L4 datasheet: 30.3 TFLOPS FP32, FP64 at 1/64, 300 GB/s, 58 SMs at
2.04 GHz); RTX 4090 (Ada whitepaper: 82.6 TFLOPS FP32, FP64 at 1/64, 1,008 GB/s, 128 SMs at
2.52 GHz); RTX 3090 (Ampere GA102 whitepaper: 35.6 TFLOPS FP32, FP64 at 1/64, 936 GB/s, 82 SMs at
1.695 GHz). Instruction rates are TFLOPS / 2 (an FMA is two flops).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from common import RESULTS, command_line, machine_stamp, write_json  # noqa: E402

import sass_report  # noqa: E402

# name: (arch, SMs, boost GHz, FP32 TFLOPS, FP64 TFLOPS, INT32 lanes per SM, memory TB/s)
GPUS = {
    "H200": ("90", 132, 1.98, 67.0, 34.0, 64, 4.8),
    "H100 SXM": ("90", 132, 1.98, 67.0, 34.0, 64, 3.35),
    "A100 SXM": ("80", 108, 1.41, 19.5, 9.7, 64, 2.039),
    "L4": ("89", 58, 2.04, 30.3, 30.3 / 64, 64, 0.3),
    "RTX 4090": ("89", 128, 2.52, 82.6, 82.6 / 64, 64, 1.008),
    "RTX 3090": ("86", 82, 1.695, 35.6, 35.6 / 64, 64, 0.936),
}
SHAPES = [(256, 3, 32, 32), (256, 3, 224, 224)]

PROBES = r'''
#include "kaleido/kt_math.h"
using namespace kaleido;
template <int kPadding, bool kFold, typename acc_t>
__global__ void probe_geometry(SampleParams<acc_t> p, int i, int j, int H, int W, int* off, acc_t* w) {
  const Taps<acc_t, int> t = compute_taps_static<kPadding, kFold, acc_t, int>(p, i, j, H, W);
#pragma unroll
  for (int k = 0; k < 4; ++k) { off[k] = t.offset[k]; w[k] = t.weight[k]; }
  w[4] = t.weight_sum;
}
template <typename scalar_t, typename acc_t>
__global__ void probe_channel(Taps<acc_t, int> t, ColourTerms<acc_t> c, const scalar_t* src, scalar_t* out,
                              acc_t channel_sum) {
  out[0] = static_cast<scalar_t>(colour_value(c, tap_sum(t, src), channel_sum, t.weight_sum));
}
template <typename acc_t>
__global__ void probe_noise(unsigned long long seed, unsigned int group, unsigned long long plane, acc_t sigma,
                            acc_t* out) {
  // One channel's noise for a group of four pixels: one Philox block (the model divides by 4).
  const Normals4<acc_t> z = philox_normals4<acc_t>(seed, group, plane);
#pragma unroll
  for (int l = 0; l < 4; ++l) out[l] += sigma * z.z[l];
}
template <typename acc_t>
__global__ void probe_scatter(Taps<acc_t, int> t, ColourTerms<acc_t> c, acc_t g, acc_t gs, acc_t* dst) {
  const acc_t v = tap_gradient(c, g, gs);
#pragma unroll
  for (int k = 0; k < 4; ++k) if (t.weight[k] != acc_t(0)) atomicAdd(dst + t.offset[k], t.weight[k] * v);
}
__global__ void probe_scatter_fixed(Taps<float, int> t, ColourTerms<float> c, float g, float gs, int e,
                                    unsigned long long* dst) {
  // The deterministic backward's: each contribution rounded to 64-bit fixed point, an integer atomic.
  const float v = tap_gradient(c, g, gs);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if (t.weight[k] == 0.0f) continue;
    const long long q = llrintf(ldexpf(t.weight[k] * v, e));
    if (q != 0) atomicAdd(dst + t.offset[k], static_cast<unsigned long long>(q));
  }
}
__global__ void probe_index(int pixel, int W, int* ij) { const int i = pixel / W; ij[0] = i; ij[1] = pixel - i * W; }
__global__ void probe_group_index(int group, int W, int* ij) {
  // The forward's: a group's first pixel (one division for four pixels), then the walk to the next.
  int i = (group * 4) / W, j = group * 4 - i * W;
#pragma unroll
  for (int l = 0; l < 4; ++l) { ij[2 * l] = i; ij[2 * l + 1] = j; j += 1; if (j == W) { j = 0; i += 1; } }
}
#define GEO(P, F) template __global__ void probe_geometry<P, F, float>(SampleParams<float>, int, int, int, int, int*, float*); \
  template __global__ void probe_geometry<P, F, double>(SampleParams<double>, int, int, int, int, int*, double*);
GEO(0, false) GEO(0, true) GEO(1, false) GEO(1, true) GEO(2, false) GEO(2, true)
template __global__ void probe_channel<float, float>(Taps<float, int>, ColourTerms<float>, const float*, float*, float);
template __global__ void probe_channel<double, double>(Taps<double, int>, ColourTerms<double>, const double*, double*, double);
template __global__ void probe_noise<float>(unsigned long long, unsigned int, unsigned long long, float, float*);
template __global__ void probe_scatter<float>(Taps<float, int>, ColourTerms<float>, float, float, float*);
template __global__ void probe_scatter<double>(Taps<double, int>, ColourTerms<double>, double, double, double*);
'''

PADDING = {"0": "zeros", "1": "border", "2": "reflection"}


def probe_counts(arch: str) -> dict:
    """{probe name: Counter of instruction classes} for one architecture, fast path only."""
    import torch.utils.cpp_extension as ext

    nvcc, cuobjdump = sass_report.find_tool("nvcc"), sass_report.find_tool("cuobjdump")
    with tempfile.TemporaryDirectory() as tmp:
        src, cubin = os.path.join(tmp, "probes.cu"), os.path.join(tmp, "probes.cubin")
        open(src, "w").write(PROBES)
        includes = [f"-I{p}" for p in ext.include_paths()] + [f"-I{os.path.join(ROOT, 'csrc', 'include')}"]
        subprocess.run([nvcc, "-O3", "-std=c++17", "-cubin", f"-arch=sm_{arch}", *includes, src, "-o", cubin],
                       check=True, capture_output=True)
        sass = subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True, check=True).stdout
    out, name, done = {}, None, False
    for line in sass.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            name, done = _probe_name(m.group(1)), False
            out[name] = Counter()
            continue
        m = sass_report.SASS_LINE.match(line)
        if m and name and not done:
            op = m.group(1)
            if op.startswith("EXIT") and not line.split("/*")[1].strip().startswith("@"):
                done = True  # the fast path ends at the first unconditional EXIT
            elif not op.startswith(("NOP", "LDC", "ULDC")):
                # LDC/ULDC read the probe's by-value parameters from the constant bank; the real
                # kernels load a parameter row once per image and keep it in registers.
                out[name][sass_report.classify(op)] += 1
    return out


def _probe_name(mangled: str) -> str:
    m = re.search(r"probe_geometryILi(\d)ELb(\d)E(f|d)", mangled)
    if m:
        return f"geometry {PADDING[m.group(1)]}{' fold' if m.group(2) == '1' else ''} {'f32' if m.group(3) == 'f' else 'f64'}"
    if "probe_scatter_fixed" in mangled:
        return "scatter fixed f32"
    for kind in ("channel", "noise", "scatter"):
        m = re.search(rf"probe_{kind}I(f|d)", mangled)
        if m:
            return f"{kind} {'f32' if m.group(1) == 'f' else 'f64'}"
    return "group index" if "probe_group_index" in mangled else "index"


def pass_time(counts: Counter, pixels: int, bytes_moved: float, gpu) -> tuple:
    """(seconds, bound) of one pass: the largest of the roofline's limits."""
    arch, sms, ghz, fp32_tf, fp64_tf, int_lanes, tbs = gpu
    clock = ghz * 1e9
    total = sum(counts.values())
    limits = {
        "memory": bytes_moved / (tbs * 1e12),
        "issue": total * pixels / (sms * 128 * clock),
        "fp32": counts.get("fp32", 0) * pixels / (fp32_tf * 1e12 / 2),
        "fp64": (counts.get("fp64", 0) + counts.get("fp64_allowed", 0)) * pixels / (fp64_tf * 1e12 / 2),
        "sfu": counts.get("sfu", 0) * pixels / (sms * 16 * clock),
        "integer": counts.get("integer", 0) * pixels / (sms * int_lanes * clock),
    }
    bound = max(limits, key=limits.get)
    return limits[bound], bound


def per_pixel(probes: dict, fold: bool, padding: str, geometry: str, channels: int, backward: bool,
              scatter: str = "scatter f32") -> Counter:
    """One output pixel of a float32 input, every stage on: geometry in `geometry` ('f32' or
    'f64', the latter as before float32 geometry), then per channel the gather and colour and
    the noise (forward) or the scatter (backward: `scatter`, the atomic or the fixed-point one)."""
    c = Counter(probes[f"geometry {padding}{' fold' if fold else ''} {geometry}"])
    if backward:
        c.update(probes["index"])
    per_group = Counter() if backward else Counter(probes["group index"])  # the forward's walk over four pixels
    for _ in range(channels):
        c.update(probes[scatter] if backward else probes["channel f32"])
        if not backward:
            per_group.update(probes["noise f32"])  # one Philox block per channel and group
    for op, count in per_group.items():
        c[op] += count / 4
    return c


def model(probes_by_arch: dict, elem_bytes: int = 4) -> list:
    rows = []
    for name, gpu in GPUS.items():
        probes = probes_by_arch[gpu[0]]
        for shape in SHAPES:
            n, c, h, w = shape
            elements, pixels = n * c * h * w, n * h * w
            copy = 2 * elements * elem_bytes / (gpu[6] * 1e12)
            fwd_bytes = 3 * elements * elem_bytes
            convert_16bit = elements * (4 + elem_bytes) if elem_bytes != 4 else 0
            bwd_bytes = elements * (4 + elem_bytes + 8 + 8) + convert_16bit
            det_bytes = elements * (8 + 2 * elem_bytes + 16 + 12) + convert_16bit
            for fold in (False, True):
                f_counts = per_pixel(probes, fold, "reflection", "f32", c, backward=False)
                b_counts = per_pixel(probes, fold, "reflection", "f32", c, backward=True)
                fwd, fwd_bound = pass_time(f_counts, pixels, fwd_bytes, gpu)
                bwd, bwd_bound = pass_time(b_counts, pixels, bwd_bytes, gpu)
                d_counts = per_pixel(probes, fold, "reflection", "f32", c, backward=True, scatter="scatter fixed f32")
                det, det_bound = pass_time(d_counts, pixels, det_bytes, gpu)
                before, before_bound = pass_time(per_pixel(probes, fold, "reflection", "f64", c, backward=False),
                                                 pixels, fwd_bytes, gpu)
                rows.append({"gpu": name, "shape": list(shape), "fold": fold,
                             "copy_ms": 1e3 * copy, "forward_ms": 1e3 * fwd, "forward_bound": fwd_bound,
                             "forward_over_copy": fwd / copy, "fwd_bwd_ms": 1e3 * (fwd + bwd),
                             "backward_bound": bwd_bound, "backward_ms": 1e3 * bwd,
                             "deterministic_backward_ms": 1e3 * det, "deterministic_backward_bound": det_bound,
                             "forward_f64_geometry_ms": 1e3 * before,
                             "forward_f64_geometry_bound": before_bound, "per_pixel_forward": dict(f_counts)})
    return rows


def markdown(result: dict) -> str:
    lines = ["# Modelled GPU time of the KT op (a model, not a measurement)", "",
             f"commit {result['machine']['commit']}, {result['nvcc']}, {result['machine']['date']}",
             f"command: `{result['command']}`", "",
             "From per-pixel SASS instruction counts of probe kernels (fast path) and the bytes each pass moves; "
             "the largest of the memory, issue, float32, float64, special-function and integer limits "
             "(benchmarks/gpu_model.py says how and cites the GPU figures). Float32 input, every stage on "
             "(noise included), reflection padding (the costliest); the last column is the same input with the "
             "float64 geometry the kernels had before. Latency, occupancy, gather cache misses and atomic contention "
             "are not modelled: real times will be higher. scripts/gpu_check.sh prints these beside what it "
             "measures on a GPU. The deterministic backward is the fixed-point path taken under "
             "torch.use_deterministic_algorithms(True) (docs/kt_op.md, Gradient).", "",
             "| GPU | shape | fold | device copy ms | forward ms | bound | forward / copy | forward+backward ms "
             "| backward bound | backward ms | deterministic backward ms (bound) | forward ms, float64 geometry (before) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['gpu']} | {'x'.join(map(str, r['shape']))} | {'on' if r['fold'] else 'off'} "
                     f"| {r['copy_ms']:.3f} | {r['forward_ms']:.3f} | {r['forward_bound']} "
                     f"| {r['forward_over_copy']:.2f} | {r['fwd_bwd_ms']:.3f} | {r['backward_bound']} "
                     f"| {r['backward_ms']:.3f} | {r['deterministic_backward_ms']:.3f} ({r['deterministic_backward_bound']}) "
                     f"| {r['forward_f64_geometry_ms']:.3f} ({r['forward_f64_geometry_bound']}) |")
    lines += ["", "Per-pixel instructions of the probes (sm_90, fast path):", "",
              "| probe | fp32 | fp64 | fp64 allowed | sfu | integer | memory | control | total |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, c in sorted(result["probes"]["90"].items()):
        lines.append(f"| {name} | {c.get('fp32', 0)} | {c.get('fp64', 0)} | {c.get('fp64_allowed', 0)} "
                     f"| {c.get('sfu', 0)} | {c.get('integer', 0)} | {c.get('memory', 0)} | {c.get('control', 0)} "
                     f"| {sum(c.values())} |")
    return "\n".join(lines) + "\n"


def compare(model_json: str, measured_json: str, gpu_name: str) -> str:
    """The model's figures next to bench_op's measured ones on this GPU (scripts/gpu_check.sh)."""
    import json

    rows = json.load(open(model_json))["rows"]
    measured = json.load(open(measured_json))
    name = next((g for g in GPUS if g.split()[0].lower() in gpu_name.lower()), None)
    lines = [f"model ({name or 'no modelled GPU matches ' + repr(gpu_name)}) against bench_op on {gpu_name}:",
             "| shape | chain | forward ms measured | modelled (fold on) | forward+backward ms measured | modelled |",
             "|---|---|---|---|---|---|"]
    for m in measured["rows"]:
        r = next((r for r in rows if r["gpu"] == name and r["shape"] == m["shape"] and r["fold"]), None)
        lines.append(f"| {'x'.join(map(str, m['shape']))} | {m['chain']} | {m['fused_fwd_ms']:.3f} "
                     f"| {r['forward_ms']:.3f} | {m['fused_fwd_bwd_ms']:.3f} | {r['fwd_bwd_ms']:.3f} |" if r else
                     f"| {'x'.join(map(str, m['shape']))} | {m['chain']} | {m['fused_fwd_ms']:.3f} | - "
                     f"| {m['fused_fwd_bwd_ms']:.3f} | - |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    ap.add_argument("--compare", metavar="BENCH_OP_JSON",
                    help="print the committed model (DIR/gpu_model.json) beside bench_op's measured figures and exit")
    ap.add_argument("--gpu-name", default="", help="with --compare: the measured GPU's name")
    args = ap.parse_args(argv)
    if args.compare:
        print(compare(os.path.join(RESULTS, "gpu_model.json"), args.compare, args.gpu_name))
        return
    archs = sorted({g[0] for g in GPUS.values()})
    probes = {arch: probe_counts(arch) for arch in archs}
    nvcc = subprocess.run([sass_report.find_tool("nvcc"), "--version"], capture_output=True, text=True).stdout
    result = {"machine": machine_stamp("cpu"), "nvcc": nvcc.strip().splitlines()[-1],
              "command": command_line("gpu_model.py", argv),
              "probes": {a: {k: dict(v) for k, v in p.items()} for a, p in probes.items()},
              "rows": model(probes)}
    write_json(os.path.join(args.out, "gpu_model.json"), result)
    text = markdown(result)
    from kaleido_cuda.lab.files.atomic import write_text_atomic

    write_text_atomic(os.path.join(args.out, "gpu_model.md"), text)
    print(text)


if __name__ == "__main__":
    main()
