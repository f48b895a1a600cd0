"""The Horizon migration story, end to end, with Django's cache session
engine over PyMemcacheCache (Horizon's default) and the real binaries:

1. Sessions live in memcached behind Keyway (a plain memcached route).
2. The operator switches the session route to `migrate` from memcached into
   a write-through tier (memory in front of SQLite) and restarts Keyway.
   Users who come back find their sessions (reads copy them over); users
   who log out stay logged out; users who sign in land in the new tier.
3. `keyway migrate` copies the sessions nobody read yet; all of them load.
4. The route becomes the write-through tier alone; Keyway restarts.
5. memcached restarts (empty).
At every step every session that should load does, and none that was
deleted comes back. The counts are printed for the closing note.
"""

import subprocess
from pathlib import Path

from django.test import override_settings

from conftest import KEYWAY_BIN, free_port, wait_for

SESSIONS = 300
LOGOUTS = 20

COMMON = """
[listen]
memcache = "127.0.0.1:{memcache}"

[runtime]
data_dir = "{data_dir}"

[backends.old]
url = "memcached://127.0.0.1:{memcached}"

[backends.hot]
url = "memory://"
capacity = "32MiB"
request_timeout_ms = 200

[backends.db]
url = "sqlite://sessions.sqlite3"

[policies.sessions]
kind = "write-through"
cache = "hot"
durable = "db"

[policies.moving]
kind = "migrate"
from = "old"
to = "sessions"
"""

ROUTES = {
    "memcached": 'backend = "old"',
    "migrate": 'policy = "moving"',
    "final": 'policy = "sessions"',
}


def write_config(path, step, **ports):
    route = ROUTES[step]
    text = COMMON.format(**ports) + f"""
[[routes]]
glob = "*django.contrib.sessions.*"
{route}

[[routes]]
glob = "*"
backend = "old"
"""
    path.write_text(text)
    return path


class Keyway:
    def __init__(self, config, port, log):
        self.process = subprocess.Popen([str(KEYWAY_BIN), "--config", str(config)], stdout=log, stderr=log)
        wait_for(port)

    def stop(self):
        self.process.terminate()
        assert self.process.wait(timeout=15) == 0


def start_memcached(port):
    process = subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody"])
    wait_for(port)
    return process


def loadable(keys):
    from django.contrib.sessions.backends.cache import SessionStore

    found = 0
    for i, key in keys.items():
        data = SessionStore(session_key=key).load()
        if data.get("user") == f"user{i}":
            found += 1
    return found


def test_sessions_move_from_memcached_to_sql_behind_memory_without_logouts(tmp_path):
    ports = {"memcached": free_port(), "memcache": free_port(), "data_dir": tmp_path / "data"}
    log = open(tmp_path / "keyway.log", "a")
    config = tmp_path / "keyway.toml"
    settings = dict(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                            "LOCATION": f"127.0.0.1:{ports['memcache']}"}},
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        SESSION_CACHE_ALIAS="default",
    )
    memcached = start_memcached(ports["memcached"])
    counts = {}
    try:
        with override_settings(**settings):
            from django.contrib.sessions.backends.cache import SessionStore
            from django.core.cache import caches

            def sign_in(i):
                session = SessionStore()
                session["user"] = f"user{i}"
                session.set_expiry(3600)
                session.save()
                return session.session_key

            # 1. Sessions in memcached, as Horizon keeps them today.
            keyway = Keyway(write_config(config, "memcached", **ports), ports["memcache"], log)
            keys = {i: sign_in(i) for i in range(SESSIONS)}
            counts["created"] = len(keys)
            counts["found in memcached"] = loadable(keys)
            caches["default"].close()
            keyway.stop()

            # 2. Switch to migrate; restart. Everyone is still signed in; some
            # log out, some new users sign in.
            keyway = Keyway(write_config(config, "migrate", **ports), ports["memcache"], log)
            logged_out = dict(list(keys.items())[:LOGOUTS])
            for key in logged_out.values():
                SessionStore(session_key=key).delete()
            staying = {i: k for i, k in keys.items() if i >= LOGOUTS}
            # Half the users come back now: reads copy their sessions over.
            returning = {i: k for i, k in staying.items() if i % 2 == 0}
            counts["returning users found after the switch"] = loadable(returning)
            new = {i: sign_in(i) for i in range(SESSIONS, SESSIONS + 50)}
            counts["signed in during the migration"] = len(new)
            caches["default"].close()

            # 3. The bulk copy, while this Keyway runs, moves the rest.
            result = subprocess.run(
                [str(KEYWAY_BIN), "--config", str(config), "migrate", "--policy", "moving"],
                capture_output=True, text=True, timeout=120,
            )
            assert result.returncode == 0, result.stderr
            counts["keyway migrate"] = result.stdout.strip()
            counts["found after keyway migrate"] = loadable(staying)
            staying.update(new)
            caches["default"].close()
            keyway.stop()

            # 4. The final route: the write-through tier alone.
            keyway = Keyway(write_config(config, "final", **ports), ports["memcache"], log)
            counts["found on the final route"] = loadable(staying)
            counts["logged-out sessions back"] = sum(
                1 for key in logged_out.values() if SessionStore(session_key=key).load())

            # 5. memcached restarts, empty: sessions no longer depend on it.
            memcached.terminate()
            memcached.wait(timeout=10)
            memcached = start_memcached(ports["memcached"])
            counts["found after a memcached restart"] = loadable(staying)
            caches["default"].close()
            keyway.stop()
    finally:
        memcached.terminate()
        memcached.wait(timeout=10)
    counts["lost"] = len(staying) - counts["found after a memcached restart"]
    print("\nHorizon migration story:", counts)
    assert counts["found in memcached"] == SESSIONS
    assert counts["returning users found after the switch"] == len(returning)
    assert counts["found after keyway migrate"] == SESSIONS - LOGOUTS
    assert counts["found on the final route"] == len(staying)
    assert counts["logged-out sessions back"] == 0
    assert counts["lost"] == 0
