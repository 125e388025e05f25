"""Build of kaleido_cuda._C: CUDAExtension when a CUDA toolkit is found (or KALEIDO_CUDA=1),
CppExtension when KALEIDO_CUDA=0 or no toolkit is found.

Environment:
  KALEIDO_CUDA=1|0          force or skip the CUDA kernels (default: build them when nvcc is found)
  TORCH_CUDA_ARCH_LIST      GPU architectures; default: the visible GPU's, else "8.0;9.0+PTX"
  CUDA_HOME                 toolkit folder; default: found from nvcc's resolved path
  KALEIDO_CPU_ARCH          'auto' (default: AVX2/FMA, and AVX-512 where the build machine has
                            them, so the CPU loops vectorise), 'none', or explicit compiler flags
  MAX_JOBS                  parallel compile jobs (torch's own variable)
"""
import glob
import os
import shutil
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_flags import kernel_cxx_flags  # noqa: E402  (beside this file; also used by the tests)

DEFAULT_ARCH_LIST = "8.0;9.0+PTX"  # Ampere, Hopper, and newer GPUs through the PTX JIT


def _is_toolkit(home):
    return bool(home) and os.path.exists(os.path.join(home, "bin", "nvcc")) and \
        os.path.exists(os.path.join(home, "include", "cuda_runtime.h"))


def find_cuda_home():
    """The real toolkit folder (bin/nvcc beside include/cuda_runtime.h). nvcc on PATH is often a
    link or a wrapper script (for example /usr/local/bin/nvcc), from which torch would guess
    CUDA_HOME=/usr/local and then miss the headers and libcudart."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if _is_toolkit(os.environ.get(var)):
            return os.environ[var]
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates += ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for home in candidates:
        if _is_toolkit(home):
            return home
    return None


def want_cuda(cuda_home):
    flag = os.environ.get("KALEIDO_CUDA", "").strip()
    if flag == "0":
        return False
    if flag == "1":
        if cuda_home is None:
            raise RuntimeError("KALEIDO_CUDA=1 but no CUDA toolkit (nvcc) was found; set CUDA_HOME")
        return True
    return cuda_home is not None


cuda_home = find_cuda_home()
with_cuda = want_cuda(cuda_home)
if with_cuda:
    # torch.utils.cpp_extension reads CUDA_HOME when it is imported: set it first.
    os.environ["CUDA_HOME"] = cuda_home

import torch  # noqa: E402
from torch.utils import cpp_extension  # noqa: E402

if with_cuda and not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
    # Without a visible GPU torch would compile for every architecture it knows.
    os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCH_LIST

here = os.path.dirname(os.path.abspath(__file__))
sources = ["csrc/ops.cpp", "csrc/kt_host.cpp", "csrc/cpu/kt_kernel.cpp"]
cxx_flags = kernel_cxx_flags() + ["-fopenmp"]
nvcc_flags = ["-O3"]
macros = []
if with_cuda:
    sources += ["csrc/cuda/kt_cuda.cpp", "csrc/cuda/kt_kernel.cu"]
    arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST", "")
    macros += [("KALEIDO_WITH_CUDA", None), ("KALEIDO_CUDA_ARCH_LIST", '"%s"' % arch_list)]
    Extension = cpp_extension.CUDAExtension
    extra = {"cxx": cxx_flags, "nvcc": nvcc_flags}
else:
    Extension = cpp_extension.CppExtension
    extra = {"cxx": cxx_flags}

ext = Extension(
    name="kaleido_cuda._C",
    sources=sources,
    include_dirs=[os.path.join(here, "csrc", "include")],
    define_macros=macros,
    extra_compile_args=extra,
    extra_link_args=["-fopenmp"],
    depends=glob.glob(os.path.join("csrc", "**", "*.h"), recursive=True),
)

setup(
    ext_modules=[ext],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(no_python_abi_suffix=False)},
)
