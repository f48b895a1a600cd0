# Shared by the load scripts (source it): free loopback ports, waiting for a
# listener, and killing every process recorded in `pids` when the script exits.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 150); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

pids=()
# Last started first: proxies go before their servers, so they do not log
# them going away.
cleanup() { for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done; }
trap cleanup EXIT

# Builds revision $1 in a worktree under target/compare/ (release, its own
# target dir) and the working tree; sets $sha, $before and $after (binaries).
build_both() {
    sha=$(git rev-parse --short "$1")
    local tree=target/compare/$sha
    if [ ! -d "$tree" ]; then
        git worktree add -f --detach "$tree" "$sha" >/dev/null
    fi
    (cd "$tree" && CARGO_TARGET_DIR="$PWD/../target-$sha" cargo build --release --locked -q)
    cargo build --release --locked -q
    before=target/compare/target-$sha/release/keyway
    after=target/release/keyway
}

# The load runs the scripts compare, each output line prefixed with a label.
# REDIS_BENCH_FLAGS: more flags for redis-benchmark (-3: the clients speak RESP3).
redis_bench() { # port label requests [pipeline, default 16]
    # shellcheck disable=SC2086 # the flags are words
    redis-benchmark -h 127.0.0.1 -p "$1" -t set,get -c 50 -P "${4:-16}" -d 256 -n "$3" -r 100000 -q ${REDIS_BENCH_FLAGS:-} 2>/dev/null |
        tr '\r' '\n' | grep 'requests per second' | sed "s/^/$2 /"
}
memaslap_bench() { # port label seconds
    memcaslap -s "127.0.0.1:$1" -c 50 -T 2 -X 256 -t "${3}s" | grep -E '^Run time' | sed "s/^/$2 /"
}
