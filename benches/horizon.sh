#!/usr/bin/env bash
# The load Horizon makes on its session store, through every way of serving
# it, in one run on one machine with one load tool (benches/load:
# keyway-load, one thread): non-pipelined connections, 9 GETs to 1 SET
# (with EX, as Django's cache session engine saves), 2-4 KiB values,
# :1:django.contrib.sessions.cache<32 chars> keys over a working set of
# KEYS sessions written before each timed run (it fits every tier).
#
#   redis           redis-server directly: the machine's own figure
#   twemproxy       nutcracker -> the same redis-server
#   keyway-redis    Keyway forwarding to that redis-server
#   tier-redis      Keyway's write-through tier: memory cache, redis durable
#   tier-postgres   the same over PostgreSQL (deploy/config/sessions-write-through-postgres.toml)
#   memory          Keyway's memory route alone
#   minimal-epoll   the least a server can do (benches/io_probe: GET/SET in a
#                   hash map, one thread), over epoll as Keyway: the floor
#   minimal-uring   the same server over io_uring (tokio-uring): what
#                   io_uring changes in the I/O itself
#
# For each: requests per second, p50/p99/p999 latency, and each proxy's CPU
# time per request (user + system from /proc over the requests it served).
#
# Usage: benches/horizon.sh [seconds-per-run]   (default 10)
#   ROUNDS=3  CONNECTIONS="50 200"  KEYS=10000  TARGETS="redis twemproxy ..."
#   BEFORE=REV: every Keyway target also runs on REV's build (before/after)
#   KEYWAY_SESSIONS='keep_ended = false': more [sessions] lines for every Keyway
#   KEYWAY_WORKERS=1: Keyway's connection threads (default 1, as redis-server,
#     twemproxy and the minimal server have: on two cores the load tool takes
#     one, and a second worker only competes with it; 0 = one per core)
# Needs: redis-server, nutcracker, postgresql (tests/run.sh installs them).
# Every server listens on 127.0.0.1 only; every run is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${ROUNDS:-3}
connections=${CONNECTIONS:-50 200}
keys=${KEYS:-10000}
targets=${TARGETS:-redis twemproxy keyway-redis tier-redis tier-postgres memory minimal-epoll minimal-uring}

# free_port, wait_port, pids (killed on exit), build_both
source benches/lib.sh

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
nutcracker=$(command -v nutcracker || echo /usr/sbin/nutcracker)

if [ -n "${BEFORE:-}" ]; then
    build_both "$BEFORE"
    builds=(before after)
else
    cargo build --release --locked -q
    after=target/release/keyway
    builds=(after)
fi
cargo build --release --locked -q -p keyway-load -p keyway-io-probe
load=target/release/keyway-load
work=$(mktemp -d)

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
pg_port=$(free_port)
tests/servers/postgres.sh "$pg_port" $$ >/dev/null
for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.2; done
pg_url="postgres://postgres@127.0.0.1:$pg_port/postgres"

declare -A port pid
tw_port=$(free_port)
cat >"$work/nutcracker.yml" <<YAML
sessions:
  listen: 127.0.0.1:$tw_port
  hash: md5
  distribution: ketama
  redis: true
  servers:
   - 127.0.0.1:$redis_port:1
YAML
"$nutcracker" -c "$work/nutcracker.yml" -s "$(free_port)" -o "$work/nutcracker.log" & pids+=($!)
port[twemproxy]=$tw_port; pid[twemproxy]=$!
port[redis]=$redis_port; pid[redis]=""
for io in epoll uring; do
    case " $targets " in *" minimal-$io "*) ;; *) continue ;; esac
    port[minimal-$io]=$(free_port)
    target/release/keyway-io-probe --io "$io" --listen "127.0.0.1:${port[minimal-$io]}" & pids+=($!)
    pid[minimal-$io]=$!
done

# The route each Keyway target sends every key to.
route() {
    case $1 in
    keyway-redis) echo 'backend = "redis"' ;;
    tier-redis | tier-postgres) echo 'policy = "tier"' ;;
    memory) echo 'backend = "hot"' ;;
    esac
}
durable() { [ "$1" = tier-postgres ] && echo db || echo redis; }

keyway() { # build target
    local name="$1 $2" config="$work/$1-$2.toml"
    port[$name]=$(free_port)
    cat >"$config" <<TOML
[runtime]
workers = ${KEYWAY_WORKERS:-1}
[listen]
resp = "127.0.0.1:${port[$name]}"
[sessions]
${KEYWAY_SESSIONS:-}
[backends.hot]
url = "memory://"
capacity = "1GiB"
[backends.redis]
url = "redis://127.0.0.1:$redis_port"
[backends.db]
url = "$pg_url"
table = "horizon_$1"
connections = 8
[policies.tier]
kind = "write-through"
cache = "hot"
durable = "$(durable "$2")"
[[routes]]
glob = "*"
protected = false
$(route "$2")
TOML
    [ "$2" = tier-postgres ] && "${!1}" --config "$config" migrate-schema >/dev/null
    RUST_LOG=error "${!1}" --config "$config" & pids+=($!)
    pid[$name]=$!
}
runs=()
for target in $targets; do
    case $target in
    redis | twemproxy | minimal-*) runs+=("$target") ;;
    *) for build in "${builds[@]}"; do keyway "$build" "$target"; runs+=("$build $target"); done ;;
    esac
done
for run in "${runs[@]}"; do wait_port "${port[$run]}"; done

echo "machine: $(nproc) cores, $(uname -r); $(redis-server --version | cut -d' ' -f1-3); nutcracker $("$nutcracker" -V 2>&1 | head -1); $(/usr/lib/postgresql/*/bin/postgres -V)"
echo "keyway: after = working tree on $(git rev-parse --short HEAD)${BEFORE:+, before = $BEFORE}; workers = ${KEYWAY_WORKERS:-1}"
for round in $(seq "$rounds"); do
    for conns in $connections; do
        echo "## round $round: keyway-load --connections $conns --seconds $seconds --keys $keys (9 GET : 1 SET EX, 2-4 KiB)"
        for run in "${runs[@]}"; do
            # Each run writes the working set first (untimed), so every
            # target starts from the same sessions and reads hit.
            "$load" --port "${port[$run]}" --connections "$conns" --seconds 0 --keys "$keys" --label fill >/dev/null
            p=${pid[$run]}
            ticks=$([ -n "$p" ] && cpu_ticks "$p" || echo 0)
            line=$("$load" --port "${port[$run]}" --connections "$conns" --seconds "$seconds" --keys "$keys" --no-fill --label "${run// /-}")
            requests=$(awk '{print $3}' <<<"$line")
            cpu=""
            [ -n "$p" ] && cpu=" cpu_ns_per_request $(( ($(cpu_ticks "$p") - ticks) * 10000000 / requests ))"
            echo "$line$cpu"
        done
    done
done
