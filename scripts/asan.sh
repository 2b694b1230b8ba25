#!/usr/bin/env bash
# The test suite under AddressSanitizer and UndefinedBehaviorSanitizer together (any finding
# fails its test): builds into build-asan/ (RelWithDebInfo, -fsanitize=address,undefined,
# -fno-sanitize-recover=undefined; warnings not errors, as GCC's -Wmaybe-uninitialized
# misfires under ASan) and runs ctest there. CI (.ci/run) runs it after the test command. docs/reliability.md "Sanitizers" says what the options are for:
# - detect_leaks=0 by default (what CI runs). `VTX_LSAN=1 bash scripts/asan.sh` runs the suite
#   with LeakSanitizer on and scripts/lsan.supp, which suppresses exactly what suspended
#   guest threads own when a simulation ends (their coroutine stacks are never unwound) and
#   nothing else. Not in CI: LeakSanitizer's own tracer faults (SIGSEGV at a page-aligned
#   address) in a few simulation processes, varying from run to run (the 4096-vCPU test
#   always), which ends them with "LeakSanitizer has encountered a fatal error", not a leak.
# - ASan warns once per process that it ignores __asan_handle_no_return on a coroutine
#   stack (QuickThreads switches stacks without telling it); the warning is not a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVTX_WERROR=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-asan -j2
cd build-asan
export UBSAN_OPTIONS=print_stacktrace=1
if [ "${VTX_LSAN:-0}" = 1 ]; then
  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS="suppressions=$PWD/../scripts/lsan.supp:print_suppressions=0" \
    ctest -j2 --output-on-failure
else
  ASAN_OPTIONS=detect_leaks=0 ctest -j2 --output-on-failure
fi
