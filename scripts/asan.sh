#!/usr/bin/env bash
# The test suite under AddressSanitizer and UndefinedBehaviorSanitizer together (any finding
# fails its test): builds into build-asan/ (RelWithDebInfo, -fsanitize=address,undefined,
# -fno-sanitize-recover=undefined; warnings not errors, as GCC's -Wmaybe-uninitialized
# misfires under ASan) and runs ctest there. CI (.ci/run) runs it after the test command. docs/reliability.md "Sanitizers" says what the options are for:
# - detect_leaks=0: SystemC's coroutine threads that are still suspended when a simulation
#   ends keep their stacks and the objects only those stacks point at; LeakSanitizer would
#   report each of them. (Every simulation runs in a process that ends with it.)
# - ASan warns once per process that it ignores __asan_handle_no_return on a coroutine
#   stack (QuickThreads switches stacks without telling it); the warning is not a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVTX_WERROR=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-asan -j2
cd build-asan && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 ctest -j2 --output-on-failure
