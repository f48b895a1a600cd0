#!/usr/bin/env bash
# Before/after: the same load against Keyway built at another revision and
# at the working tree, in one run, the two alternating within each round so
# that drift hits both alike.
#
#   redis-benchmark -t set,get -c 50 -P 16 -d 256   on a memory route, and on
#                                                    a route to a failover policy
#                                                    over two memory backends
#   memaslap -c 50 -T 2 -X 256                       on a memory route
#   redis-benchmark -t set,get -c 50 -P 16 -d 256   forwarded to a redis-server,
#                                                    and -P 1 (fewer requests)
#
# Usage: benches/compare.sh REV [seconds-per-memaslap-run]   (default 10)
#   ROUNDS=3 REQUESTS=1000000 REDIS_BENCH_FLAGS=-3 (redis-benchmark's clients speak RESP3)
# REV is built in a worktree under target/compare/ (release, its own target dir).
# Needs: apt-get install -y redis-server redis-tools libmemcached-tools
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: benches/compare.sh REV [seconds]}
seconds=${2:-10}
requests=${REQUESTS:-1000000}
rounds=${ROUNDS:-3}

# free_port, wait_port, pids (killed on exit), build_both, redis_bench, memaslap_bench
source benches/lib.sh

build_both "$rev"

# The redis the forwarding runs go to (both Keyways share it, in turn).
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & pids+=($!)
wait_port "$redis_port"

start() { # binary, route line; sets $mc and $resp
    local config
    mc=$(free_port); resp=$(free_port); config=$(mktemp)
    cat >"$config" <<TOML
[listen]
memcache = "127.0.0.1:$mc"
resp = "127.0.0.1:$resp"
[backends.memory]
url = "memory://"
capacity = "1GiB"
[backends.a]
url = "memory://"
capacity = "512MiB"
[backends.b]
url = "memory://"
capacity = "512MiB"
[backends.redis]
url = "redis://127.0.0.1:$redis_port"
[policies.both]
kind = "failover"
members = ["a", "b"]
[[routes]]
glob = "*"
$2
TOML
    RUST_LOG=warn "$1" --config "$config" >/dev/null 2>&1 & pids+=($!)
    wait_port "$mc"; wait_port "$resp"
}
start "$before" 'backend = "memory"'; before_mc=$mc; before_resp=$resp
start "$after" 'backend = "memory"'; after_mc=$mc; after_resp=$resp
start "$before" 'policy = "both"'; before_policy=$resp
start "$after" 'policy = "both"'; after_policy=$resp
start "$before" 'backend = "redis"'; before_redis=$resp
start "$after" 'backend = "redis"'; after_redis=$resp

echo "machine: $(nproc) cores, $(uname -r); before = $sha, after = working tree on $(git rev-parse --short HEAD)"
for round in $(seq "$rounds"); do
    echo "## round $round: redis-benchmark -t set,get -c 50 -P 16 -d 256 -n $requests -r 100000"
    redis_bench "$before_resp" "before memory" "$requests"
    redis_bench "$after_resp" "after memory" "$requests"
    echo "## round $round: the same through a failover policy over two memory backends"
    redis_bench "$before_policy" "before failover" "$requests"
    redis_bench "$after_policy" "after failover" "$requests"
    echo "## round $round: the same forwarded to a redis-server"
    redis_bench "$before_redis" "before redis" "$requests"
    redis_bench "$after_redis" "after redis" "$requests"
    echo "## round $round: forwarded to a redis-server, -P 1, $((requests / 10)) requests"
    redis_bench "$before_redis" "before redis-P1" "$((requests / 10))" 1
    redis_bench "$after_redis" "after redis-P1" "$((requests / 10))" 1
    echo "## round $round: memaslap -c 50 -T 2 -X 256 -t ${seconds}s"
    memaslap_bench "$before_mc" before "$seconds"
    memaslap_bench "$after_mc" after "$seconds"
done
