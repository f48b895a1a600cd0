"""pylibmc with `binary: True` (libmemcached's binary protocol), the way
Django's PyLibMCCache passes OPTIONS to it: the same calls give the same
results from a real memcached and from Keyway (its memory route, and a
memcached pool behind it), and SASL PLAIN authenticates against Keyway's
`[[auth.users]]` (the only way pylibmc authenticates).

Django's whole cache suite also runs over the binary protocol: the
`binary_pylibmc` and `pool_binary_pylibmc` aliases of test_django_cache.py.
"""

import subprocess
import time

import pylibmc
import pytest
from django.core.cache.backends.memcached import PyLibMCCache

from conftest import free_port, run_keyway, wait_for


@pytest.fixture(scope="module")
def memcached():
    port = free_port()
    server = subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody"])
    wait_for(port)
    yield port
    server.terminate()
    server.wait(timeout=10)


def binary_client(port, **options):
    behaviors = {"connect_timeout": 1000, "cas": True}
    return pylibmc.Client([f"127.0.0.1:{port}"], binary=True, behaviors=behaviors, **options)


def outcome(call, *args, **kwargs):
    """What a call returned, or the pylibmc error it raised (by name)."""
    try:
        return call(*args, **kwargs)
    except pylibmc.Error as error:
        return type(error).__name__


def session_of_calls(client, prefix):
    """Every call pylibmc makes over the binary protocol, and what each
    returned or raised."""
    k = lambda name: f"{prefix}{name}"  # noqa: E731
    c = client

    def many(keys):
        return sorted((key.removeprefix(prefix), value) for key, value in c.get_multi(keys).items())

    client.flush_all()
    seen = [
        outcome(c.get, k("missing")),
        outcome(c.set, k("a"), "alpha"),
        outcome(c.get, k("a")),
        outcome(c.add, k("a"), "again"),
        outcome(c.add, k("b"), 2),
        outcome(c.replace, k("nope"), 1),
        outcome(c.replace, k("b"), 3),
        outcome(c.get, k("b")),
        outcome(c.append, k("a"), "!"),
        outcome(c.prepend, k("a"), ">"),
        outcome(c.append, k("nope"), "!"),
        outcome(c.get, k("a")),
        outcome(c.incr, k("b"), 5),
        outcome(c.decr, k("b"), 100),
        outcome(c.incr, k("nope"), 1),
        outcome(c.incr, k("a"), 1),
        many([k("a"), k("b"), k("missing")]),
        outcome(c.set_multi, {k("m1"): "one", k("m2"): b"two", k("m3"): 3.5}),
        many([k("m1"), k("m2"), k("m3")]),
        outcome(c.delete_multi, [k("m1"), k("m2"), k("nope")]),
        outcome(c.delete, k("m3")),
        outcome(c.delete, k("m3")),
        outcome(c.touch, k("a"), 100),
        outcome(c.touch, k("nope"), 100),
        outcome(c.set, k("big"), "x" * 200_000),
        len(c.get(k("big"))),
        outcome(c.set, k("data"), {"a": [1, 2, 3]}),
        outcome(c.get, k("data")),
    ]
    value, cas = c.gets(k("a"))
    seen += [value, outcome(c.cas, k("a"), "swapped", cas), outcome(c.cas, k("a"), "stale", cas), c.get(k("a"))]
    c.set(k("short"), "soon gone", time=1)
    time.sleep(2.1)
    seen.append(c.get(k("short")))
    c.flush_all()
    seen.append(c.get(k("a")))
    return seen


def test_pylibmc_binary_gets_memcacheds_answers_from_keyway(memcached, request, tmp_path):
    want = session_of_calls(binary_client(memcached), "")
    assert want[2] == "alpha" and want[-1] is None
    suite_keyway = request.config.keyway_ports["memcache"]
    assert session_of_calls(binary_client(suite_keyway), "binary:") == want
    # Over a memcached pool: Keyway reaches it through its operations.
    port = free_port()
    process = run_keyway(tmp_path, f"""
[listen]
memcache = "127.0.0.1:{port}"
[backends.pool]
url = "memcached://127.0.0.1:{memcached}"
[[routes]]
glob = "*"
backend = "pool"
""", port)
    try:
        assert session_of_calls(binary_client(port), "") == want
        stats = binary_client(port).get_stats()
        assert stats and "curr_connections" in stats[0][1]
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def keyway_with_users(tmp_path_factory):
    port = free_port()
    process = run_keyway(tmp_path_factory.mktemp("sasl"), f"""
[listen]
memcache = "127.0.0.1:{port}"
[backends.memory]
url = "memory://"
[[routes]]
glob = "*"
backend = "memory"
[auth]
memcache = "ascii"
[[auth.users]]
name = "horizon"
password = "s3cret"
""", port)
    yield port
    process.terminate()
    process.wait(timeout=10)


def test_django_pylibmccache_authenticates_by_sasl_with_binary_true(keyway_with_users):
    location = f"127.0.0.1:{keyway_with_users}"
    cache = PyLibMCCache(location, {
        "OPTIONS": {"binary": True, "username": "horizon", "password": "s3cret"},
    })
    cache.set("session", {"user": "demo"}, 30)
    assert cache.get("session") == {"user": "demo"}
    assert cache.add("counter", 1)
    assert cache.incr("counter") == 2
    cache.close()

    wrong = PyLibMCCache(location, {"OPTIONS": {"binary": True, "username": "horizon", "password": "wrong"}})
    with pytest.raises(pylibmc.Error):
        wrong._cache.set("k", "v")
    # Without credentials the binary client is refused, not left waiting.
    started = time.monotonic()
    with pytest.raises(pylibmc.Error):
        binary_client(keyway_with_users).set("k", "v")
    assert time.monotonic() - started < 2
