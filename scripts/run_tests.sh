#!/usr/bin/env bash
# Quick start 2: set up, then run the tests: the C++ header test (ctest) and pytest.
# pytest runs as the installed console script, so it imports the installed package (with its
# compiled module), not the source folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/cmake -j 2 > /dev/null
ctest --test-dir build/cmake --output-on-failure
bash scripts/cmake_build.sh
.venv/bin/pytest tests "$@"
