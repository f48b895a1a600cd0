#!/usr/bin/env bash
# Keyway on a Redis Cluster, in one run on one machine with one load tool
# (redis-benchmark -t set,get -c 50 -P 16 -d 256 -r 100000):
#
#   Keyway -> one redis-server                   (redis://)
#   Keyway -> a cluster of 1, 2 and 3 primaries  (redis-cluster://)
#   redis-benchmark --cluster straight at the same clusters
#
# Usage: benches/cluster.sh            ROUNDS=2  REQUESTS=1000000  PRIMARIES="1 2 3"
#   KEYWAY_WORKERS=0 (Keyway's connection workers; 0 = one per core)
# Needs: apt-get install -y redis-server redis-tools
# Every server listens on 127.0.0.1 only; every run is bounded by its count.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-2}
requests=${REQUESTS:-1000000}
primaries_list=${PRIMARIES:-1 2 3}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
pids=()
cleanup() { for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done; }
trap cleanup EXIT

cargo build --release --locked -q
work=$(mktemp -d)

redis() { # port [extra args...]
    local port=$1; shift
    mkdir -p "$work/$port"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/$port" \
        "$@" >/dev/null & pids+=($!)
    wait_port "$port"
}

# A cluster of N primaries, slots split evenly, made with CLUSTER MEET and
# ADDSLOTSRANGE (redis-cli --cluster create wants at least three).
cluster() { # N -> sets cluster_seeds: host:port,host:port...
    local n=$1 ports=() seeds=() bus=()
    for ((i = 0; i < n; i++)); do
        # The bus port named, not port + 10000 (past 65535 for some ports).
        local port; port=$(free_port); bus+=("$(free_port)")
        redis "$port" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "${bus[i]}"
        ports+=("$port"); seeds+=("127.0.0.1:$port")
    done
    for ((i = 0; i < n; i++)); do
        local from=$((16384 * i / n)) to=$((16384 * (i + 1) / n - 1))
        redis-cli -p "${ports[i]}" cluster addslotsrange "$from" "$to" >/dev/null
        if ((i > 0)); then
            redis-cli -p "${ports[i]}" cluster meet 127.0.0.1 "${ports[0]}" "${bus[0]}" >/dev/null
        fi
    done
    for _ in $(seq 300); do
        local ok=1
        for port in "${ports[@]}"; do
            redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' || ok=0
            [[ $(redis-cli -p "$port" cluster nodes | grep -c master) == "$n" ]] || ok=0
        done
        ((ok)) && break
        sleep 0.1
    done
    cluster_seeds=$(IFS=,; echo "${seeds[*]}")
}

keyway() { # listen-port backend-url
    cat >"$work/keyway-$1.toml" <<TOML
[listen]
resp = "127.0.0.1:$1"
[runtime]
workers = ${KEYWAY_WORKERS:-0}
[backends.b]
url = "$2"
[[routes]]
glob = "*"
backend = "b"
protected = false
TOML
    RUST_LOG=warn target/release/keyway --config "$work/keyway-$1.toml" 2>>"$work/keyway.log" & pids+=($!)
    wait_port "$1"
}

# requests per second for SET and GET, as "set get"
bench() { # port [--cluster]
    redis-benchmark -p "$1" ${2:-} -t set,get -c 50 -P 16 -d 256 -n "$requests" -r 100000 --csv 2>/dev/null |
        awk -F'"' '/^"SET"/ {set=$4} /^"GET"/ {get=$4} END {printf "%d %d\n", set, get}'
}

single=$(free_port); redis "$single"
kw_single=$(free_port); keyway "$kw_single" "redis://127.0.0.1:$single"
declare -A seeds kw
for n in $primaries_list; do
    cluster "$n"; seeds[$n]=$cluster_seeds
    kw[$n]=$(free_port); keyway "${kw[$n]}" "redis-cluster://${seeds[$n]}"
done

echo "| round | target | SET | GET |"
echo "|---|---|---|---|"
for round in $(seq "$rounds"); do
    read -r s g < <(bench "$single"); echo "| $round | redis-server (one), direct | $s | $g |"
    read -r s g < <(bench "$kw_single"); echo "| $round | Keyway -> one redis | $s | $g |"
    for n in $primaries_list; do
        first=${seeds[$n]%%,*}
        # redis-benchmark refuses --cluster on a one-node cluster ("Invalid
        # cluster"); there the node is the whole keyspace, so it runs plain.
        if ((n > 1)); then flag=--cluster; else flag=; fi
        read -r s g < <(bench "${first##*:}" $flag); echo "| $round | redis-benchmark ${flag:-(plain)} at the cluster of $n | $s | $g |"
        read -r s g < <(bench "${kw[$n]}"); echo "| $round | Keyway -> cluster of $n | $s | $g |"
    done
done
