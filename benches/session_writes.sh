#!/usr/bin/env bash
# What keeping ended sessions ended costs a session write: redis-benchmark
# SET and GET on Django session keys (`:1:django.contrib.sessions.cache`
# + 32 characters), 2 KiB values, 50 connections, no pipelining, against
# one redis-server directly and through two Keyways routing sessions to it:
# `keep_ended = true` (the default: each write checks the ended marker and
# indexes the owner, in one script on redis) and `keep_ended = false`
# (session keys forwarded as they came). Same run, ROUNDS rounds.
#
# Usage: ROUNDS=3 REQUESTS=100000 benches/session_writes.sh
# Needs: redis-server, redis-tools. Everything on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
requests=${REQUESTS:-100000}
source benches/lib.sh
cargo build --release --locked -q
dir=$(mktemp -d)
trap 'cleanup; rm -rf "$dir"' EXIT

redis=$(free_port)
redis-server --port "$redis" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
wait_port "$redis"
declare -A port=([direct]=$redis)
for keep in true false; do
    port[$keep]=$(free_port)
    cat >"$dir/$keep.toml" <<TOML
[listen]
resp = "127.0.0.1:${port[$keep]}"
[sessions]
keep_ended = $keep
inventory_interval_seconds = 0
[backends.redis]
url = "redis://127.0.0.1:$redis"
[[routes]]
glob = "*"
backend = "redis"
TOML
    RUST_LOG=error target/release/keyway --config "$dir/$keep.toml" & pids+=($!)
    wait_port "${port[$keep]}"
done
key=':1:django.contrib.sessions.cache00000000000000000000__rand_int__'
value=$(head -c 1536 /dev/urandom | base64 -w0 | head -c 2048)
rps() { tr '\r' '\n' | grep 'requests per second' | tail -1 | sed 's/.*: \([0-9.]*\) requests per second.*/\1/'; }
echo "machine: $(nproc) cores, $(uname -r); $(redis-server --version | cut -d' ' -f3)"
for round in $(seq "$rounds"); do
    for target in direct true false; do
        set_rps=$(redis-benchmark -p "${port[$target]}" -c 50 -n "$requests" -r 10000 -q SET "$key" "$value" 2>/dev/null | rps)
        get_rps=$(redis-benchmark -p "${port[$target]}" -c 50 -n "$requests" -r 10000 -q GET "$key" 2>/dev/null | rps)
        echo "round $round $target: SET $set_rps  GET $get_rps"
    done
done
