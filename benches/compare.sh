#!/usr/bin/env bash
# Before/after: the same load against Keyway built at another revision and
# at the working tree, in one run, the two alternating within each round so
# that drift hits both alike.
#
#   redis-benchmark -t set,get -c 50 -P 16 -d 256   on a memory route, and on
#                                                    a route to a failover policy
#                                                    over two memory backends
#   memaslap -c 50 -T 2 -X 256                       on a memory route
#
# Usage: benches/compare.sh REV [seconds-per-memaslap-run]   (default 10)
#   ROUNDS=3 REQUESTS=1000000
# REV is built in a worktree under target/compare/ (release, its own target dir).
# Needs: apt-get install -y redis-tools libmemcached-tools
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: benches/compare.sh REV [seconds]}
seconds=${2:-10}
requests=${REQUESTS:-1000000}
rounds=${ROUNDS:-3}

# free_port, wait_port, pids (killed on exit), redis_bench, memaslap_bench
source benches/lib.sh

sha=$(git rev-parse --short "$rev")
tree=target/compare/$sha
if [ ! -d "$tree" ]; then
    git worktree add -f --detach "$tree" "$sha" >/dev/null
fi
(cd "$tree" && CARGO_TARGET_DIR="$PWD/../target-$sha" cargo build --release --locked -q)
cargo build --release --locked -q
before=target/compare/target-$sha/release/keyway
after=target/release/keyway

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

echo "machine: $(nproc) cores, $(uname -r); before = $sha, after = working tree on $(git rev-parse --short HEAD)"
for round in $(seq "$rounds"); do
    echo "## round $round: redis-benchmark -t set,get -c 50 -P 16 -d 256 -n $requests -r 100000"
    redis_bench "$before_resp" "before memory" "$requests"
    redis_bench "$after_resp" "after memory" "$requests"
    echo "## round $round: the same through a failover policy over two memory backends"
    redis_bench "$before_policy" "before failover" "$requests"
    redis_bench "$after_policy" "after failover" "$requests"
    echo "## round $round: memaslap -c 50 -T 2 -X 256 -t ${seconds}s"
    memaslap_bench "$before_mc" before "$seconds"
    memaslap_bench "$after_mc" after "$seconds"
done
