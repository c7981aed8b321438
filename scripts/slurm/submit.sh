#!/usr/bin/env bash
# Submits an infersim run as a Slurm job array of N shards and a merge job that runs
# once every shard has succeeded:
#
#   scripts/slurm/submit.sh EXPERIMENT.toml OUT_DIR N [sbatch options for the shards]
#
# Prints the two job ids (array, merge). OUT_DIR must be on a file system the nodes
# share. INFERSIM_BIN names the binary (default: infersim on PATH); it is passed to
# the jobs, which inherit the submitting environment.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 EXPERIMENT.toml OUT_DIR N [sbatch options]" >&2
    exit 2
fi
exp=$1
out=$2
n=$3
shift 3
case $n in
    '' | *[!0-9]* | 0) echo "$0: N must be a whole number >= 1, got '$n'" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
bin=${INFERSIM_BIN:-infersim}
export INFERSIM_BIN=$bin
mkdir -p "$out"
array=$(sbatch --parsable --array="0-$((n - 1))" --output="$out/slurm-shard-%A_%a.out" "$@" \
    "$here/infersim-array.sbatch" "$exp" "$out")
array=${array%%;*}
merge=$(sbatch --parsable --job-name=infersim-merge --dependency="afterok:$array" \
    --kill-on-invalid-dep=yes --output="$out/slurm-merge-%j.out" \
    --wrap "$(printf '%q ' "$bin" merge "$out" --quiet)")
merge=${merge%%;*}
echo "$array $merge"
