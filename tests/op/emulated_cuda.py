"""Builds and loads the CUDA kernels of csrc/cuda/kt_kernel.cu for the host emulation of CUDA
(csrc/tests/cuda_emu), as a Python module with forward/backward on CPU tensors.

The first build takes about a minute on 2 cores; later runs reuse build/cuda_emu (ninja).
KALEIDO_EMU_KERNEL=path/to/other.cu builds that file instead (in its own folder): that is how a
planted bug in a copy of the kernel is shown to fail the tests (scripts/emu_mutants.py).
KALEIDO_EMU_COVERAGE=1 builds with gcov instrumentation (in build/cuda_emu_coverage), for
scripts/emu_coverage.py, which reports the lines of kt_kernel.cu that the tests executed.
"""
import hashlib
import importlib.util
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EMU = ROOT / "csrc" / "tests" / "cuda_emu"
KERNEL = ROOT / "csrc" / "cuda" / "kt_kernel.cu"

_loaded = {}


def _import_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kernel_source():
    return Path(os.environ.get("KALEIDO_EMU_KERNEL") or KERNEL).resolve()


def load(verbose=False):
    """The emulated module for kernel_source(), built if needed. Raises on a build failure."""
    source = kernel_source()
    if source in _loaded:
        return _loaded[source]
    from torch.utils import cpp_extension

    tag = "" if source == KERNEL.resolve() else "_" + hashlib.sha1(str(source).encode()).hexdigest()[:10]
    coverage = os.environ.get("KALEIDO_EMU_COVERAGE") == "1"
    tag += "_coverage" if coverage else ""
    build = ROOT / "build" / f"cuda_emu{tag}"
    build.mkdir(parents=True, exist_ok=True)
    translate = _import_file("kaleido_cuda_emu_translate", EMU / "translate.py")
    translated = build / "kt_kernel_emu.cpp"
    translate.main(str(source), str(translated))
    flags = _import_file("kaleido_build_flags", ROOT / "build_flags.py").kernel_cxx_flags()
    start = time.perf_counter()
    module = cpp_extension.load(
        name=f"kaleido_cuda_emu{tag}",
        sources=[str(translated), str(EMU / "emu_ops.cpp"), str(ROOT / "csrc" / "kt_host.cpp")],
        # The emulator's stand-ins for cuda_runtime_api.h and c10/cuda/CUDAException.h come first.
        extra_include_paths=[str(EMU / "include"), str(EMU), str(ROOT / "csrc" / "include"),
                             str(ROOT / "csrc" / "cuda"), str(ROOT / "csrc")],
        extra_cflags=flags + (["--coverage"] if coverage else []),
        extra_ldflags=["--coverage"] if coverage else None,
        build_directory=str(build),
        verbose=verbose or bool(os.environ.get("KALEIDO_EMU_VERBOSE")),
    )
    module.build_seconds = time.perf_counter() - start
    _loaded[source] = module
    return module


if __name__ == "__main__":
    m = load(verbose=True)
    print(f"loaded {m.__name__} from {kernel_source()} in {m.build_seconds:.1f} s", file=sys.stderr)
