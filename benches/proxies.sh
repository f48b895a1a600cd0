#!/usr/bin/env bash
# Keyway as a proxy, against the proxies and tools it replaces, in one run on
# one machine with the same load tools:
#
#   redis:     Keyway -> redis-server  vs  twemproxy (nutcracker) -> the same redis-server
#              redis-benchmark -t set,get -c 50 -d 256, with -P 1 and -P 16
#   memcached: Keyway -> memcached     vs  twemproxy -> the same memcached
#              memaslap -c 50 -T 2 -X 256 (9:1 get:set)
#   SQL:       Keyway SQL route on PostgreSQL, SET from redis-benchmark -c 50 -P 1
#              vs  pgbench -c 50 running the same one-row upsert on the same server
#
# Usage: benches/proxies.sh [seconds-per-run]   (default 15)
#   ROUNDS=3  REQUESTS=1000000 (per redis-benchmark test)  PARTS="redis memcached sql"
#   KEYWAY_WORKERS=0 (Keyway's connection workers; 0 = one per core)
#   KEYWAY_CONNECTIONS (Keyway's pooled connections to each backend; default: the backend's own)
# Needs: apt-get install -y redis-server redis-tools memcached libmemcached-tools
#        nutcracker postgresql
# Every server listens on 127.0.0.1 only; every run is bounded in time or count.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
rounds=${ROUNDS:-3}
requests=${REQUESTS:-1000000}
parts=${PARTS:-redis memcached sql}
part() { [[ " $parts " == *" $1 "* ]]; }

# CPU time (user + system, in clock ticks of 10 ms) a process has used.
cpu_ticks() { [[ -n $1 ]] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
pids=()
# Proxies first (started last), so they do not log their servers going away.
cleanup() { for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
nutcracker=$(command -v nutcracker || echo /usr/sbin/nutcracker)

cargo build --release --locked -q
work=$(mktemp -d)
redis_port=$(free_port); mc_port=$(free_port)
tw_redis=$(free_port); tw_mc=$(free_port); kw_redis=$(free_port); kw_mc=$(free_port); kw_sql=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
memcached -l 127.0.0.1 -p "$mc_port" -U 0 -m 1024 -t 2 -u nobody & pids+=($!)

cat >"$work/nutcracker.yml" <<YAML
redis:
  listen: 127.0.0.1:$tw_redis
  hash: md5
  distribution: ketama
  redis: true
  servers:
   - 127.0.0.1:$redis_port:1
memcached:
  listen: 127.0.0.1:$tw_mc
  hash: md5
  distribution: ketama
  servers:
   - 127.0.0.1:$mc_port:1
YAML
"$nutcracker" -c "$work/nutcracker.yml" -s "$(free_port)" -o "$work/nutcracker.log" & pids+=($!)
twemproxy_pid=$!

# One Keyway per comparison, so each proxies exactly one backend.
keyway() { # name listen-line backend-url
    cat >"$work/$1.toml" <<TOML
[listen]
$2
[runtime]
workers = ${KEYWAY_WORKERS:-0}
[backends.b]
url = "$3"
table = "bench_keyway"
${KEYWAY_CONNECTIONS:+connections = $KEYWAY_CONNECTIONS}
[[routes]]
glob = "*"
backend = "b"
protected = false
TOML
    RUST_LOG=warn target/release/keyway --config "$work/$1.toml" & pids+=($!)
}
keyway redis "resp = \"127.0.0.1:$kw_redis\"" "redis://127.0.0.1:$redis_port"
keyway_redis_pid=$!
keyway memcached "memcache = \"127.0.0.1:$kw_mc\"" "memcached://127.0.0.1:$mc_port"

pg_port=$(free_port)
tests/servers/postgres.sh "$pg_port" $$ >/dev/null
for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.1; done
pg_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
keyway sql "resp = \"127.0.0.1:$kw_sql\"" "$pg_url"
# pgbench's table: the same schema, made by the same command.
sed 's/bench_keyway/bench_pgbench/' "$work/sql.toml" >"$work/pgbench.toml"
target/release/keyway --config "$work/pgbench.toml" migrate-schema >/dev/null
cat >"$work/upsert.sql" <<'SQL'
\set k random(1, 100000)
INSERT INTO bench_pgbench (db, cache_key, cache_value, flags, expires_ms, cas) VALUES (0, convert_to('key:' || :k, 'UTF8'), convert_to(repeat('x', 256), 'UTF8'), 0, 0, :k) ON CONFLICT (db, cache_key) DO UPDATE SET cache_value = excluded.cache_value, flags = excluded.flags, expires_ms = excluded.expires_ms, cas = excluded.cas;
SQL
for port in "$redis_port" "$mc_port" "$tw_redis" "$tw_mc" "$kw_redis" "$kw_mc" "$kw_sql"; do wait_port "$port"; done

echo "machine: $(nproc) cores, $(uname -r); $(redis-server --version | cut -d' ' -f1-3); $(memcached -V); nutcracker $("$nutcracker" -V 2>&1 | head -1); $(postgres -V 2>/dev/null || /usr/lib/postgresql/*/bin/postgres -V)"
for round in $(seq "$rounds"); do
    # redis-server alone first, at -P 1: the load tool's own ceiling on this
    # machine (it is single-threaded and shares the cores), which no proxy in
    # front of the same server can be expected to pass by much. Each proxy's
    # CPU time per request is printed too: that is what the proxy itself costs.
    part redis && for pipeline in 1 16; do
        echo "## round $round: redis-benchmark -t set,get -c 50 -P $pipeline -d 256 -n $requests -r 100000"
        targets=("twemproxy:$tw_redis:$twemproxy_pid" "keyway:$kw_redis:$keyway_redis_pid")
        [[ $pipeline == 1 ]] && targets=("redis-server-direct:$redis_port:" "${targets[@]}")
        for target in "${targets[@]}"; do
            IFS=: read -r name port pid <<<"$target"
            before=$(cpu_ticks "$pid")
            redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -c 50 -P "$pipeline" -d 256 -n "$requests" -r 100000 -q 2>/dev/null |
                tr '\r' '\n' | grep 'requests per second' | sed "s/^/$name /"
            [[ -n $pid ]] && echo "$name cpu: $(( ($(cpu_ticks "$pid") - before) * 10000000 / (2 * requests) )) ns per request"
        done
    done
    part memcached && echo "## round $round: memaslap -c 50 -T 2 -X 256 -t ${seconds}s" &&
    for target in "twemproxy:$tw_mc" "keyway:$kw_mc"; do
        name=${target%%:*}; port=${target##*:}
        memcaslap -s "127.0.0.1:$port" -c 50 -T 2 -X 256 -t "${seconds}s" | grep -E '^Run time' | sed "s/^/$name /"
    done
    part sql || continue
    echo "## round $round: 50 clients upserting one 256-byte row, ${seconds}s"
    pgbench -n -h 127.0.0.1 -p "$pg_port" -U postgres -c 50 -j 2 -T "$seconds" -f "$work/upsert.sql" postgres 2>/dev/null |
        grep -E '^tps' | sed 's/^/pgbench /'
    redis-benchmark -h 127.0.0.1 -p "$kw_sql" -t set -c 50 -P 1 -d 256 -r 100000 -n $((seconds * 4000)) -q 2>/dev/null |
        tr '\r' '\n' | grep 'requests per second' | sed 's/^/keyway-sql /'
done
