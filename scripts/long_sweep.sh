#!/usr/bin/env bash
# A sweep of many hours that survives the loss of its machine: run `l2obench run` with its
# results folder inside this repository, and commit the folder's completed records every
# INTERVAL minutes (and once more when the sweep ends), so that a fresh clone resumes from the
# last commit by running the same command again. See docs/long-sweeps.md.
#
#   scripts/long_sweep.sh OUT MINUTES -- l2obench run arguments (without --out)
#   scripts/long_sweep.sh results/wip/shortest-path 30 -- --suite shortest-path --jobs 1 --threads 1
#
# Only OUT is committed (its records, superseded and damaged records and suite notes; never its
# locks), on the branch checked out here; a commit that cannot be made now (another git command
# holds the index, a merge in progress) is retried at the next interval. L2OBENCH is the command
# to run (default: `l2obench` on the PATH).
set -uo pipefail

if [[ $# -lt 3 || $3 != "--" ]]; then
    echo "usage: $0 OUT MINUTES -- l2obench run arguments (without --out)" >&2
    exit 2
fi
out=$1
minutes=$2
shift 3
if ! [[ $minutes =~ ^[0-9]+$ ]] || (( minutes < 1 )); then
    echo "$0: MINUTES must be a whole number of minutes, at least 1; got '$minutes'" >&2
    exit 2
fi
repo=$(git -C "$(dirname "$out")" rev-parse --show-toplevel 2>/dev/null) || {
    echo "$0: $out is not inside a git checkout" >&2
    exit 2
}
l2obench=${L2OBENCH:-l2obench}
mkdir -p "$out"

checkpoint() {
    # Commit OUT's completed records; quiet when there is nothing new.
    local paths
    git -C "$repo" add -- "$(realpath "$out")" 2>/dev/null || return 0
    paths=$(git -C "$repo" diff --cached --name-only -- "$(realpath "$out")" | wc -l)
    (( paths == 0 )) && return 0
    local done_count
    done_count=$(find "$out/records" -maxdepth 1 -name '*.json' ! -name '.tmp-*' | wc -l)
    git -C "$repo" commit --quiet -m "$(basename "$out") sweep: $done_count records so far ($(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1 /proc/loadavg))" \
        -- "$(realpath "$out")" && echo "[long_sweep] committed $paths file(s), $done_count records" >&2
}

"$l2obench" run --out "$out" "$@" &
sweep=$!
# A command started with `&` by a script ignores SIGINT, and so does the sweep it starts: stop
# both with SIGTERM (`kill -TERM PID`), which stops the sweep and commits what it completed.
trap 'kill -TERM $sweep 2>/dev/null; wait $sweep; checkpoint; exit 143' INT TERM
while kill -0 $sweep 2>/dev/null; do
    for (( s = 0; s < minutes * 60 && $(kill -0 $sweep 2>/dev/null; echo $?) == 0; s += 10 )); do
        sleep 10
    done
    checkpoint
done
wait $sweep
status=$?
checkpoint
exit $status
