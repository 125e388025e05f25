#!/usr/bin/env bash
# Quick start 2: set up, then run the tests: the C++ tests (ctest: the math header, the host emulation
# of CUDA) and pytest, in which the CUDA kernels run through that emulation (a missing emulator
# build is an error here, not a skip).
# pytest runs as the installed console script, so it imports the installed package (with its
# compiled module), not the source folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/cmake -j 2 > /dev/null
ctest --test-dir build/cmake --output-on-failure
bash scripts/cmake_build.sh
KALEIDO_REQUIRE_EMU=1 .venv/bin/pytest tests "$@"
