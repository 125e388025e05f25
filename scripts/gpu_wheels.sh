#!/usr/bin/env bash
# Downloads into .whl/ (ignored by git) the wheels that the GPU machine lacks and scripts/gpu_check.sh
# installs from there: kornia 0.9.0 (the version of the committed CPU figures) and kornia_rs, for the
# machine's Python 3.12 on manylinux x86-64. Its torch, numpy, packaging and the test packages are
# already there (the device tool's KINDS.md lists them). Run it here, where PyPI can be reached;
# then name .whl in the device call's `carry` (docs/gpu_check.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .whl
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d .whl "kornia==${KORNIA_VERSION:-0.9.0}" "kornia_rs==${KORNIA_RS_VERSION:-0.2.0}"
ls -l .whl
