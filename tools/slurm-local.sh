#!/usr/bin/env bash
# Runs COMMAND under a real one-node Slurm cluster on this machine, then stops it:
#   bash tools/slurm-local.sh COMMAND [ARG…]
# Installs Debian's slurm-wlm and munge when missing (root, or sudo), writes a munge key and a
# minimal slurm.conf (this machine's CPUs and memory, select/cons_tres, no cgroups) into a
# temporary folder, starts munged, slurmctld and slurmd there, runs COMMAND with SLURM_CONF set
# (so sbatch, squeue, scancel find the cluster), and stops the daemons and removes the folder on
# any exit, failures included. Exits with COMMAND's status. Needs root: slurmd runs jobs as
# their submitter.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash tools/slurm-local.sh COMMAND [ARG…]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "slurm-local.sh: slurmd must run as root (sudo bash tools/slurm-local.sh …)" >&2; exit 1; }

missing=()
for p in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  # the packages' own services are not wanted (and cannot start in a container)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

dir=$(mktemp -d /tmp/slurm-local.XXXXXX)
stop() {
  local rc=$? pids=() f
  # jobs still running (COMMAND failed or was interrupted) go first: slurmstepd outlives slurmd
  if [ -n "${SLURM_CONF:-}" ] && [ -n "$(squeue -h 2>/dev/null)" ]; then
    scancel --quiet --user=root 2>/dev/null || true # SIGTERM, SIGKILL after KillWait
    for _ in $(seq 150); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  # the pid files as they are now: a daemon whose file came late is stopped too
  for f in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do
    [ -s "$f" ] && pids+=("$(cat "$f")")
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ $rc -ne 0 ] && [ -n "${SLURM_LOCAL_KEEP_LOGS:-}" ]; then cp "$dir"/*.log "$SLURM_LOCAL_KEEP_LOGS"/ 2>/dev/null || true; fi
  rm -rf "$dir"
  exit $rc
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$dir"/{state,spool,munge}
chmod 700 "$dir"/munge
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
socket="$dir/munge/munge.socket"
munged --force --key-file="$dir/munge/munge.key" --socket="$socket" --pid-file="$dir/munge/munged.pid" \
  --seed-file="$dir/munge/seed" --log-file="$dir/munged.log"

# two free TCP ports for the controller and the node (other Slurm instances may run here)
read -r ctld_port node_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
host=$(hostname -s)
node=$(slurmd -C | head -1) # NodeName=… CPUs=… RealMemory=…, as slurmd will find them
cat > "$dir/slurm.conf" <<EOF
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$node_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
KillWait=10
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
for _ in $(seq 100); do [ -s "$dir/slurmctld.pid" ] && break; sleep 0.1; done
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do [ -s "$dir/slurmd.pid" ] && break; sleep 0.1; done
# the node is usable once the controller has heard from it
for _ in $(seq 300); do
  sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break
  sleep 0.1
done
sinfo -h -o %t | grep -qE '^(idle|mix|alloc)' || {
  echo "slurm-local.sh: the node did not come up; logs:" >&2
  tail -20 "$dir"/slurmctld.log "$dir"/slurmd.log >&2
  exit 1
}
# in the background, so that INT or TERM stops the daemons now and not when COMMAND ends
"$@" &
command_pid=$!
trap 'kill "$command_pid" 2>/dev/null; exit 130' INT
trap 'kill "$command_pid" 2>/dev/null; exit 143' TERM
wait "$command_pid"
