#!/usr/bin/env bash
# The training run of the profile-guided build (scripts/build.sh): an instrumented vtxsim
# (argument 1) runs every workload in both time modes, the main job's IPI round trip at
# length, random unicast traffic among 512 vCPUs and among 64 vCPUs sharing 16 CPUs (the
# preemption paths), so that every flow the product runs has its branches and call targets
# counted. Deterministic (fixed seeds), about a minute.
set -euo pipefail
vtxsim=$1
export SYSTEMC_DISABLE_COPYRIGHT_MESSAGE=1
workloads=$("$vtxsim" list | awk '/^workloads:/ { w = 1; next } /^[^ ]/ { w = 0 } w { print $1 }')
[ -n "$workloads" ] || { echo "pgo-train.sh: '$vtxsim list' named no workloads" >&2; exit 1; }
for w in $workloads; do
  "$vtxsim" compare "$w" --runs 2 >/dev/null
  "$vtxsim" compare "$w" --runs 1 --quantum 0 >/dev/null
done
"$vtxsim" compare ipi --runs 2 --set workload.goal=10000000 >/dev/null
"$vtxsim" compare ipi --runs 1 --quantum 0 --set workload.goal=5000000 >/dev/null
"$vtxsim" run random_ipi --vcpus 512 --pcpus 512 --set workload.halt_percent=0 \
  --set workload.ipis=20000 >/dev/null
"$vtxsim" run random_ipi --vcpus 64 --pcpus 16 --set workload.ipis=20000 >/dev/null
