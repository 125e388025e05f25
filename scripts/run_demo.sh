#!/usr/bin/env bash
# Quick start 1: set up, then run the main job: DM on the bundled sklearn digits at IPC 10, from KT
# initialisation and from real initialisation, with one comparison table (accuracy, nearest-
# neighbour SSIM, time). A lighter configuration than `kaleido distill`'s defaults; see
# kaleido_cuda/lab/pipeline/quickstart.py. Output: runs/quickstart/{kt,real}/ and comparison.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/kaleido quickstart --out "${1:-runs/quickstart}"
