"""The build step of the host emulation of CUDA: turns a .cu file into C++ that g++ compiles.

    python csrc/tests/cuda_emu/translate.py csrc/cuda/kt_kernel.cu build/cuda_emu/kt_kernel_emu.cpp

Two rewrites, each within its line (so `#line` keeps every line number of the .cu file):
  kernel<T...><<<grid, block[, smem[, stream]]>>>(args)
      -> ::cuda_emu::launch_kernel("kernel<T...>", __LINE__, kernel<T...>, ::cuda_emu::LaunchConfig(grid, block, ...), args)
  __shared__ T name[n];
      -> auto& name = ::cuda_emu::block_shared<T, n>("name", [] {});  (a checked per-block array)
and cuda_emu.h is included first. Everything else is the kernel file as it is. The output is
rewritten only when it changes, so ninja's incremental build keeps working.
"""
import os
import re
import sys

LAUNCH = re.compile(r"(?P<kernel>[A-Za-z_][\w:]*(?:<[^<>;()]*>)?)\s*<<<(?P<config>.*?)>>>\s*\((?P<close>\s*\))?")
SHARED = re.compile(r"__shared__\s+(?P<type>[\w:<>, ]+?)\s+(?P<name>\w+)\s*\[(?P<size>[^\]]+)\]\s*;")


def _launch(m):
    kernel = m.group("kernel")
    head = f'::cuda_emu::launch_kernel("{kernel}", __LINE__, {kernel}, ::cuda_emu::LaunchConfig({m.group("config")})'
    return head + ")" if m.group("close") else head + ", "


def _shared(m):  # one-dimensional arrays only: anything else is left for the check below to refuse
    t, name, size = m.group("type"), m.group("name"), m.group("size")
    return f'auto& {name} = ::cuda_emu::block_shared<{t}, {size}>("{name}", [] {{}});'


def translate(source_text, source_path):
    out = ['#include "cuda_emu.h"', f'#line 1 "{os.path.abspath(source_path)}"']
    launches = shared = 0
    for line in source_text.splitlines():
        if "<<<" in line:
            line, k = LAUNCH.subn(_launch, line)
            if "<<<" in line:
                raise ValueError(f"{source_path}: a launch this translator cannot read: {line.strip()}")
            launches += k
        if "__shared__" in line:
            line, k = SHARED.subn(_shared, line)
            if "__shared__" in line:
                raise ValueError(f"{source_path}: a __shared__ declaration this translator cannot read: {line.strip()}")
            shared += k
        out.append(line)
    return "\n".join(out) + "\n", launches, shared


def main(source, target):
    with open(source) as f:
        text, launches, shared = translate(f.read(), source)
    if launches == 0:
        raise ValueError(f"{source}: no kernel launch found")
    old = None
    if os.path.exists(target):
        with open(target) as f:
            old = f.read()
    if old != text:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        tmp = target + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    return launches, shared


if __name__ == "__main__":
    n_launch, n_shared = main(sys.argv[1], sys.argv[2])
    print(f"translated {sys.argv[1]}: {n_launch} launches, {n_shared} __shared__ declarations")
