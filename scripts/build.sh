#!/usr/bin/env bash
# Configures and builds vtxsim in build/ (Release, warnings as errors), after setup, with
# profile-guided optimization (docs/architecture.md, "Speed": about 14 % less host time per
# simulated IPI, results unchanged):
#   1. an instrumented vtxsim in build/pgo/generate (incremental);
#   2. when that binary changed, a training run writes profile data into
#      build/pgo/profile-<hash of the binary>: every workload in both time modes
#      (scripts/pgo-train.sh);
#   3. build/ compiled with that profile. The profile's directory is part of the compile
#      flags, so a new profile rebuilds everything and an unchanged one nothing.
# VTXSIM_PGO=0 skips stages 1 and 2 (a plain Release build). After editing sources, build with
# this script (it retrains), not with a bare `cmake --build build`, whose compiler would warn
# about the old profile, which -Werror makes an error.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${VTXSIM_PGO:-1}" = 0 ]; then
  use=(-DVTXSIM_PGO=)
else
  pgo=$PWD/build/pgo
  gen=$pgo/generate
  cmake -S . -B "$gen" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DVTXSIM_PGO=generate \
    -DVTXSIM_PGO_DIR="$pgo/training" >/dev/null
  cmake --build "$gen" -j2 --target vtxsim
  profile=$pgo/profile-$(sha1sum "$gen/vtxsim" | cut -c1-16)
  if [ ! -f "$profile/complete" ]; then
    echo "build.sh: training the profile-guided build ($profile)"
    rm -rf "$pgo/training" "$pgo"/profile-*
    bash scripts/pgo-train.sh "$gen/vtxsim"
    mv "$pgo/training" "$profile"
    touch "$profile/complete"
  fi
  use=(-DVTXSIM_PGO=use -DVTXSIM_PGO_DIR="$profile")
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "${use[@]}" >/dev/null
cmake --build build -j2
