#!/usr/bin/env bash
# Replay against the recording run, side by side in one run: wall time and peak RSS of
# `xdv run` writing a trace of about 1.2 M events (bench/replay/long.toml) and of `xdv replay`
# re-executing and verifying it, interleaved, three times each. Needs GNU time.
#
#     cargo build --release && bench/replay/run.sh [path/to/xdv]
set -euo pipefail
cd "$(dirname "$0")/../.."
xdv=${1:-target/release/xdv}
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
measure() { # label, command...
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$dir/t" "$@" > "$dir/out" 2>&1 || { cat "$dir/out" >&2; exit 1; }
    read -r secs kb < "$dir/t"
    printf '%-8s %8s s %8d KiB  %s\n' "$label" "$secs" "$kb" "$(tail -1 "$dir/out")"
}
for i in 1 2 3; do
    rm -f "$dir/long.xdv"
    measure record "$xdv" run bench/replay/long.toml --trace "$dir/long.xdv"
    measure replay "$xdv" replay "$dir/long.xdv"
done
