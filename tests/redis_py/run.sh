#!/usr/bin/env bash
# redis-py's own test suite, as redis-py runs it, three times: against a
# redis-server, through Keyway whose every route goes to that same kind of
# redis-server, and through Keyway whose every route goes to its memory
# store. Every test that passes on redis must pass through Keyway, except
# those listed with the reason in tests/redis_py/lost_through_keyway.txt
# (redis route) and tests/redis_py/lost_on_memory.txt (memory route;
# README's "What is not built yet" points to both). A listed test that
# passes now is reported, so the lists only shrink.
#
#   tests/redis_py/run.sh PYTHON   (a Python 3.12+; called by tests/run.sh)
#
# Needs redis-server and target/debug/keyway; the suite's source is redis-py's
# PyPI source release of the pinned version, fetched into target/.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${1:?usage: tests/redis_py/run.sh PYTHON}
version=$(sed -n 's/^redis==//p' tests/redis_py/requirements.txt)
venv=target/redis-py-venv
if ! cmp -s tests/redis_py/requirements.txt "$venv/requirements.txt" 2>/dev/null; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r tests/redis_py/requirements.txt
    cp tests/redis_py/requirements.txt "$venv/requirements.txt"
fi
source=target/redis-py-src/redis-$version
if [ ! -d "$source/tests" ]; then
    mkdir -p target/redis-py-src
    "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
        "redis==$version" -d target/redis-py-src
    tar -xzf "target/redis-py-src/redis-$version.tar.gz" -C target/redis-py-src
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    exit 1
}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

start_redis() { # port
    redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & pids+=($!)
    wait_port "$1"
}
direct=$(free_port); behind=$(free_port); keyway=$(free_port); memory=$(free_port)
start_redis "$direct"
start_redis "$behind"
cat >"$work/keyway.toml" <<TOML
[listen]
resp = "127.0.0.1:$keyway"
[backends.redis]
url = "redis://127.0.0.1:$behind"
[[routes]]
glob = "*"
backend = "redis"
protected = false
TOML
target/debug/keyway --config "$work/keyway.toml" >"$work/keyway.log" 2>&1 & pids+=($!)
wait_port "$keyway"
cat >"$work/memory.toml" <<TOML
[listen]
resp = "127.0.0.1:$memory"
[backends.memory]
url = "memory://"
capacity = "256MiB"
[[routes]]
glob = "*"
backend = "memory"
TOML
target/debug/keyway --config "$work/memory.toml" >"$work/memory.log" 2>&1 & pids+=($!)
wait_port "$memory"

files=(tests/test_commands.py tests/test_pipeline.py tests/test_scripting.py tests/test_lock.py
       tests/test_encoding.py tests/test_connection.py tests/test_pubsub.py tests/test_monitor.py
       tests/test_asyncio/test_commands.py tests/test_asyncio/test_pipeline.py
       tests/test_asyncio/test_scripting.py tests/test_asyncio/test_lock.py
       tests/test_asyncio/test_pubsub.py tests/test_asyncio/test_monitor.py)
passed() { # port, output file: the ids of the tests that pass
    # (pytest's exit status says some failed, which is expected.)
    (cd "$source" && COLUMNS=400 "$OLDPWD/$venv/bin/python" -m pytest -q -p no:cacheprovider -rA \
        --timeout 30 --tb=line "${files[@]}" --redis-url="redis://127.0.0.1:$1" 2>&1 || true) \
        >"$2.log"
    sed -n 's/^PASSED \([^ ]*\).*/\1/p' "$2.log" | sort -u >"$2"
}
passed "$direct" "$work/server.txt"

# compare PORT NAME LIST: the tests that pass on redis-server and not
# through Keyway at PORT must be those LIST names (each retried once alone
# first, against timing flakes); says which listed ones pass now.
compare() {
    local port=$1 name=$2 list=$3
    passed "$port" "$work/$name.txt"
    sed -e 's/ *#.*//' -e '/^$/d' "$list" | sort -u >"$work/$name-expected.txt"
    comm -23 "$work/server.txt" "$work/$name.txt" >"$work/$name-lost.txt"
    echo "redis-py $version suite: $(wc -l <"$work/server.txt") pass on redis-server," \
         "$(wc -l <"$work/$name.txt") through Keyway's $name route;" \
         "$(wc -l <"$work/$name-lost.txt") lost ($(wc -l <"$work/$name-expected.txt") listed)"
    local fixed unexpected
    fixed=$(comm -13 "$work/$name-lost.txt" "$work/$name-expected.txt")
    if [ -n "$fixed" ]; then
        echo "listed in $list but passing now (take them off):"
        echo "$fixed"
    fi
    unexpected=$(comm -23 "$work/$name-lost.txt" "$work/$name-expected.txt")
    if [ -n "$unexpected" ]; then
        # Once more, those alone: a test that depends on timing may lose a
        # race once on a loaded machine, on redis-server too.
        local files_before=("${files[@]}")
        files=($unexpected)
        passed "$port" "$work/$name-again.txt"
        files=("${files_before[@]}")
        unexpected=$(comm -23 <(echo "$unexpected" | sort) "$work/$name-again.txt")
    fi
    if [ -n "$unexpected" ]; then
        echo "pass on redis-server, fail through Keyway's $name route, and are not listed in $list:" >&2
        for test in $unexpected; do
            grep -m1 -F -e "FAILED $test " -e "ERROR $test " "$work/$name.txt.log" >&2 || echo "$test" >&2
        done
        return 1
    fi
}
# Both routes at once (two cores; each run mostly waits on its server).
status=0
compare "$keyway" redis tests/redis_py/lost_through_keyway.txt >"$work/redis.out" 2>&1 & redis_run=$!
compare "$memory" memory tests/redis_py/lost_on_memory.txt >"$work/memory.out" 2>&1 & memory_run=$!
wait "$redis_run" || status=1
wait "$memory_run" || status=1
cat "$work/redis.out" "$work/memory.out"
if [ -n "${KEEP_LOGS:-}" ]; then
    cp "$work"/*.log "$work"/*.txt "$KEEP_LOGS"/
fi
exit $status
