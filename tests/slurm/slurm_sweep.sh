#!/usr/bin/env bash
# A small sweep through a real single-node Slurm: `vtxsim sweep --emit-slurm`, sbatch (a job
# array, one task per point), `vtxsim sweep --merge`; the merged results must equal those of
# the same sweep run locally. Starts munged, slurmctld and slurmd itself (as root, with a
# configuration of its own on private ports) and stops them at the end. Exit 77 (ctest:
# skipped) with the reason when it cannot: not root, Slurm or munge not installed
# (scripts/setup.sh installs them), or the daemons do not come up.
set -uo pipefail
vtxsim=${1:?usage: slurm_sweep.sh PATH/TO/vtxsim}
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "the Slurm test starts its daemons as root"
for b in munged slurmctld slurmd sbatch; do command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || skip "$b is not installed (scripts/setup.sh installs slurm-wlm and munge)"; done
work=$(mktemp -d /tmp/vtxsim-slurm.XXXXXX)
host=$(hostname -s)
cleanup() {
  for p in "$work"/slurmctld.pid "$work"/slurmd.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
  sleep 1
  rm -rf "$work"
}
trap cleanup EXIT
# munge: the key the package made, its socket directory, the daemon (once per machine).
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  [ -f /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; }
  chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null
  chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key
  su -s /bin/sh munge -c /usr/sbin/munged || skip "munged does not start"
  sleep 1
  munge -n | unmunge >/dev/null 2>&1 || skip "munge does not work"
fi
cat > "$work/slurm.conf" <<CONF
ClusterName=vtxsimtest
SlurmctldHost=$host
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
mkdir -p "$work/state" "$work/spool"
export SLURM_CONF=$work/slurm.conf
/usr/sbin/slurmctld -f "$SLURM_CONF" || skip "slurmctld does not start"
/usr/sbin/slurmd -f "$SLURM_CONF" || skip "slurmd does not start"
for i in $(seq 1 30); do
  sinfo -h -o %T 2>/dev/null | grep -q idle && break
  sleep 1
done
sinfo -h -o %T 2>/dev/null | grep -q idle || { tail -5 "$work"/*.log; skip "the Slurm node does not become idle"; }

grid=(--grid apic=xapic,x2apic --grid ipiv=off,on --runs 2 --set workload.goal=50000 --seed 3)
"$vtxsim" sweep ipi "${grid[@]}" --emit-slurm "$work/cluster" || exit 1
sbatch --wait --quiet "$work/cluster/sweep.sbatch" || { cat "$work"/cluster/slurm/*.out; exit 1; }
"$vtxsim" sweep --merge "$work/cluster" || exit 1
"$vtxsim" sweep ipi "${grid[@]}" --out "$work/local" 2>/dev/null || exit 1
[ "$(ls "$work"/cluster/slurm/*.out | wc -l)" -eq 4 ] || { echo "expected 4 task outputs"; exit 1; }
if ! diff "$work/local/results.csv" "$work/cluster/results.csv"; then
  echo "the Slurm sweep's results differ from the local sweep's"; exit 1
fi
echo "Slurm sweep: 4 points as 4 array tasks, merged results identical to the local sweep"
