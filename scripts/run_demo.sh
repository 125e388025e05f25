#!/usr/bin/env bash
# Quick start 1: set up, then run the main job (KT on the bundled sklearn digits).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/kaleido demo --out "${1:-runs/demo}"
