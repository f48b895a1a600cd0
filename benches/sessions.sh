#!/usr/bin/env bash
# How long `POST /sessions/revoke?user=ID` (keyway sessions revoke) takes
# to end one user's sessions among SESSIONS (default 100,000) Django
# sessions, on each kind of session store: PostgreSQL, MariaDB, SQLite,
# redis, memory, and a two-server memcached pool. Each store is filled
# through Keyway's RESP listener with Horizon-shaped pickled sessions
# (benches/sessions_fill.py: USERS users with SESSIONS/USERS sessions
# each, about 2 KiB per value), then ROUNDS users are revoked one after
# another; each line gives Keyway's own elapsed_ms and the wall time of the
# HTTP call.
#
# Usage: ROUNDS=3 SESSIONS=100000 USERS=10000 benches/sessions.sh [store...]
# Needs: the e2e venv (tests/run.sh builds it), postgresql, mariadb-server,
# redis-server, memcached. Every server listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
sessions=${SESSIONS:-100000}
users=${USERS:-10000}
stores=("$@")
((${#stores[@]})) || stores=(postgres mariadb sqlite redis memory memcached)
python=target/e2e-venv/bin/python

# free_port, wait_port, pids (killed on exit)
source benches/lib.sh

cargo build --release --locked -q
dir=$(mktemp -d)
pids+=(0)
trap 'cleanup; rm -rf "$dir"' EXIT

# Starts the store's servers (recorded in pids) and sets `url`. Not run in
# a command substitution: that would wait for the servers' stdout.
start_store() {
    case "$1" in
    postgres)
        local port; port=$(free_port)
        tests/servers/postgres.sh "$port" $$ >/dev/null
        for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.2; done
        url="postgres://postgres@127.0.0.1:$port/postgres" ;;
    mariadb)
        local port; port=$(free_port)
        tests/servers/mariadb.sh "$port" $$ >/dev/null
        for _ in $(seq 150); do mariadb -h 127.0.0.1 -P "$port" -u root -e 'SELECT 1' keyway >/dev/null 2>&1 && break; sleep 0.2; done
        url="mysql://root@127.0.0.1:$port/keyway" ;;
    sqlite) url="sqlite://$dir/sessions.sqlite3" ;;
    redis)
        local port; port=$(free_port)
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
        wait_port "$port"; url="redis://127.0.0.1:$port" ;;
    memory) url="memory://" ;;
    memcached)
        local a b; a=$(free_port); b=$(free_port)
        memcached -u nobody -l 127.0.0.1 -p "$a" -m 1024 -U 0 >/dev/null & pids+=($!)
        memcached -u nobody -l 127.0.0.1 -p "$b" -m 1024 -U 0 >/dev/null & pids+=($!)
        wait_port "$a"; wait_port "$b"; url="memcached://127.0.0.1:$a,127.0.0.1:$b" ;;
    esac
}

echo "machine: $(nproc) cores, $(uname -r); $sessions sessions of $users users per store"
for store in "${stores[@]}"; do
    start_store "$store"
    resp=$(free_port); admin=$(free_port)
    cat >"$dir/$store.toml" <<TOML
[listen]
resp = "127.0.0.1:$resp"
admin = "127.0.0.1:$admin"
[sessions]
inventory_interval_seconds = 0
[backends.sessions]
url = "$url"
table = "bench_sessions"
capacity = "2GiB"
[backends.rest]
url = "memory://"
[[routes]]
django = "django.contrib.sessions."
backend = "sessions"
[[routes]]
glob = "*"
backend = "rest"
TOML
    RUST_LOG=error target/release/keyway --config "$dir/$store.toml" & keyway=$!
    pids+=("$keyway")
    wait_port "$resp"; wait_port "$admin"
    fill_started=$(date +%s.%N)
    "$python" benches/sessions_fill.py "$resp" "$sessions" "$users"
    fill=$(echo "$(date +%s.%N) - $fill_started" | bc)
    listed=$(curl -s -o "$dir/list.json" -w '%{time_total}' "http://127.0.0.1:$admin/sessions")
    total=$(sed 's/.*"total":\([0-9]*\).*/\1/' "$dir/list.json")
    printf '%s: filled in %.1f s; GET /sessions: %s sessions in %.3f s\n' "$store" "$fill" "$total" "$listed"
    for round in $(seq "$rounds"); do
        user="user-$((round * 7 % users))"
        wall=$(curl -s -X POST -o "$dir/revoke.json" -w '%{time_total}' "http://127.0.0.1:$admin/sessions/revoke?user=$user")
        printf '%s: revoke %s (wall %.3f s)\n' "$store" "$(cat "$dir/revoke.json")" "$wall"
    done
    kill "$keyway"; wait "$keyway" 2>/dev/null || true
done
