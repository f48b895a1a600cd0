"""Two Horizon hosts, each with its own Keyway sidecar (a memory cache in
front of one shared PostgreSQL, write-through, as
deploy/config/sessions-write-through-postgres.toml), and Django's cache
session engine on each host through PyMemcacheCache, as Horizon runs it.

A logout through one host must be a logout through the other: the other
host must not serve the ended session from its cache (and so must not save
it back, as Horizon does on every request). A change made through one host
(a project switch) must be what the other host loads. Both within
max_staleness_ms (100 ms).
"""

import subprocess
import time
import uuid

from django.test import override_settings

from conftest import KEYWAY_BIN, SQL_URLS, free_port, wait_for

BOUND = 0.1  # seconds: max_staleness_ms

CONFIG = """
[listen]
memcache = "127.0.0.1:{port}"

[backends.sessions-db]
url = "{postgres}"
table = "{table}"

[backends.sessions-hot]
url = "memory://"
capacity = "16MiB"
request_timeout_ms = 200

[backends.cache]
url = "memory://"

[policies.sessions]
kind = "write-through"
cache = "sessions-hot"
durable = "sessions-db"

[[routes]]
glob = "*django.contrib.sessions.*"
policy = "sessions"

[[routes]]
glob = "*"
backend = "cache"
"""


def start_hosts(tmp_path, count):
    table = "coherence_e2e_" + uuid.uuid4().hex[:8]
    hosts = []
    for i in range(count):
        port = free_port()
        config = tmp_path / f"host{i}.toml"
        config.write_text(CONFIG.format(port=port, postgres=SQL_URLS["postgres"], table=table))
        log = open(tmp_path / f"host{i}.log", "w")
        process = subprocess.Popen([str(KEYWAY_BIN), "--config", str(config)], stdout=log, stderr=log)
        wait_for(port)
        hosts.append((process, port))
    return hosts


def caches(hosts):
    return {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        **{
            f"host{i}": {
                "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                "LOCATION": f"127.0.0.1:{port}",
            }
            for i, (_, port) in enumerate(hosts)
        },
    }


def store(host, key=None):
    """A session store on `host` (Django's cache engine, as Horizon uses it)."""
    with override_settings(SESSION_CACHE_ALIAS=host):
        from django.contrib.sessions.backends.cache import SessionStore

        return SessionStore(session_key=key)


def test_a_logout_or_a_project_switch_on_one_host_holds_on_every_host(tmp_path):
    hosts = start_hosts(tmp_path, 2)
    try:
        with override_settings(CACHES=caches(hosts), SESSION_ENGINE="django.contrib.sessions.backends.cache"):
            keys = []
            for user in range(20):
                session = store("host0")
                session["user"] = f"user{user}"
                session["project"] = "admin"
                session.save()
                keys.append(session.session_key)
            # Both hosts serve (and cache) every session.
            for key in keys:
                for host in ("host0", "host1"):
                    assert store(host, key).load()["project"] == "admin"

            # A project switch through host 1 is what host 0 loads.
            for key in keys[:10]:
                session = store("host1", key)
                session.load()
                session["project"] = "demo"
                session.save()
            time.sleep(BOUND)
            for key in keys[:10]:
                assert store("host0", key).load()["project"] == "demo"

            # Logouts through host 0; host 1 must not serve them again, so
            # Horizon on host 1 cannot save them back either.
            for key in keys[10:]:
                store("host0", key).delete()
            time.sleep(BOUND)
            for key in keys[10:]:
                session = store("host1", key)
                assert session.load() == {}, "host 1 served a session logged out through host 0"
                assert not session.exists(key)
            for key in keys[10:]:
                assert store("host0", key).load() == {}
            # The sessions still signed in are untouched.
            for key in keys[:10]:
                assert store("host1", key).load()["user"].startswith("user")
            for alias in ("host0", "host1"):
                from django.core.cache import caches as django_caches

                django_caches[alias].close()
    finally:
        for process, _ in hosts:
            process.terminate()
            assert process.wait(timeout=15) == 0
