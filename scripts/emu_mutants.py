"""Plants bugs in a copy of csrc/cuda/kt_kernel.cu, one at a time, and runs the emulated CUDA tests
on each: a mutant the tests do not catch is a hole in the tests (or in the emulator).

    .venv/bin/python scripts/emu_mutants.py [--only NAME ...] [--out benchmarks/results]

The mutated copies live under build/emu_mutants/ and are never committed. Each mutant is built
by tests/op/emulated_cuda.py (KALEIDO_EMU_KERNEL) and tested with
`pytest <TESTS> -k emulated -x`. Writes emu_mutants.{json,md}.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "csrc" / "cuda" / "kt_kernel.cu"
TESTS = ["tests/op/test_cuda_kernels.py", "tests/op/test_cuda_deterministic.py", "tests/op/test_views.py"]

# (name, what the bug is, text in kt_kernel.cu, its replacement, which occurrence: 0-based or None for all)
# Every mutant must be caught, except those in EQUIVALENT: changes that leave every result right.
MUTANTS = [
    ("no-second-syncthreads", "block_sum: drop the __syncthreads() before the next image reuses warp_totals",
     "  __syncthreads();  // the next image's block_sum", "  // the next image's block_sum", None),
    ("no-first-syncthreads", "block_sum: drop the __syncthreads() between the warp totals and their sum",
     "  if (lane == 0) warp_totals[warp] = v;\n  __syncthreads();", "  if (lane == 0) warp_totals[warp] = v;", None),
    ("stride-blockDim-only", "backward: pixel += blockDim.x instead of blockDim.x * gridDim.x",
     "pixel += blockDim.x * gridDim.x", "pixel += blockDim.x", 0),
    ("forward-stride-blockDim-only", "forward: group += blockDim.x instead of blockDim.x * gridDim.x",
     "group += blockDim.x * gridDim.x", "group += blockDim.x", 0),
    ("group-row-wrap", "forward: a group's pixels do not wrap to the next row at the row's end",
     "    if (j == W) { j = 0; i += 1; }\n", "", None),
    ("swap-i-j", "forward: the taps of pixel (j, i) instead of (i, j)",
     "compute_taps<acc_t, index_t>(p, i, j, H, W, padding)", "compute_taps<acc_t, index_t>(p, j, i, H, W, padding)", 0),
    ("image-stride-1", "backward: n += 1 instead of n += gridDim.y",
     "n += gridDim.y", "n += 1", 1),
    ("pivot-return", "pivot_kernel: return instead of continue for a zero share",
     "if (share == acc_t(0)) continue;", "if (share == acc_t(0)) return;", None),
    ("warp-sum-half", "warp_sum starts at offset 8: lanes 16-31 never reach lane 0",
     "for (int offset = 16; offset > 0; offset >>= 1)", "for (int offset = 8; offset > 0; offset >>= 1)", None),
    ("pivot-assign", "pivot_kernel: grad = share instead of grad += share",
     "image_grad[e] += share;", "image_grad[e] = share;", None),
    ("rows-ignored", "forward: every image reads parameter row 0",
     "const index_t r = rows == 1 ? 0 : n;", "const index_t r = 0;", 0),
    ("noise-plane", "forward: the noise's plane ignores the image (every image draws image 0's noise)",
     "static_cast<uint64_t>(n) * static_cast<uint64_t>(C)", "static_cast<uint64_t>(0)", None),
    ("noise-group", "forward: every group of a plane draws group 0's Philox block",
     "static_cast<uint32_t>(group)", "static_cast<uint32_t>(0)", None),
    ("grid-y-unlimited", "grid_for ignores the y limit (more than 65535 blocks on a GPU)",
     "std::min<int64_t>(s.N, KALEIDO_GRID_LIMIT(1, kMaxGridY))", "s.N", None),
    ("plain-scatter", "backward: a plain += instead of atomicAdd (a race between threads of a block)",
     "atomicAdd(ptr, value); }", "*ptr += value; }", None),
    ("fixed-no-headroom", "deterministic: e leaves no room for the H W contributions an element can sum",
     "const int headroom = 61 - ceil_log2(contributions);", "const int headroom = 61;", None),
    ("fixed-one-scale", "deterministic: every image takes image 0's fixed-point scale",
     "max_bits[n])", "max_bits[0])", None),
    ("fixed-pivot-scale", "deterministic: the pivot sum is rounded at the elements' scale",
     "FixedTerm<acc_t>{scales.pivot}", "FixedTerm<acc_t>{scales.scatter}", None),
    ("fixed-no-nan", "deterministic: an image without a finite scale gets zeros, not NaN",
     "!scales.finite ? nan : ", "", None),
    ("view-rows", "views: view v of image n reads row n + v instead of n views + v",
     "rows == 1 ? 0 : n * views + v;", "rows == 1 ? 0 : n + v;", None),
    ("view-noise", "views: every view draws view 0's noise stream",
     "          static_cast<uint32_t>(v));", "          0u);", None),
    ("view-mean-order", "views: the last view overwrites the running sum instead of ending it",
     "y[k] = static_cast<scalar_t>(total / static_cast<acc_t>(views));", "y[k] = static_cast<scalar_t>(value);", None),
    ("view-backward-scale", "views: the backward's sum over the views is not divided by their number",
     "image_grad[e] = (image_grad[e] + share) * inverse;", "image_grad[e] = image_grad[e] + share;", None),
    ("max-grad-last", "deterministic: each thread keeps its last abs(grad), not its largest",
     "largest = bits > largest ? bits : largest;", "largest = bits;", None),
]


# Blocks then write some pixels twice, with the same values: wasted work, not a wrong result. No
# test of results can see it; a profiler (or the instruction counts) would.
EQUIVALENT = {"forward-stride-blockDim-only"}
# Real bugs the emulator is known not to catch, with the reason (docs/cuda.md): it does not watch
# global memory, and two threads colliding on one element between a read and a write is rare
# with OS threads. A GPU run would show wrong gradients; compute-sanitizer's racecheck would not
# either (it covers shared memory).
KNOWN_MISSES = {"plain-scatter"}


def mutate(text, old, new, occurrence):
    hits = [m.start() for m in re.finditer(re.escape(old), text)]
    if not hits:
        raise ValueError(f"mutation target not found in {KERNEL}: {old!r}")
    if occurrence is None:
        return text.replace(old, new)
    at = hits[occurrence]
    return text[:at] + new + text[at + len(old):]


def run_mutant(name, source_text, workdir):
    path = workdir / "kt_kernel.cu"
    path.write_text(source_text)
    env = dict(os.environ, KALEIDO_EMU_KERNEL=str(path))
    start = time.perf_counter()
    build = subprocess.run([sys.executable, str(ROOT / "tests" / "op" / "emulated_cuda.py")], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    if build.returncode != 0:
        return {"caught": True, "by": "build failed", "seconds": round(time.perf_counter() - start, 1)}
    # The pytest script, not `python -m pytest`, which would import the source folder's kaleido_cuda
    # (without its compiled module) instead of the installed one.
    pytest = str(Path(sys.executable).with_name("pytest"))
    test = subprocess.run([pytest, *TESTS, "-k", "emulated", "-x", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    failed = re.findall(r"^FAILED (\S+)", test.stdout, re.M)
    summary = test.stdout.strip().splitlines()[-1] if test.stdout.strip() else ""
    return {"caught": test.returncode != 0, "by": failed[0] if failed else summary,
            "summary": summary, "seconds": round(time.perf_counter() - start, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="mutant names to run (default: all)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    original = KERNEL.read_text()
    workdir = ROOT / "build" / "emu_mutants"
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for name, what, old, new, occurrence in MUTANTS:
        if args.only and name not in args.only:
            continue
        r = run_mutant(name, mutate(original, old, new, occurrence), workdir)
        r.update(name=name, bug=what)
        results.append(r)
        r["expected"] = "equivalent" if name in EQUIVALENT else "known miss" if name in KNOWN_MISSES else "caught"
        print(f"{name:30s} {'CAUGHT' if r['caught'] else 'MISSED':7s} {r['seconds']:6.1f} s  {r['by']}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    record = {"command": "python scripts/emu_mutants.py" + (" --only " + " ".join(args.only) if args.only else ""),
              "commit": commit, "machine": f"{platform.node()} ({os.cpu_count()} cores)", "mutants": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "emu_mutants.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# Planted bugs in kt_kernel.cu against the emulated CUDA tests",
             "", f"`{record['command']}` at commit {commit}, on {record['machine']}.", "",
             "| mutant | bug | caught | first failing test |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['bug']} | {'yes' if r['caught'] else 'no'}"
              f"{' (equivalent: same results)' if r['expected'] == 'equivalent' else ''}"
              f"{' (known miss: global-memory race)' if r['expected'] == 'known miss' else ''} | `{r['by']}` |"
              for r in results]
    (out / "emu_mutants.md").write_text("\n".join(lines) + "\n")
    return 0 if all(r["caught"] for r in results if r["expected"] == "caught") else 1


if __name__ == "__main__":
    sys.exit(main())
