#!/usr/bin/env bash
# What coherence costs on the write-through path: Keyway with a memory cache
# in front of PostgreSQL, write-through, as deploy/config/
# sessions-write-through-postgres.toml, in three variants on one PostgreSQL
# (each its own table), same run, same load tools:
#
#   watch     this build, default coherence (the cache follows the change log)
#   none      this build, coherence = "none" (no feed; writes still log)
#   baseline  a build from before the change log (BASELINE=path/to/keyway), if given
#
# Per round and variant: redis-benchmark SET (50 connections, -P 16, every
# SET a durable write), then GET of the same keys (read path: cache hits),
# then memaslap -c 50 (its 9:1 get:set mix; misses and sets reach PostgreSQL).
#
# Usage: BASELINE=/path/to/old/keyway ROUNDS=2 benches/coherence.sh [seconds-per-memaslap-run]
# Needs: postgresql, redis-tools, libmemcached-tools (tests/run.sh installs them).
# Every server listens on 127.0.0.1 only; every run is bounded in time or count.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${ROUNDS:-2}
keys=${KEYS:-10000}
gets=${GETS:-2000000}

# free_port, wait_port, pids (killed on exit)
source benches/lib.sh

cargo build --release --locked -q
pg_port=$(free_port)
tests/servers/postgres.sh "$pg_port" $$ >/dev/null
for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.2; done
pg="postgres://postgres@127.0.0.1:$pg_port/postgres"

variants=(watch none)
declare -A binary=([watch]=target/release/keyway [none]=target/release/keyway)
declare -A extra=([watch]="" [none]='coherence = "none"')
if [ -n "${BASELINE:-}" ]; then
    variants+=(baseline)
    binary[baseline]=$BASELINE
    extra[baseline]=""
fi
declare -A resp mc
for v in "${variants[@]}"; do
    resp[$v]=$(free_port); mc[$v]=$(free_port)
    config=$(mktemp)
    cat >"$config" <<TOML
[listen]
memcache = "127.0.0.1:${mc[$v]}"
resp = "127.0.0.1:${resp[$v]}"
[backends.hot]
url = "memory://"
capacity = "1GiB"
[backends.db]
url = "$pg"
table = "bench_$v"
connections = 8
[policies.sessions]
kind = "write-through"
cache = "hot"
durable = "db"
${extra[$v]}
[[routes]]
glob = "*"
policy = "sessions"
TOML
    RUST_LOG=warn "${binary[$v]}" --config "$config" & pids+=($!)
done
for v in "${variants[@]}"; do wait_port "${resp[$v]}"; wait_port "${mc[$v]}"; done

echo "machine: $(nproc) cores, $(uname -r); $(postgres --version 2>/dev/null || ls /usr/lib/postgresql); variants: ${variants[*]}"
rps() { tr '\r' '\n' | grep 'requests per second' | tail -1 | sed 's/.*: \([0-9.]*\) requests per second.*/\1/'; }
for round in $(seq "$rounds"); do
    echo "## round $round"
    for v in "${variants[@]}"; do
        # 10 writes per key: every key of the GET run exists (all but e^-10 of them).
        set_rps=$(redis-benchmark -h 127.0.0.1 -p "${resp[$v]}" -t set -c 50 -P 16 -d 256 -n $((keys * 10)) -r "$keys" -q 2>/dev/null | rps)
        get_rps=$(redis-benchmark -h 127.0.0.1 -p "${resp[$v]}" -t get -c 50 -P 16 -d 256 -n "$gets" -r "$keys" -q 2>/dev/null | rps)
        tps=$(memcaslap -s "127.0.0.1:${mc[$v]}" -c 50 -T 2 -X 256 -t "${seconds}s" | grep -E '^Run time' | sed 's/.*TPS: \([0-9]*\).*/\1/' || echo "(failed)")
        echo "$v: SET $set_rps  GET $get_rps  memaslap TPS $tps"
    done
done
