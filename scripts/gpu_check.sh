#!/usr/bin/env bash
# The GPU check: one command on a machine with a GPU and its own torch (no network), in stages of
# priority order, each under its own time budget, each adding its files to $OUT/results.tar and a
# line to $OUT/summary.tsv as it ends, so that a call stopped at its limit still returns what the
# finished stages measured. docs/gpu_check.md says how to run it and what to do with its output.
#
#   bash scripts/gpu_check.sh            run every stage (on the GPU machine)
#   bash scripts/gpu_check.sh --plan     print the stages and their budgets, then `total N s`; run nothing
#   bash scripts/gpu_check.sh --dry-run  every stage on the CPU at tiny sizes (the test suite runs this):
#                                        no build (the installed package), the CUDA tests collected but not
#                                        run, the benchmarks with --device cpu --tiny, the sanitizer case
#                                        on the CPU without compute-sanitizer
#
# Output (at most 8 files come back from the device machine): $OUT/summary.tsv (stage, status,
# seconds, budget), $OUT/gpu_check.log (every stage's output), $OUT/results.tar (each stage's files
# under a folder of its name). Missing packages (kornia) are installed from .whl/ when it is there
# (scripts/gpu_wheels.sh makes it).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

STAGES=(build cuda_tests bench_op bench_augment bench_steps sanitizer)
declare -A BUDGET=([build]=120 [cuda_tests]=100 [bench_op]=70 [bench_augment]=80 [bench_steps]=70 [sanitizer]=90)
declare -A WHAT=(
  [build]="build the extension from source for sm_90 with all cores (setup.py build_ext --inplace)"
  [cuda_tests]="the tests with a CUDA backend (pytest -m cuda tests/op): the emulated cases' GPU twins included"
  [bench_op]="the op against the reference and the eager chain, and the roofline model beside it"
  [bench_augment]="the DSA drop-in against eager DSA and kornia"
  [bench_steps]="DM, DC and MTT steps with fused, eager and no augmentation"
  [sanitizer]="compute-sanitizer memcheck and racecheck on scripts/sanitizer_case.py"
)

for stage in "${STAGES[@]}"; do  # GPU_CHECK_BUDGET_<stage>=SECONDS overrides a budget
  override="GPU_CHECK_BUDGET_$stage"
  [ -n "${!override:-}" ] && BUDGET[$stage]=${!override}
done

MODE=run
case "${1:-}" in
  --plan) MODE=plan ;;
  --dry-run) MODE=dry ;;
  "") ;;
  *) echo "usage: bash scripts/gpu_check.sh [--plan | --dry-run]" >&2; exit 2 ;;
esac

if [ "$MODE" = plan ]; then
  total=0
  for stage in "${STAGES[@]}"; do
    printf '%-14s %4d s  %s\n' "$stage" "${BUDGET[$stage]}" "${WHAT[$stage]}"
    total=$((total + BUDGET[$stage]))
  done
  echo "total $total s"
  exit 0
fi

OUT=${OUT:-$ROOT/benchmarks/results/gpu_check}
mkdir -p "$OUT"
WORK=$(mktemp -d)
PY=$(command -v "${PYTHON:-python3}")
case "$PY" in /*) ;; *) PY="$ROOT/$PY" ;; esac  # absolute (stages change folders), links kept (a venv's python)
LOG="$OUT/gpu_check.log"
: > "$LOG"
printf 'stage\tstatus\tseconds\tbudget\n' > "$OUT/summary.tsv"
log() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }

if [ "$MODE" = run ] && ls .whl/*.whl > /dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >> "$LOG" 2>&1 && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ "$MODE" = run ]; then
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}  # the in-place build of the build stage
  DEVICE=cuda
  TINY=()
else
  DEVICE=cpu
  TINY=(--tiny)
fi
export PYTHONUNBUFFERED=1

stage_build() {
  if [ "$MODE" = dry ]; then
    echo "dry run: no build, the installed package"
  else
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$1/gpu.txt" 2>&1
    TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)} KALEIDO_CUDA=1 \
      "$PY" setup.py build_ext --inplace || return 1
  fi
  (cd "$1" && "$PY" -c "import json, kaleido_cuda; print(json.dumps(kaleido_cuda.build_info()))") | tee "$1/build_info.json"
}

stage_cuda_tests() {
  if [ "$MODE" = dry ]; then  # the selection must exist and be large: collected, not run
    # -P: the installed package, not the source folder (which has no compiled module in a dry run)
    "$PY" -P -m pytest -q -p no:cacheprovider -m cuda --collect-only tests/op > "$1/collected.txt" || return 1
    local n
    n=$(grep -c '::' "$1/collected.txt")
    echo "$n CUDA test cases collected"
    [ "$n" -ge 50 ]
  else
    "$PY" -m pytest -q -rs -p no:cacheprovider -m cuda tests/op --junitxml="$1/cuda_tests.xml"
  fi
}

stage_bench_op() {
  "$PY" benchmarks/bench_op.py --device "$DEVICE" --quick "${TINY[@]}" --out "$1" || return 1
  local gpu=cpu
  [ "$MODE" = run ] && gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  "$PY" benchmarks/gpu_model.py --compare "$1/bench_op_$DEVICE.json" --gpu-name "$gpu" | tee "$1/gpu_model_vs_measured.md"
}

stage_bench_augment() {
  "$PY" benchmarks/bench_augment.py --device "$DEVICE" --quick "${TINY[@]}" --out "$1"
}

stage_bench_steps() {
  "$PY" benchmarks/bench_steps.py --device "$DEVICE" --iterations 3 "${TINY[@]}" --out "$1"
}

stage_sanitizer() {
  if [ "$MODE" = dry ]; then
    "$PY" scripts/sanitizer_case.py --device cpu
    return
  fi
  local sanitizer
  sanitizer=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
  [ -x "$sanitizer" ] || { echo "compute-sanitizer not found"; return 1; }
  local rc=0 code
  for tool in memcheck racecheck; do
    timeout $((BUDGET[sanitizer] / 2)) "$sanitizer" --tool "$tool" --error-exitcode 9 "$PY" scripts/sanitizer_case.py \
      > "$1/sanitizer_$tool.log" 2>&1
    code=$?
    [ $code -ne 0 ] && rc=1
    echo "$tool: exit code $code ($(grep -c '=========   ' "$1/sanitizer_$tool.log" || true) report lines)"
  done
  return $rc
}

run_stage() {
  local stage=$1 dir="$WORK/$1" start rc
  mkdir -p "$dir"
  log "$stage (budget ${BUDGET[$stage]} s): ${WHAT[$stage]}"
  start=$(date +%s)
  # Each stage in its own process under its budget; functions are exported for the sub-shell.
  timeout "${BUDGET[$stage]}" bash -c "set -o pipefail; $(declare -f "stage_$stage"); \
    $(declare -p BUDGET MODE DEVICE PY TINY); stage_$stage '$dir'" >> "$LOG" 2>&1
  rc=$?
  local seconds=$(( $(date +%s) - start )) status=ok
  [ $rc -eq 124 ] && status=timeout
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && status="failed($rc)"
  printf '%s\t%s\t%s\t%s\n' "$stage" "$status" "$seconds" "${BUDGET[$stage]}" >> "$OUT/summary.tsv"
  tar -rf "$OUT/results.tar" -C "$WORK" "$stage"
  log "$stage: $status in $seconds s"
  [ "$status" = ok ]
}

rm -f "$OUT/results.tar"
failed=0
for stage in "${STAGES[@]}"; do
  if ! run_stage "$stage"; then
    failed=1
    [ "$stage" = build ] && { log "the build failed: nothing else can run"; break; }
  fi
done
rm -rf "$WORK"
log "done; $(grep -c $'\tok\t' "$OUT/summary.tsv") of ${#STAGES[@]} stages ok; results in $OUT"
exit $failed
