#!/usr/bin/env bash
# The main job: install what is missing, build, and run the IPI comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec build/vtxsim compare ipi "$@"
