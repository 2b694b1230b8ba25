#!/usr/bin/env bash
# The test suite under UndefinedBehaviorSanitizer (any undefined behaviour aborts its test):
# builds into build-ubsan/ (RelWithDebInfo, -fsanitize=undefined -fno-sanitize-recover) and
# runs ctest there. Not part of CI (it doubles the build time); run it before a release.
# scripts/asan.sh runs it under AddressSanitizer and UBSan together.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build-ubsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=undefined -fno-sanitize-recover=undefined" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=undefined" >/dev/null
cmake --build build-ubsan -j2
cd build-ubsan && UBSAN_OPTIONS=print_stacktrace=1 ctest -j2 --output-on-failure
