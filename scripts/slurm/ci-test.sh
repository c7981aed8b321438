#!/usr/bin/env bash
# Integration test: a sharded sweep run as a real Slurm job array on a single-node
# Slurm started here, merged by a dependent job, compared byte for byte with the
# unsharded run.
#
#   scripts/slurm/ci-test.sh [INFERSIM_BINARY]   (default: target/release/infersim)
#
# Installs nothing: needs munged, slurmctld, slurmd, sbatch, squeue, sinfo and
# scontrol (Debian: apt-get install slurm-wlm munge) and root (slurmd runs jobs as
# their user). Everything (munge key and socket, slurm.conf, state, logs) lives in a
# temporary folder; the daemons started here are stopped on exit, and their logs and
# the jobs' output are printed when the test fails. SHARDS (default 3) and
# TIMEOUT_S (default 300, for the jobs) can be set.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(readlink -f "${1:-$root/target/release/infersim}")
shards=${SHARDS:-3}
timeout_s=${TIMEOUT_S:-300}
for tool in munged slurmctld slurmd sbatch squeue sinfo scontrol; do
    command -v "$tool" >/dev/null || { echo "ci-test: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "ci-test: no infersim binary at $bin (cargo build --release)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "ci-test: needs root to start slurmd" >&2; exit 1; }

tmp=$(mktemp -d /tmp/infersim-slurm-ci.XXXXXX)
chmod 755 "$tmp"
pids=()
ok=0
cleanup() {
    set +e
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    if [ "$ok" != 1 ]; then
        echo "ci-test: FAILED; logs follow" >&2
        for f in "$tmp"/*.log "$tmp"/out/slurm-*.out; do
            [ -f "$f" ] || continue
            echo "===== $f" >&2
            tail -n 60 "$f" >&2
        done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port (the test must not collide with a Slurm already on this machine).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
        || echo $((20000 + RANDOM % 20000))
}
wait_for() { # seconds, description, command...
    local t=$1 what=$2
    shift 2
    for _ in $(seq $((t * 5))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "ci-test: timed out after ${t}s waiting for $what" >&2
    return 1
}

# munge, on its own key and socket.
mkdir -p "$tmp/munge"
chmod 700 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
sock=$tmp/munge/munge.socket
munged -F -f --key-file="$tmp/munge/munge.key" --socket="$sock" \
    --pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munge/munged.seed" \
    --log-file="$tmp/munged.log" 2>>"$tmp/munged.stderr.log" &
pids+=($!)
wait_for 20 "munged" test -S "$sock"

host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$tmp/state" "$tmp/spool"
ctld_port=$(free_port)
slurmd_port=$(free_port)
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
export SLURM_CONF=$tmp/slurm.conf
cat >"$SLURM_CONF" <<CONF
ClusterName=infersimci
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -i -f "$SLURM_CONF" >>"$tmp/slurmctld.stderr.log" 2>&1 &
pids+=($!)
wait_for 30 "slurmctld" scontrol ping
slurmd -D -f "$SLURM_CONF" -N "$host" >>"$tmp/slurmd.stderr.log" 2>&1 &
pids+=($!)
idle() { sinfo -h -N -o '%T' | grep -qE '^(idle|mixed)'; }
wait_for 60 "the node to be idle" idle

# A small sweep: 4 points x 2 replications = 8 runs (the fixture tests/shard.rs uses).
cp "$root/tests/fixtures/shard-sweep.toml" "$tmp/sweep.toml"
cd "$tmp"
# The unsharded reference: the command each shard runs (infersim-array.sbatch), less
# its --shard, with the same --out (the manifest records the command line), moved
# aside.
"$bin" run sweep.toml --out out --resume --quiet --jobs 1
mv out reference
read -r array merge < <(INFERSIM_BIN=$bin "$root/scripts/slurm/submit.sh" sweep.toml out "$shards" --cpus-per-task=1)
echo "ci-test: submitted array job $array ($shards shards) and merge job $merge"
state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | sort -u | tr '\n' ' '; }
finished() { # every task of the array and the merge job are out of PENDING/RUNNING
    ! state "$array" | grep -qE 'PENDING|RUNNING|CONFIGURING|COMPLETING' \
        && ! state "$merge" | grep -qE 'PENDING|RUNNING|CONFIGURING|COMPLETING'
}
wait_for "$timeout_s" "the jobs to finish" finished
echo "ci-test: array: $(state "$array"); merge: $(state "$merge")"
[ "$(state "$array")" = "JobState=COMPLETED " ] || { echo "ci-test: a shard task did not complete" >&2; exit 1; }
[ "$(state "$merge")" = "JobState=COMPLETED " ] || { echo "ci-test: the merge job did not complete" >&2; exit 1; }
for i in $(seq 0 $((shards - 1))); do
    [ -f "out/shard-$i-of-$shards.json" ] || { echo "ci-test: out/shard-$i-of-$shards.json missing" >&2; exit 1; }
done
checked=0
for f in reference/*; do
    [ -f "$f" ] || continue
    cmp "$f" "out/$(basename "$f")"
    checked=$((checked + 1))
done
[ "$checked" -ge 5 ] || { echo "ci-test: only $checked output files to compare" >&2; exit 1; }
ok=1
echo "ci-test: ok: $shards Slurm array shards merged into $checked files identical to the unsharded run"
