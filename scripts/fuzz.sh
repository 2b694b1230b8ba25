#!/usr/bin/env bash
# Runs each libFuzzer target (sim/fuzz_targets.hpp) for a bounded time: profile, scenario,
# set, vmentry, apic. Builds with clang into build-fuzz/ (-DVTXSIM_FUZZ=ON: ASan + UBSan + libFuzzer),
# starts from tests/corpus/TARGET/ (and what earlier runs found, in build-fuzz/corpus/),
# and keeps any crash in tests/corpus/TARGET/ so that the normal suite replays it.
# Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(profile scenario set vmentry apic)
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is needed (apt-get install clang)" >&2; exit 2; }
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DVTXSIM_FUZZ=ON -DVTX_WERROR=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
for t in "${targets[@]}"; do cmake --build build-fuzz --target "fuzz_$t" -j2 >/dev/null; done
export SYSTEMC_DISABLE_COPYRIGHT_MESSAGE=1 VTX_SOURCE_DIR="$PWD"
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  log="build-fuzz/fuzz_$t.log"
  if ./build-fuzz/"fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="tests/corpus/$t/" \
       "build-fuzz/corpus/$t" "tests/corpus/$t" >"$log" 2>&1; then
    result="no crash"
  else
    result="CRASH (kept in tests/corpus/$t/)"
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz_$t: $execs executions in ${seconds} s, $result"
done
exit $status
