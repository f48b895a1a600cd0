#!/usr/bin/env bash
# Load benchmark: Keyway's memory route against a real redis-server and a real
# memcached, same machine, same run, same load tools.
#
#   redis-benchmark -t set,get -c 50 -P 16 -d 256   (Keyway RESP vs redis-server)
#   the same at -P 1: one request per round trip     (the syscall-bound case)
#   memaslap -c 50 -T 2 -X 256                       (Keyway memcached vs memcached)
#
# Usage: benches/load.sh [seconds-per-memaslap-run]   (default 20)
#   ROUNDS=3 (targets alternate within each round, so drift hits both alike)
#   KEYWAY_WORKERS=1: Keyway's connection threads (default 0: one per core;
#     redis-server runs commands on one thread, memcached here on two)
# Needs: apt-get install -y redis-server redis-tools memcached libmemcached-tools
# Every server listens on 127.0.0.1 only; every run is bounded in time or count.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
requests=${REQUESTS:-2000000}
# Unpipelined requests take 16 times the round trips: fewer of them.
requests_p1=${REQUESTS_P1:-$((requests / 8))}
rounds=${ROUNDS:-3}

# free_port, wait_port, pids (killed on exit), redis_bench, memaslap_bench
source benches/lib.sh

cargo build --release --locked -q
redis_port=$(free_port); memcached_port=$(free_port); kw_mc=$(free_port); kw_resp=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
memcached -l 127.0.0.1 -p "$memcached_port" -U 0 -m 1024 -t 2 -u nobody & pids+=($!)
config=$(mktemp)
cat >"$config" <<TOML
[runtime]
workers = ${KEYWAY_WORKERS:-0}
[listen]
memcache = "127.0.0.1:$kw_mc"
resp = "127.0.0.1:$kw_resp"
[backends.memory]
url = "memory://"
capacity = "1GiB"
[[routes]]
glob = "*"
backend = "memory"
TOML
RUST_LOG=error target/release/keyway --config "$config" & pids+=($!)
for port in "$redis_port" "$memcached_port" "$kw_mc" "$kw_resp"; do wait_port "$port"; done

echo "machine: $(nproc) cores, $(uname -r); $(redis-server --version | cut -d' ' -f1-3); $(memcached -V)"
echo
for round in $(seq "$rounds"); do
    echo "## round $round: redis-benchmark -t set,get -c 50 -P 16 -d 256 -n $requests -r 100000"
    redis_bench "$redis_port" redis-server "$requests"
    redis_bench "$kw_resp" keyway "$requests"
    echo "## round $round: redis-benchmark -t set,get -c 50 -P 1 -d 256 -n $requests_p1 -r 100000"
    redis_bench "$redis_port" redis-server "$requests_p1" 1
    redis_bench "$kw_resp" keyway "$requests_p1" 1
    echo "## round $round: memaslap -c 50 -T 2 -X 256 -t ${seconds}s (default 9:1 get:set mix)"
    memaslap_bench "$memcached_port" memcached "$seconds"
    memaslap_bench "$kw_mc" keyway "$seconds"
done
