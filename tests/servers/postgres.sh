#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for tests: initdb into a new directory, listen on
# 127.0.0.1:PORT (trust auth, user postgres, database postgres), and stop it
# and remove the directory once process OWNER_PID has exited. Readiness is for
# the caller to poll (pg_isready).
#   usage: postgres.sh PORT OWNER_PID   (prints the directory it made)
# With POSTGRES_SSL_CERT and POSTGRES_SSL_KEY (PEM files) set, it also
# serves TLS with that certificate.
set -euo pipefail
port=$1 owner=$2
dir=$(mktemp -d /tmp/keyway-test-XXXXXX)
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$bin/postgres" ] || { echo "PostgreSQL is missing: apt-get install -y postgresql" >&2; exit 1; }

# PostgreSQL refuses to run as root: run it as the postgres user then.
as_pg=()
if [ "$(id -u)" = 0 ]; then
    as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    chown postgres: "$dir"
fi
"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1
ssl=()
if [ -n "${POSTGRES_SSL_CERT:-}" ]; then
    install -m 0600 "$POSTGRES_SSL_CERT" "$dir/data/server.crt"
    install -m 0600 "$POSTGRES_SSL_KEY" "$dir/data/server.key"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir/data/server.crt" "$dir/data/server.key"
    ssl=(-c ssl=on)
fi
"${as_pg[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" \
    -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=64MB "${ssl[@]}" \
    >"$dir/postgres.log" 2>&1 &
server=$!
# Outlive the caller by at most a second, then clean up.
(
    while kill -0 "$owner" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
    kill -INT "$server" 2>/dev/null
    # The server is not this subshell's child (wait cannot see it): poll
    # until it is gone, or its shutdown writes files back after the rm.
    for _ in $(seq 300); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    rm -rf "$dir"
) >/dev/null 2>&1 &
disown -a
echo "$dir"
