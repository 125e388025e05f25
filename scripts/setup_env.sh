#!/usr/bin/env bash
# Sets up .venv on a fresh machine and builds kaleido_cuda with its CPU and (where nvcc is found)
# CUDA kernels. Idempotent: a second run reuses .venv and ninja's incremental build in build/.
#   TORCH_SPEC            torch requirement (default torch==2.14.1 torchvision==0.29.1)
#   TORCH_CUDA_ARCH_LIST  GPU architectures (default here 9.0, the H200; setup.py's own default
#                         without a visible GPU is "8.0;9.0+PTX")
#   KALEIDO_CUDA=0        skip the CUDA kernels
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
# shellcheck disable=SC2086
python -m pip install -q ${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
python -m pip install -q numpy pytest hypothesis scikit-learn scikit-image matplotlib tqdm setuptools wheel ninja \
  dp-accounting opacus lpips
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-2}
start=$(date +%s)
# setuptools copies the package's .py files into build/lib* and never removes one that the source
# no longer has, so a moved or deleted module would come back in the wheel: drop that copy (the
# compiled objects in build/temp*, which ninja reuses, stay).
rm -rf build/lib.*
python -m pip install -q --no-build-isolation --no-deps .
echo "kaleido_cuda built in $(( $(date +%s) - start )) s"
# From another folder, so that the installed package is imported, not the source folder.
(cd / && python -c "import json, kaleido_cuda; print(json.dumps(kaleido_cuda.build_info()))")
