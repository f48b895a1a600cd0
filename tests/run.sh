#!/usr/bin/env bash
# Runs every Keyway check: style gates (rustfmt, clippy), protocol unit and
# property tests, integration tests against real memcached, redis-server,
# twemproxy and redis-cli, the backend conformance suite (memory, memcached,
# redis, SQLite, PostgreSQL, MariaDB), then the end-to-end suite with real
# Django clients through every backend.
#
# On a fresh Debian machine it installs what it needs (as root: apt-get; a
# Python 3.12+ venv under target/e2e-venv). Tests start their own servers on
# free loopback ports (PostgreSQL and MariaDB through tests/servers/*.sh,
# unless KEYWAY_TEST_POSTGRES_URL / KEYWAY_TEST_MYSQL_URL name running ones).
#
# `./tests/run.sh quick` is the inner loop: style gates, unit and property
# tests, the conformance suite on memory and SQLite, the protocol, routing and
# policy tests, and Django's cache API and sessions through one alias per
# client library (KEYWAY_QUICK=1 narrows the suites). The full run is the
# default and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-full}
case "$mode" in
    full | quick) ;;
    *) echo "usage: tests/run.sh [quick]" >&2; exit 2 ;;
esac

need=()
command -v memcached >/dev/null || need+=(memcached)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
{ [ -x /usr/sbin/nutcracker ] || command -v nutcracker >/dev/null; } || need+=(nutcracker)   # twemproxy: the ketama reference
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
command -v pg_isready >/dev/null || need+=(postgresql-client)
command -v mariadbd >/dev/null || need+=(mariadb-server)
command -v mariadb >/dev/null || need+=(mariadb-client)
# pylibmc has wheels only for CPython 3.11; on 3.12+ it builds against these.
dpkg -s libmemcached-dev zlib1g-dev >/dev/null 2>&1 || need+=(libmemcached-dev zlib1g-dev)
# The legacy client stacks (tests/e2e_legacy) run on Debian's Python 3.11.
python3.11 -c 'import ensurepip' 2>/dev/null || need+=(python3.11 python3.11-venv)
command -v unshare >/dev/null || need+=(util-linux)   # tests/dns.rs: a private /etc/hosts
command -v prometheus-redis-exporter >/dev/null || need+=(prometheus-redis-exporter)   # redis_exporter scraping Keyway
if ((${#need[@]})); then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing: ${need[*]}; install with: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi

# Django 6 needs Python 3.12 or newer.
find_python() {
    for candidate in "${KEYWAY_PYTHON:-}" python3.12 python3.13 \
        "$HOME"/.pyenv/versions/3.12*/bin/python "$HOME"/.pyenv/versions/3.13*/bin/python; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    echo "no Python 3.12+ found; set KEYWAY_PYTHON to one" >&2
    exit 1
}

venv=target/e2e-venv
if ! cmp -s tests/e2e/requirements.txt "$venv/requirements.txt" 2>/dev/null; then
    rm -rf "$venv"
    "$(find_python)" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r tests/e2e/requirements.txt
    cp tests/e2e/requirements.txt "$venv/requirements.txt"
fi

# Each phase's start, with the seconds since this script began: where CI's
# time goes.
phase() { echo "== ${SECONDS}s: $*"; }

phase style gates and build
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --locked

if [ "$mode" = quick ]; then
    export KEYWAY_QUICK=1
    cargo test --workspace --locked --lib --bins
    cargo test --locked --test conformance --test memcache --test memcache_binary --test resp --test routing \
        --test policies --test backends --test ketama --test layers --test docs --test sizes --test sessions
    KEYWAY_BIN=target/debug/keyway "$venv/bin/python" -m pytest -q -p no:cacheprovider \
        tests/e2e/test_django_cache.py tests/e2e/test_sessions.py
    exit 0
fi

phase cargo tests
cargo test --workspace --locked
phase Django end to end
KEYWAY_BIN=target/debug/keyway "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/e2e

# redis-py's own suite against redis-server and through Keyway to redis.
phase redis-py suite
tests/redis_py/run.sh "$(find_python)"

# Django 4.0's MemcachedCache (python-memcached 1.59) and django-redis-cache
# 3.0.1, as older Horizon deployments run them: Python 3.11, a venv of their own.
phase legacy client stacks
legacy=target/e2e-legacy-venv
if ! cmp -s tests/e2e_legacy/requirements.txt "$legacy/requirements.txt" 2>/dev/null; then
    rm -rf "$legacy"
    python3.11 -m venv "$legacy"
    "$legacy/bin/pip" install -q --disable-pip-version-check -r tests/e2e_legacy/requirements.txt
    cp tests/e2e_legacy/requirements.txt "$legacy/requirements.txt"
fi
KEYWAY_BIN=target/debug/keyway "$legacy/bin/python" -m pytest -q -p no:cacheprovider tests/e2e_legacy

# The real Horizon 27 and Keystone 30 (tests/horizon), from PyPI into a venv
# of their own (Python 3.11, every package pinned by constraints.txt),
# installed once per requirements and kept under target/ between runs.
phase Horizon and Keystone
horizon=target/horizon-venv
if ! cat tests/horizon/requirements.txt tests/horizon/constraints.txt |
    cmp -s - "$horizon/requirements.txt" 2>/dev/null; then
    rm -rf "$horizon" target/horizon-static
    python3.11 -m venv "$horizon"
    "$horizon/bin/pip" install -q --disable-pip-version-check -r tests/horizon/requirements.txt
    "$horizon/bin/python" -c 'import horizon.version as v; print(v.version_info.version_string(), end="")' \
        >"$horizon/horizon-version"
    cat tests/horizon/requirements.txt tests/horizon/constraints.txt >"$horizon/requirements.txt"
fi
# Each Horizon process reads its own settings file (KEYWAY_HORIZON_SETTINGS).
cp tests/horizon/local_settings.py \
    "$("$horizon/bin/python" -c 'import openstack_dashboard, os; print(os.path.dirname(openstack_dashboard.__file__))')/local/"
KEYWAY_BIN=target/debug/keyway "$horizon/bin/python" -m pytest -q -p no:cacheprovider --durations=0 tests/horizon

# Fuzz smoke: every cargo-fuzz target for KEYWAY_FUZZ_SECONDS (default 15),
# from its committed seeds. Needs the nightly toolchain; installs cargo-fuzz.
# (Long runs: README, Fuzzing.) KEYWAY_FUZZ_SECONDS=0 skips it.
fuzz_seconds=${KEYWAY_FUZZ_SECONDS:-15}
if ((fuzz_seconds > 0)); then
    phase fuzz smoke
    if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        echo "fuzz smoke needs the nightly toolchain: rustup toolchain install nightly" >&2
        exit 1
    fi
    command -v cargo-fuzz >/dev/null || cargo install --locked -q cargo-fuzz
    for target in memcache_request memcache_binary memcache_response resp_request resp_response django_session; do
        corpus=$(mktemp -d)
        log=$(mktemp)
        if ! (cd protocol && cargo +nightly fuzz run -O "$target" "$corpus" "fuzz/seeds/$target" -- \
            -max_total_time="$fuzz_seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1); then
            tail -60 "$log" >&2
            echo "fuzz target $target failed; the crashing input is under protocol/fuzz/artifacts/$target" >&2
            exit 1
        fi
        echo "fuzz $target: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log") in ${fuzz_seconds}s"
        rm -rf "$corpus" "$log"
    done
fi
phase done
