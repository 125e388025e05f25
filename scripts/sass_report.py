"""What nvcc emits for the KT kernels: per kernel and dtype, the instruction mix of the SASS
(float64, float32, special-function, memory, integer, control), registers and spills from
`ptxas -v`, for each GPU architecture asked for. It is the gate of docs/cuda.md: a float32,
float16 or bfloat16 kernel must hold no float64 arithmetic, and no kernel may spill registers.

    python scripts/sass_report.py [--archs 80 89 90] [--out DIR] [--check]

Compiles csrc/cuda/kt_kernel.cu to a cubin per architecture (nvcc on PATH or in CUDA_HOME) and
disassembles it with cuobjdump (the CUDA toolkit's, or the one in the triton wheel that torch
installs). Writes DIR/sass_report.json and .md (default benchmarks/results). With --check, exits 1
and names every kernel that breaks the gate.

The counts are static: every instruction in the kernel once, whatever runs. A kernel holds every
padding mode and both fold variants; which of them a pixel runs is chosen per image.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "csrc", "cuda", "kt_kernel.cu")

# float64 -> float32 conversions of the float64 parameter rows, once per parameter per image:
# allowed in float kernels (they convert, they compute nothing in float64).
FP64_ALLOWED = {"F2F.F32.F64": "the parameter rows are float64; each value is converted once per image"}

# Kernels allowed to spill, with the reason. Only float64 with 64-bit indexing: float64 is the
# precision of gradcheck, not of training, and 64-bit indexing needs tensors beyond 2^31
# elements; ptxas spills a few bytes there around the float64 division subroutine calls.
SPILL_ALLOWED = {"backward[float64, int64]": "float64 + int64 indices only: ptxas keeps one 64-bit value in local "
                                              "memory across the float64 division subroutine calls"}

SCALAR = {"f": "float32", "d": "float64", "N3c104HalfE": "float16", "N3c108BFloat16E": "bfloat16"}
INDEX = {"i": "int32", "l": "int64"}
KERNEL = re.compile(r"(forward_kernel|backward_kernel|pivot_kernel|backward_fixed_kernel|max_grad_kernel|"
                    r"fixed_to_grad_kernel)I(f|d|N3c104HalfE|N3c108BFloat16E)"
                    r"(?:(f|d))?(i|l)E")
MEMORY = ("LDG", "STG", "LD", "ST", "LDS", "STS", "LDL", "STL", "ATOM", "ATOMS", "ATOMG", "RED", "LDC", "ULDC")
# One instruction of cuobjdump -sass: its address (four hex digits, more past 64 KiB of code), an
# optional predicate, the opcode with its modifiers.
SASS_LINE = re.compile(r"\s+/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)")
FP32 = ("FADD", "FMUL", "FFMA", "FSETP", "FMNMX", "FSEL", "FSET", "FCHK", "FRND", "F2I", "I2F", "F2F", "FSWZADD")


def find_tool(name: str) -> str | None:
    """A CUDA tool from PATH, CUDA_HOME or the triton wheel."""
    found = shutil.which(name)
    if found:
        return found
    for home in filter(None, [os.environ.get("CUDA_HOME"), "/usr/local/cuda"]):
        path = os.path.join(home, "bin", name)
        if os.path.exists(path):
            return path
    try:
        import triton  # noqa: F401

        path = os.path.join(os.path.dirname(sys.modules["triton"].__file__), "backends", "nvidia", "bin", name)
        return path if os.path.exists(path) else None
    except ImportError:
        return None


def classify(opcode: str) -> str:
    """The class of one SASS opcode (with its modifiers, e.g. 'DFMA.RM', 'F2F.F32.F64')."""
    base = opcode.split(".")[0]
    if opcode in FP64_ALLOWED:
        return "fp64_allowed"
    if base.startswith("D") and base not in ("DEPBAR",) or ".F64" in opcode:
        return "fp64"
    if base == "MUFU":
        return "sfu"
    if base in MEMORY:
        return "memory"
    if base in FP32:
        return "fp32"
    if base in ("HADD2", "HMUL2", "HFMA2", "HSETP2", "HMNMX2"):
        return "fp16"
    if base in ("BRA", "BSSY", "BSYNC", "EXIT", "CALL", "RET", "BAR", "WARPSYNC", "NOP", "SHFL", "VOTE", "BPT"):
        return "control"
    return "integer"


def kernel_key(mangled: str):
    m = KERNEL.search(mangled)
    if not m:
        return None
    kind, scalar, acc, index = m.groups()
    return f"{kind.replace('_kernel', '')}[{SCALAR[scalar]}, {INDEX[index]}]"


def compile_arch(arch: str, workdir: str) -> tuple[dict, dict]:
    """({kernel: Counter of opcodes}, {kernel: {'registers', 'spill_stores', 'spill_loads', 'stack'}})."""
    import torch.utils.cpp_extension as ext

    nvcc, cuobjdump = find_tool("nvcc"), find_tool("cuobjdump")
    if not nvcc or not cuobjdump:
        raise FileNotFoundError("sass_report needs nvcc and cuobjdump (CUDA toolkit, or the triton wheel for cuobjdump)")
    cubin = os.path.join(workdir, f"kt_sm{arch}.cubin")
    includes = [f"-I{p}" for p in ext.include_paths()] + [f"-I{os.path.join(ROOT, 'csrc', 'include')}",
                                                          f"-I{os.path.join(ROOT, 'csrc', 'cuda')}"]
    cmd = [nvcc, "-O3", "-std=c++17", "-cubin", f"-arch=sm_{arch}", "-Xptxas", "-v", *includes, SOURCE, "-o", cubin]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nvcc failed for sm_{arch}:\n{done.stderr[-4000:]}")
    resources, current = {}, None
    for line in done.stderr.splitlines():
        m = re.search(r"Function properties for (\S+)", line) or re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            current = kernel_key(m.group(1))
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            resources.setdefault(current, {}).update(stack=int(m.group(1)), spill_stores=int(m.group(2)),
                                                     spill_loads=int(m.group(3)))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            resources.setdefault(current, {})["registers"] = int(m.group(1))
    sass = subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True, check=True).stdout
    counts, current = {}, None
    for line in sass.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            current = kernel_key(m.group(1))
            counts.setdefault(current, Counter())
            continue
        m = SASS_LINE.match(line)
        if m and current:
            counts[current][m.group(1)] += 1
    return counts, resources


def report(archs) -> dict:
    out = {"archs": {}, "allowed_fp64": FP64_ALLOWED, "allowed_spills": SPILL_ALLOWED}
    with tempfile.TemporaryDirectory() as workdir:
        for arch in archs:
            counts, resources = compile_arch(arch, workdir)
            kernels = {}
            for name, ops in sorted(counts.items()):
                classes = Counter()
                for op, n in ops.items():
                    classes[classify(op)] += n
                fp64_ops = {op: n for op, n in ops.items() if classify(op) == "fp64"}
                kernels[name] = {"classes": dict(classes), "total": sum(ops.values()), "fp64_opcodes": fp64_ops,
                                 **resources.get(name, {})}
            out["archs"][f"sm_{arch}"] = kernels
    return out


def violations(result: dict) -> list:
    """Every kernel that breaks the gate, as one line each."""
    bad = []
    for arch, kernels in result["archs"].items():
        for name, k in kernels.items():
            if "float64" not in name and k["classes"].get("fp64", 0):
                bad.append(f"{arch} {name}: {k['classes']['fp64']} float64 instructions {k['fp64_opcodes']}")
            if (k.get("spill_stores", 0) or k.get("spill_loads", 0)) and name not in SPILL_ALLOWED:
                bad.append(f"{arch} {name}: spills {k['spill_stores']} bytes stored, {k['spill_loads']} loaded")
    return bad


def markdown(result: dict, header: str) -> str:
    lines = [header, "",
             "Static SASS instruction counts per kernel (every padding and fold variant once); fp64: float64 "
             "arithmetic and conversions to or from float64, fp64 allowed: " +
             "; ".join(f"{k} ({v})" for k, v in result["allowed_fp64"].items()) + ". Spills allowed: " +
             "; ".join(f"{k} ({v})" for k, v in result["allowed_spills"].items()) + ".", ""]
    for arch, kernels in result["archs"].items():
        lines += [f"## {arch}", "", "| kernel | fp64 | fp64 allowed | fp32 | sfu | memory | integer | control | total "
                  "| registers | spills (bytes) | stack (bytes) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, k in kernels.items():
            c = k["classes"]
            lines.append(f"| {name} | {c.get('fp64', 0)} | {c.get('fp64_allowed', 0)} | {c.get('fp32', 0)} "
                         f"| {c.get('sfu', 0)} | {c.get('memory', 0)} | {c.get('integer', 0)} | {c.get('control', 0)} "
                         f"| {k['total']} | {k.get('registers', '-')} "
                         f"| {k.get('spill_stores', 0) + k.get('spill_loads', 0)} | {k.get('stack', 0)} |")
        lines.append("")
    bad = violations(result)
    lines += ["Gate: " + ("passes (no float64 arithmetic in float32/float16/bfloat16 kernels, no spills outside the "
                          "allowed ones)." if not bad
                          else "fails:\n" + "\n".join(f"- {b}" for b in bad))]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["80", "89", "90"])
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("--check", action="store_true", help="exit 1 when the gate fails")
    args = ap.parse_args(argv)
    result = report(args.archs)
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from common import command_line, machine_stamp  # noqa: E402

    stamp = machine_stamp("cpu")
    nvcc = subprocess.run([find_tool("nvcc"), "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    result.update(machine=stamp, nvcc=nvcc[-1] if nvcc else None,
                  command=command_line("../scripts/sass_report.py", argv).replace("benchmarks/../", ""))
    header = (f"# SASS instruction mix of the KT kernels\n\ncommit {stamp['commit']}, {result['nvcc']}, "
              f"{stamp['date']}\n\ncommand: `{result['command']}`")
    text = markdown(result, header)
    os.makedirs(args.out, exist_ok=True)
    from kaleido_cuda.lab.files.atomic import write_json_atomic, write_text_atomic

    write_json_atomic(os.path.join(args.out, "sass_report.json"), result)
    write_text_atomic(os.path.join(args.out, "sass_report.md"), text)
    print(text)
    bad = violations(result)
    return 1 if (args.check and bad) else 0


if __name__ == "__main__":
    sys.exit(main())
