"""The legacy client stacks against one running Keyway: Django 4.0's
MemcachedCache (python-memcached 1.59) and django-redis-cache 3.0.1's
RedisCache, single server, and MemcachedCache with a list LOCATION over
three real memcached servers that Keyway also fronts (`placement =
"python-memcached"`)."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from net import free_port, wait_for  # noqa: E402  (the e2e suite's loopback helpers)

KEYWAY_BIN = Path(os.environ.get("KEYWAY_BIN", ROOT / "target" / "debug" / "keyway"))

_processes = []
_workdir = tempfile.TemporaryDirectory(prefix="keyway-legacy-")


def pytest_configure(config):
    pool = [free_port() for _ in range(3)]
    for port in pool:
        _processes.append(subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0",
                                            "-u", "nobody"]))
        wait_for(port)
    memcache, resp = free_port(), free_port()
    servers = ",".join(f"127.0.0.1:{p}" for p in pool)
    keyway_config = Path(_workdir.name) / "keyway.toml"
    keyway_config.write_text(f"""
[listen]
memcache = "127.0.0.1:{memcache}"
resp = "127.0.0.1:{resp}"

[backends.memory]
url = "memory://"
capacity = "64MiB"

[backends.pool]
url = "memcached://{servers}"
placement = "python-memcached"

[[routes]]
prefix = "pool:"
backend = "pool"

[[routes]]
glob = "*"
backend = "memory"
""")
    log = open(Path(_workdir.name) / "keyway.log", "w")
    _processes.append(subprocess.Popen([str(KEYWAY_BIN), "--config", str(keyway_config)], stdout=log, stderr=log))
    wait_for(memcache)
    wait_for(resp)
    config.keyway = {"memcache": memcache, "resp": resp, "pool": pool}
    settings.configure(
        SECRET_KEY="keyway-legacy",
        INSTALLED_APPS=["django.contrib.sessions"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.memcached.MemcachedCache",
                "LOCATION": f"127.0.0.1:{memcache}",
            },
            "redis": {
                "BACKEND": "redis_cache.RedisCache",
                "LOCATION": f"127.0.0.1:{resp}",
            },
            # The pool, as the library places keys over its list ...
            "list": {
                "BACKEND": "django.core.cache.backends.memcached.MemcachedCache",
                "LOCATION": [f"127.0.0.1:{p}" for p in pool],
                "KEY_PREFIX": "pool",
            },
            # ... and through Keyway.
            "keyway_pool": {
                "BACKEND": "django.core.cache.backends.memcached.MemcachedCache",
                "LOCATION": f"127.0.0.1:{memcache}",
                "KEY_PREFIX": "pool",
            },
        },
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        USE_TZ=True,
    )
    django.setup()


def pytest_unconfigure(config):
    for process in reversed(_processes):
        process.terminate()
        process.wait(timeout=15)
