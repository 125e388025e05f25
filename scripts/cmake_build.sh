#!/usr/bin/env bash
# CMake build of the op library against the torch in .venv (CPU kernels; the same sources as
# setup.py), then a check that the library registers a working op. Run by run_tests.sh.
# A CUDA build of torch makes find_package(Torch) look for the CUDA toolkit, hence the CUDA
# variables below; Debian's CMake 3.25 cannot configure that, so a recent CMake comes from pip.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
python -m pip install -q "cmake>=3.27"
CUDA_ROOT=${CUDA_HOME:-/usr/local/cuda}
TORCH_PREFIX=$(python -c "import torch; print(torch.utils.cmake_prefix_path)")
NVRTC=$(python - <<'PY'
import glob, os, torch
roots = [os.path.join(os.path.dirname(torch.__file__), "..", "nvidia"), os.environ.get("CUDA_HOME", "/usr/local/cuda")]
hits = [h for r in roots for h in glob.glob(os.path.join(r, "**", "libnvrtc.so*"), recursive=True)]
print(sorted(hits)[0] if hits else "")
PY
)
args=(-DKALEIDO_BUILD_LIBRARY=ON -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DCMAKE_BUILD_TYPE=Release)
if [ -x "$CUDA_ROOT/bin/nvcc" ]; then
  args+=(-DCUDA_TOOLKIT_ROOT_DIR="$CUDA_ROOT" -DCMAKE_CUDA_COMPILER="$CUDA_ROOT/bin/nvcc")
  [ -n "$NVRTC" ] && args+=(-DCUDA_nvrtc_LIBRARY="$NVRTC")
fi
TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} .venv/bin/cmake -S . -B build/cmake-lib "${args[@]}" > build/cmake-lib.log 2>&1 \
  || { tail -30 build/cmake-lib.log; exit 1; }
.venv/bin/cmake --build build/cmake-lib -j 2 >> build/cmake-lib.log 2>&1 || { tail -30 build/cmake-lib.log; exit 1; }
lib="$(pwd -P)/build/cmake-lib/libkaleido_ops.so"
(cd / && python - "$lib" <<'PY'
import sys
import torch
import torch.nn.functional as F
torch.ops.load_library(sys.argv[1])
n = 3
x = torch.randn(n, 3, 9, 11, dtype=torch.float64)
theta = torch.eye(2, 3, dtype=torch.float64).repeat(n, 1, 1) + 0.3 * torch.randn(n, 2, 3, dtype=torch.float64)
zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64)  # noqa: E731
ones = torch.ones(n, dtype=torch.float64)
y = torch.ops.kaleido_cuda.kaleidoscope(x, theta, torch.zeros(n, dtype=torch.int64), zeros(n, 2), zeros(n), zeros(n),
                                        ones, ones, torch.zeros(n, 4, dtype=torch.int64), zeros(n), 0, "reflection")
expected = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), padding_mode="reflection",
                         align_corners=False)
err = float((y - expected).abs().max())
assert err < 1e-10, err
print(f"CMake-built libkaleido_ops.so: affine op matches grid_sample (max abs diff {err:.1e})")
PY
)
