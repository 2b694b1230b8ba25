#!/usr/bin/env bash
# Configures and builds vtxsim in build/ (Release, warnings as errors), after setup.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2
