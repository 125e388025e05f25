#!/usr/bin/env bash
# GPU check, one command on a machine with a GPU and its own torch (no network needed):
# builds the extension from source against that torch, runs compute-sanitizer (memcheck, racecheck)
# on a small case when it is there, the whole test suite (the CUDA tests included: the same cases
# as the emulated CUDA tests, on the GPU), the op, augmentation and distillation-step benchmarks
# (CUDA rows), and writes everything under $OUT (else benchmarks/results/).
#   Missing packages (hypothesis for tests, ninja for the emulated CUDA tests, kornia + kornia_rs
#   for the benchmark) can come as wheels in .whl/ (see the device notes).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/benchmarks/results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
log() { echo "[gpu_check $(date +%H:%M:%S)] $*"; }

if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
log "building (TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0})"
start=$(date +%s)
TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16} KALEIDO_CUDA=1 \
  "$PY" setup.py build_ext --inplace > "$OUT/gpu_build.log" 2>&1 || { log "build failed"; tail -30 "$OUT/gpu_build.log"; exit 1; }
log "built in $(( $(date +%s) - start )) s"
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c "import json, kaleido_cuda; print(json.dumps(kaleido_cuda.build_info()))" | tee "$OUT/build_info.json"
SANITIZER=$(command -v compute-sanitizer || true)
[ -z "$SANITIZER" ] && [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" ] && SANITIZER=${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer
if [ -n "$SANITIZER" ]; then
  for tool in memcheck racecheck; do
    log "compute-sanitizer --tool $tool on scripts/sanitizer_case.py"
    timeout 300 "$SANITIZER" --tool "$tool" --error-exitcode 9 "$PY" scripts/sanitizer_case.py > "$OUT/sanitizer_$tool.log" 2>&1
    log "  $tool exit $? ($(grep -c '=========   ' "$OUT/sanitizer_$tool.log" || true) report lines; $OUT/sanitizer_$tool.log)"
  done
else
  log "compute-sanitizer not found: memcheck and racecheck skipped"
fi
log "tests (the CUDA backend of tests/op/test_cuda_kernels.py runs the emulated tests' cases on the GPU)"
"$PY" -m pytest -q -rs tests --junitxml="$OUT/gpu_tests.xml" 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
tests_rc=${PIPESTATUS[0]}
log "benchmark"
timeout 300 "$PY" benchmarks/bench_op.py --device all --quick --out "$OUT" 2>&1 | tee "$OUT/gpu_bench.log" | tail -30
log "the roofline model's prediction (benchmarks/results/gpu_model.md) beside the measured op"
"$PY" benchmarks/gpu_model.py --compare "$OUT/bench_op_cuda.json" \
  --gpu-name "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" 2>&1 | tee "$OUT/gpu_model_vs_measured.md"
log "augmentation benchmark (kornia rows need kornia and kornia_rs, which can come as wheels in .whl/)"
timeout 240 "$PY" benchmarks/bench_augment.py --device cuda --quick --out "$OUT" 2>&1 | tee "$OUT/gpu_bench_augment.log" | tail -40
log "distillation steps: augmentation's share, fused against eager (DM at CIFAR size: the 2x target)"
timeout 180 "$PY" benchmarks/bench_steps.py --device cuda --iterations 3 --out "$OUT" 2>&1 | tee "$OUT/gpu_bench_steps.log" | tail -12
log "done: tests exit $tests_rc; results in $OUT"
exit "$tests_rc"
