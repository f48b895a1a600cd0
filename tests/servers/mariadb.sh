#!/usr/bin/env bash
# Starts a throwaway MariaDB for tests: mariadb-install-db into a new directory, listen on
# 127.0.0.1:PORT (no passwords: --skip-grant-tables, database "keyway"), and
# stop it and remove the directory once process OWNER_PID has exited. Readiness is
# for the caller to poll (the client can `USE keyway`).
#   usage: mariadb.sh PORT OWNER_PID   (prints the directory it made)
# With MARIADB_SSL_CERT and MARIADB_SSL_KEY (PEM files) set, it also serves
# TLS with that certificate.
set -euo pipefail
port=$1 owner=$2
dir=$(mktemp -d /tmp/keyway-test-XXXXXX)
command -v mariadbd >/dev/null || { echo "MariaDB is missing: apt-get install -y mariadb-server" >&2; exit 1; }
mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1
echo "CREATE DATABASE IF NOT EXISTS keyway;" >"$dir/init.sql"
ssl=()
if [ -n "${MARIADB_SSL_CERT:-}" ]; then
    install -m 0600 "$MARIADB_SSL_CERT" "$dir/server.crt"
    install -m 0600 "$MARIADB_SSL_KEY" "$dir/server.key"
    ssl=(--ssl-cert="$dir/server.crt" --ssl-key="$dir/server.key")
fi
mariadbd --no-defaults --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1 \
    --socket="$dir/mariadb.sock" --pid-file="$dir/mariadb.pid" --user="$(id -un)" \
    --skip-grant-tables --init-file="$dir/init.sql" --innodb-buffer-pool-size=64M \
    --max-connections=200 --skip-log-bin "${ssl[@]}" >"$dir/mariadb.log" 2>&1 &
server=$!
(
    while kill -0 "$owner" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
    kill -TERM "$server" 2>/dev/null
    # The server is not this subshell's child (wait cannot see it): poll
    # until it is gone, or its shutdown writes files back after the rm.
    for _ in $(seq 300); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    rm -rf "$dir"
) >/dev/null 2>&1 &
disown -a
echo "$dir"
