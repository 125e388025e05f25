"""Which lines of csrc/cuda/kt_kernel.cu the emulated CUDA tests execute: builds the emulated
kernels with gcov instrumentation, runs `pytest tests/op/test_cuda_kernels.py -k emulated`, and reads
gcov's line counts for the kernel file (the translated file's `#line` directive maps every line
back to kt_kernel.cu). Writes emu_coverage.{json,md}; exits 1 if a line of code was not run.

    .venv/bin/python scripts/emu_coverage.py [--out benchmarks/results]
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "csrc" / "cuda" / "kt_kernel.cu"
BUILD = ROOT / "build" / "cuda_emu_coverage"


def gcov_report():
    """({line: count} for kt_kernel.cu's lines of code, with 0 for never executed; the kernel
    file's template instantiations that never ran)."""
    for old in BUILD.glob("*.gcov"):
        old.unlink()
    run = subprocess.run(["gcov", "-f", "-m", "-o", str(BUILD), str(BUILD / "kt_kernel_emu.cpp")], cwd=BUILD,
                         check=True, capture_output=True, text=True)
    never_ran = []
    for name, summary in re.findall(r"Function '([^']+)'\n(Lines executed:[^\n]*)", run.stdout):
        if re.match(r"void kaleido::\(anonymous namespace\)::\w+_kernel<", name) and summary.startswith("Lines executed:0.00%"):
            never_ran.append(name)
    counts = {}
    # The listing gives each line's total first; per-instantiation blocks repeat the line numbers.
    for line in (BUILD / (KERNEL.name + ".gcov")).read_text().splitlines():
        m = re.match(r"\s*([^:]+):\s*(\d+):", line)
        if not m or m.group(1).strip() == "-" or int(m.group(2)) == 0 or int(m.group(2)) in counts:
            continue
        count = m.group(1).strip()
        counts[int(m.group(2))] = 0 if count.startswith(("#", "=")) else int(count.rstrip("*"))
    return counts, sorted(set(never_ran))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    for stale in BUILD.glob("*.gcda"):
        stale.unlink()
    env = dict(os.environ, KALEIDO_EMU_COVERAGE="1", KALEIDO_REQUIRE_EMU="1")
    pytest = str(Path(sys.executable).with_name("pytest"))  # the installed package, not the source folder
    tests = subprocess.run([pytest, "tests/op/test_cuda_kernels.py", "-k", "emulated", "-q", "-p", "no:cacheprovider"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
    summary = tests.stdout.strip().splitlines()[-1]
    counts, never_ran = gcov_report()
    source = KERNEL.read_text().splitlines()
    missed = sorted(n for n, c in counts.items() if c == 0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    record = {"command": "python scripts/emu_coverage.py", "commit": commit,
              "machine": f"{platform.node()} ({os.cpu_count()} cores)", "tests": summary,
              "lines_of_code": len(counts), "executed": len(counts) - len(missed),
              "missed": [{"line": n, "source": source[n - 1].strip()} for n in missed],
              "instantiations_never_run": never_ran}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "emu_coverage.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["# Lines of csrc/cuda/kt_kernel.cu executed by the emulated CUDA tests", "",
             f"`{record['command']}` at commit {commit}, on {record['machine']}; tests: {summary}.", "",
             f"gcov: {record['executed']} of {record['lines_of_code']} lines of code executed."]
    if missed:
        lines += ["", "Never executed:", ""] + [f"- line {m['line']}: `{m['source']}`" for m in record["missed"]]
    if never_ran:
        lines += ["", "Kernel instantiations that no test ran (their lines ran in other instantiations):", ""]
        lines += [f"- `{name}`" for name in never_ran]
    (out / "emu_coverage.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if missed or tests.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
