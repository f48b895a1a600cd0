"""Keyway in front of a memcached pool that a Django client library filled
with a list LOCATION: with the matching `placement`, Keyway finds every key
the library wrote, and the library finds every key written through Keyway.

Three real memcached servers; the libraries themselves place the keys
(pymemcache's HashClient for PyMemcacheCache, libmemcached for
PyLibMCCache), with Django's cache API on both sides.
"""

import subprocess

import pytest
from django.core.cache import caches
from django.test import override_settings

from conftest import KEYWAY_BIN, free_port, wait_for

KEYS = 3000

BACKENDS = {
    "pymemcache": "django.core.cache.backends.memcached.PyMemcacheCache",
    "pylibmc": "django.core.cache.backends.memcached.PyLibMCCache",
}


@pytest.fixture(scope="module")
def pool():
    ports = [free_port() for _ in range(3)]
    servers = [
        subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody"])
        for port in ports
    ]
    for port in ports:
        wait_for(port)
    yield ports
    for server in servers:
        server.terminate()
        server.wait(timeout=10)


def start_keyway(tmp_path, ports, placement, weights=None):
    port = free_port()
    weights = weights or [1] * len(ports)
    servers = ",".join(f"127.0.0.1:{p}:{w}" for p, w in zip(ports, weights))
    config = tmp_path / f"{placement}.toml"
    config.write_text(f"""
[listen]
memcache = "127.0.0.1:{port}"

[backends.pool]
url = "memcached://{servers}"
placement = "{placement}"

[[routes]]
glob = "*"
backend = "pool"
""")
    log = open(tmp_path / f"{placement}.log", "w")
    process = subprocess.Popen([str(KEYWAY_BIN), "--config", str(config)], stdout=log, stderr=log)
    wait_for(port)
    return process, port


def per_server(ports, keys):
    """How many of `keys` (Django's full keys) each server holds."""
    import pymemcache

    counts = []
    for port in ports:
        client = pymemcache.Client(("127.0.0.1", port))
        found = client.get_many(keys)
        counts.append(len(found))
        client.close()
    return counts


# (library, Keyway's placement, the list client's OPTIONS)
PAIRS = [
    ("pymemcache", "pymemcache", {}),
    ("pylibmc", "pylibmc", {}),
    # pylibmc's ketama_weighted behavior is libmemcached's weighted ketama:
    # the same continuum as twemproxy's, Keyway's default.
    ("pylibmc", "ketama", {"behaviors": {"ketama_weighted": True}}),
    ("pylibmc", "pylibmc-ketama", {"behaviors": {"ketama": True}}),
]


@pytest.mark.parametrize("library,placement,options", PAIRS,
                         ids=["pymemcache", "pylibmc", "pylibmc-ketama_weighted", "pylibmc-ketama"])
def test_keyway_and_the_client_library_see_each_others_keys(tmp_path, pool, library, placement, options):
    keyway, port = start_keyway(tmp_path, pool, placement)
    backend = BACKENDS[library]
    settings = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "direct": {"BACKEND": backend, "LOCATION": [f"127.0.0.1:{p}" for p in pool], "OPTIONS": options},
        "keyway": {"BACKEND": backend, "LOCATION": f"127.0.0.1:{port}"},
    }
    try:
        with override_settings(CACHES=settings):
            direct, keyway_cache = caches["direct"], caches["keyway"]
            direct.clear()
            # Written by the library over its list, read through Keyway.
            written = {f"django.contrib.sessions.cache{i:032d}": f"session {i}" for i in range(KEYS)}
            assert direct.set_many(written) == []
            spread = per_server(pool, [f":1:{k}" for k in written])
            assert sum(spread) == KEYS and min(spread) > KEYS / 6, spread
            found = keyway_cache.get_many(list(written))
            through_keyway = sum(1 for k, v in written.items() if found.get(k) == v)

            # Written through Keyway, read by the library over its list.
            direct.clear()
            again = {f"user_pk_{i}_restrict": i for i in range(KEYS)}
            assert keyway_cache.set_many(again) == []
            found = direct.get_many(list(again))
            through_library = sum(1 for k, v in again.items() if found.get(k) == v)
            print(f"\n{library} {options} / placement {placement}: keys per server {spread}; written by {library}, found through Keyway: "
                  f"{through_keyway}/{KEYS}; written through Keyway, found by {library}: {through_library}/{KEYS}")
            assert through_keyway == KEYS
            assert through_library == KEYS
            direct.clear()
            direct.close()
            keyway_cache.close()
    finally:
        keyway.terminate()
        assert keyway.wait(timeout=15) == 0


def test_python_memcached_buckets_with_weights(tmp_path, pool):
    """python-memcached (Django's MemcachedCache before 4.1): its crc32
    buckets, each server repeated by its weight."""
    import memcache

    weights = [1, 2, 1]
    keyway, port = start_keyway(tmp_path, pool, "python-memcached", weights)
    try:
        direct = memcache.Client([(f"127.0.0.1:{p}", w) for p, w in zip(pool, weights)])
        through = memcache.Client([f"127.0.0.1:{port}"])
        direct.flush_all()
        written = {f":1:django.contrib.sessions.cache{i:032d}": f"session {i}" for i in range(KEYS)}
        assert direct.set_multi(written) == []
        spread = per_server(pool, list(written))
        found = through.get_multi(list(written))
        through_keyway = sum(1 for k, v in written.items() if found.get(k) == v)
        direct.flush_all()
        again = {f"user_pk_{i}_restrict": f"v{i}" for i in range(KEYS)}
        assert through.set_multi(again) == []
        found = direct.get_multi(list(again))
        through_library = sum(1 for k, v in again.items() if found.get(k) == v)
        print(f"\npython-memcached (weights {weights}): keys per server {spread}; found through Keyway "
              f"{through_keyway}/{KEYS}; written through Keyway, found by python-memcached {through_library}/{KEYS}")
        # The weight-2 server holds about half.
        assert spread[1] > KEYS * 0.4, spread
        assert through_keyway == KEYS
        assert through_library == KEYS
        direct.flush_all()
    finally:
        keyway.terminate()
        assert keyway.wait(timeout=15) == 0


SESSIONS = 300
LOGOUTS = 20

STORY = """
[listen]
memcache = "127.0.0.1:{port}"
[runtime]
data_dir = "{data}"
[backends.old]
url = "memcached://{servers}"
placement = "{placement}"
[backends.hot]
url = "memory://"
capacity = "16MiB"
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
[[routes]]
glob = "*django.contrib.sessions.*"
policy = "{route}"
[[routes]]
glob = "*"
backend = "old"
"""


@pytest.mark.parametrize("library", ["pymemcache", "pylibmc"])
def test_sessions_move_from_a_pool_the_library_filled_without_a_logout(tmp_path, pool, library):
    """Horizon's migration on the pool Django's own client filled with a list
    LOCATION: sessions written by the library, some users returning through
    the migrate route, some logging out, `keyway migrate` copying the rest,
    then the durable route alone: nobody logged out, no logout undone."""
    backend = BACKENDS[library]
    port = free_port()
    servers = ",".join(f"127.0.0.1:{p}" for p in pool)
    config = tmp_path / "story.toml"

    def keyway(route):
        config.write_text(STORY.format(port=port, data=tmp_path / "data", servers=servers,
                                       placement=library, route=route))
        log = open(tmp_path / "story.log", "a")
        process = subprocess.Popen([str(KEYWAY_BIN), "--config", str(config)], stdout=log, stderr=log)
        wait_for(port)
        return process

    def stop(process):
        caches["keyway"].close()
        if library == "pylibmc":
            # Django's close() leaves libmemcached's connections open (on
            # purpose); without this the first request after the restart
            # fails, as docs/deployments.md says.
            caches["keyway"]._cache.disconnect_all()
        process.terminate()
        assert process.wait(timeout=15) == 0

    settings = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "direct": {"BACKEND": backend, "LOCATION": [f"127.0.0.1:{p}" for p in pool]},
        "keyway": {"BACKEND": backend, "LOCATION": f"127.0.0.1:{port}"},
    }
    with override_settings(CACHES=settings, SESSION_ENGINE="django.contrib.sessions.backends.cache"):
        caches["direct"].clear()

        def store(alias, key=None):
            with override_settings(SESSION_CACHE_ALIAS=alias):
                from django.contrib.sessions.backends.cache import SessionStore

                return SessionStore(session_key=key)

        def loadable(keys):
            return sum(1 for i, k in keys.items() if store("keyway", k).load().get("user") == f"user{i}")

        keys = {}
        for i in range(SESSIONS):
            session = store("direct")
            session["user"] = f"user{i}"
            session.set_expiry(3600)
            session.save()
            keys[i] = session.session_key
        process = keyway("moving")
        counts = {}
        try:
            returning = {i: k for i, k in keys.items() if i % 3 == 0}
            counts["returning users found"] = loadable(returning)
            logged_out = {i: keys[i] for i in range(1, 1 + 3 * LOGOUTS, 3)}
            for key in logged_out.values():
                store("keyway", key).delete()
            result = subprocess.run([str(KEYWAY_BIN), "--config", str(config), "migrate", "--policy", "moving"],
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            counts["keyway migrate"] = result.stdout.strip()
        finally:
            stop(process)
        caches["direct"].clear()  # the old pool is retired (and emptied)
        process = keyway("sessions")
        try:
            staying = {i: k for i, k in keys.items() if i not in logged_out}
            counts["found on the durable route"] = loadable(staying)
            counts["logouts undone"] = sum(1 for k in logged_out.values() if store("keyway", k).load())
        finally:
            stop(process)
    print(f"\n{library} migration story: {counts}")
    assert counts["returning users found"] == len(returning)
    assert f"listed {SESSIONS - LOGOUTS}," in counts["keyway migrate"]
    assert "deleted since listed 0," in counts["keyway migrate"]
    assert counts["found on the durable route"] == SESSIONS - LOGOUTS
    assert counts["logouts undone"] == 0


def test_keyway_migrate_copies_every_key_whatever_the_configured_placement(tmp_path, pool):
    """`keyway migrate` reads each key from the server whose dump listed it,
    so even a pool configured with the wrong placement (ketama here, over a
    pool pymemcache filled) is copied whole, and no copy is undone."""
    port = free_port()
    servers = ",".join(f"127.0.0.1:{p}" for p in pool)
    config = tmp_path / "mismatch.toml"
    config.write_text(f"""
[listen]
memcache = "127.0.0.1:{port}"
[runtime]
data_dir = "{tmp_path / 'data'}"
[backends.old]
url = "memcached://{servers}"
[backends.db]
url = "sqlite://sessions.sqlite3"
[[routes]]
glob = "*django.contrib.sessions.*"
backend = "db"
[[routes]]
glob = "*"
backend = "old"
""")
    settings = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "direct": {"BACKEND": BACKENDS["pymemcache"], "LOCATION": [f"127.0.0.1:{p}" for p in pool]},
        "keyway": {"BACKEND": BACKENDS["pymemcache"], "LOCATION": f"127.0.0.1:{port}"},
    }
    with override_settings(CACHES=settings):
        direct = caches["direct"]
        direct.clear()
        written = {f"django.contrib.sessions.cache{i:032d}": f"session {i}" for i in range(SESSIONS)}
        assert direct.set_many(written) == []
        result = subprocess.run([str(KEYWAY_BIN), "--config", str(config), "migrate", "--from", "old", "--to", "db"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        print(f"\nketama configured over a pymemcache-filled pool: {result.stdout.strip()}")
        assert f"listed {SESSIONS}, copied {SESSIONS}," in result.stdout
        assert "copies undone after a concurrent delete 0" in result.stdout
        log = open(tmp_path / "mismatch.log", "w")
        keyway = subprocess.Popen([str(KEYWAY_BIN), "--config", str(config)], stdout=log, stderr=log)
        wait_for(port)
        try:
            found = caches["keyway"].get_many(list(written))
            assert found == written, f"{len(found)} of {SESSIONS} in the new store"
        finally:
            caches["keyway"].close()
            keyway.terminate()
            assert keyway.wait(timeout=15) == 0
        direct.clear()
        direct.close()
