#!/usr/bin/env bash
# Before/after in CPU time per request: the figure that holds still on a
# shared machine where throughput moves ±15% between runs. Keyway at another
# revision and at the working tree, each on a memory route, take the same
# load in turn; each process's user+system time (from /proc) is divided by
# the requests it served.
#
#   redis-benchmark -t set,get -c 50 -P 16 -d 256 -n 1000000   (2,000,000 requests)
#   memaslap -c 50 -T 2 -X 256 -t 5s                           (its Ops)
#
# Usage: benches/cpu_compare.sh REV   (ROUNDS=4)
# REV is built as benches/compare.sh builds it (target/compare/, release).
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: benches/cpu_compare.sh REV}
rounds=${ROUNDS:-4}
source benches/lib.sh

build_both "$rev"

start() { # binary; sets $pid, $mc, $resp
    local config
    mc=$(free_port); resp=$(free_port); config=$(mktemp)
    printf '[listen]\nmemcache = "127.0.0.1:%s"\nresp = "127.0.0.1:%s"\n[backends.memory]\nurl = "memory://"\ncapacity = "1GiB"\n[[routes]]\nglob = "*"\nbackend = "memory"\n' \
        "$mc" "$resp" >"$config"
    RUST_LOG=warn "$1" --config "$config" >/dev/null 2>&1 & pid=$!; pids+=("$pid")
    wait_port "$mc"; wait_port "$resp"
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

start "$before"; before=("$pid" "$mc" "$resp")
start "$after"; after=("$pid" "$mc" "$resp")
echo "machine: $(nproc) cores, $(uname -r); before = $sha, after = working tree on $(git rev-parse --short HEAD)"
for round in $(seq "$rounds"); do
    for side in before after; do
        declare -n it=$side
        t0=$(ticks "${it[0]}")
        redis-benchmark -h 127.0.0.1 -p "${it[2]}" -t set,get -c 50 -P 16 -d 256 -n 1000000 -r 100000 -q >/dev/null 2>&1
        t1=$(ticks "${it[0]}")
        echo "round $round $side resp-P16: $(((t1 - t0) * 1000000000 / hz / 2000000)) ns CPU per request"
        t0=$(ticks "${it[0]}")
        ops=$(memcaslap -s "127.0.0.1:${it[1]}" -c 50 -T 2 -X 256 -t 5s | sed -nE 's/^Run time.*Ops: ([0-9]+).*/\1/p')
        t1=$(ticks "${it[0]}")
        echo "round $round $side memaslap: $(((t1 - t0) * 1000000000 / hz / ops)) ns CPU per request ($ops ops)"
    done
done
