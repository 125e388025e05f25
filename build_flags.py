"""Compiler flags of the CPU kernels, shared by setup.py and the tests' build of the emulated
CUDA kernels (tests/op/emulated_cuda.py), so that both compile the shared header the same way (the
same vector ISA and FMA contraction: the emulated noise must equal the CPU noise bit for bit)."""
import os
import platform

# No errno and no FP traps: lets g++ if-convert and vectorise the branch-free math; results are unchanged.
BASE_CXX_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math"]


def cpu_arch_flags():
    """Vector ISA for the CPU kernels. The extension is built from source on the machine that runs
    it, so the build uses what this machine's CPU has (AVX2/FMA: x86 CPUs since 2013-2015).
    Set KALEIDO_CPU_ARCH=none to build a module that also runs on older CPUs."""
    choice = os.environ.get("KALEIDO_CPU_ARCH", "auto").strip()
    if choice == "none":
        return []
    if choice != "auto":
        return choice.split()
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    flags = set(flags)
    if not {"avx2", "fma"} <= flags:
        return []
    # -mtune=native: the compiler's cost model for this CPU. It decides, among other things, whether
    # the bilinear taps are read with hardware gathers or with scalar loads (the generic tuning,
    # which newer g++ also keeps for CPUs whose gathers are slowed by the Downfall microcode fix).
    # g++ 12 on this project's Xeon chooses gathers: the forward kernel at (256, 3, 32, 32) goes
    # from 1.03 to 0.65 ms (identity parameters; benchmarks/results/bench_op_cpu.md at commit 2729c93).
    isa = ["-mavx2", "-mfma", "-mtune=native"]
    avx512 = {"avx512f", "avx512dq", "avx512vl", "avx512bw"}
    if avx512 <= flags:  # wider integer multiplies: the Philox noise runs about 1.7x faster
        # A CPU-specific tuning may prefer 256-bit vectors; the noise is faster in 512-bit ones.
        isa += ["-m" + f for f in sorted(avx512)] + ["-mprefer-vector-width=512"]
    return isa


def kernel_cxx_flags():
    return BASE_CXX_FLAGS + cpu_arch_flags()
