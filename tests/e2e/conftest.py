"""End-to-end harness: one Keyway process, started from the built binary on
free loopback ports, and Django configured with one cache alias per client
library pointing at it.

The config routes Django session keys to their own memory store and the rest
to another, so every test also crosses the router. Aliases with a KEY_PREFIX
go to real backends behind Keyway, over both protocols (and the unix_ aliases
reach the memory store through Keyway's Unix sockets): "pool" to two
memcached servers, "rds" to a redis-server, "sqlite" to a SQLite file, "pg" to PostgreSQL and "maria"
to MariaDB (those two started here by tests/servers/*.sh unless
KEYWAY_TEST_POSTGRES_URL / KEYWAY_TEST_MYSQL_URL name running ones). Their
routes are unprotected so that cache.clear() empties them between tests.
"""

import os
import subprocess
import tempfile
import time
from pathlib import Path

import django
from django.conf import settings

import net
from net import free_port

ROOT = Path(__file__).resolve().parents[2]
KEYWAY_BIN = Path(os.environ.get("KEYWAY_BIN", ROOT / "target" / "debug" / "keyway"))

CONFIG = """
[listen]
memcache = "127.0.0.1:{memcache}"
resp = "127.0.0.1:{resp}"
admin = "127.0.0.1:{admin}"
memcache_socket = "{workdir}/memcache.sock"
resp_socket = "{workdir}/resp.sock"
socket_mode = "0600"

[backends.sessions]
url = "memory://"
capacity = "32MiB"

[backends.cache]
url = "memory://"
capacity = "64MiB"

[backends.pool]
url = "memcached://127.0.0.1:{pool_a},127.0.0.1:{pool_b}"

[backends.redis]
url = "redis://127.0.0.1:{redis}"

[backends.sqlite]
url = "sqlite://{workdir}/items.sqlite3"

[backends.postgres]
url = "{postgres}"
table = "keyway_e2e"

[backends.mariadb]
url = "{mariadb}"
table = "keyway_e2e"

[[routes]]
prefix = "pool:"
backend = "pool"

[[routes]]
prefix = "rds:"
backend = "redis"

[[routes]]
prefix = "sqlite:"
backend = "sqlite"
protected = false

[[routes]]
prefix = "pg:"
backend = "postgres"
protected = false

[[routes]]
prefix = "maria:"
backend = "mariadb"
protected = false

[[routes]]
prefix = ":1:django.contrib.sessions."
backend = "sessions"

[[routes]]
glob = "*"
backend = "cache"
"""

_process = None
_pool = []
_workdir = tempfile.TemporaryDirectory(prefix="keyway-e2e-")


def wait_for(port, timeout=10.0):
    net.wait_for(port, timeout, hint=f"; if it is Keyway's, see {_workdir.name}/keyway.log")


def wait_until(what, ready, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready")
        time.sleep(0.1)


def run_keyway(directory, config, *ports):
    """A Keyway of a test's own: `config` written to directory/keyway.toml,
    its log to directory/keyway.log; returns once every one of `ports`
    accepts. The caller terminates it."""
    path = directory / "keyway.toml"
    path.write_text(config)
    log = open(directory / "keyway.log", "w")
    process = subprocess.Popen([str(KEYWAY_BIN), "--config", str(path)], stdout=log, stderr=log)
    for port in ports:
        wait_for(port)
    return process


# The PostgreSQL and MariaDB URLs the suite's Keyway uses (set at start).
SQL_URLS = {}


def start_sql_server(script, ready_command, url):
    """Runs tests/servers/<script> on a free port; it stops the server when
    this process exits."""
    port = free_port()
    subprocess.run([str(ROOT / "tests" / "servers" / script), str(port), str(os.getpid())], check=True,
                   stdout=subprocess.DEVNULL)
    command = [part.format(port=port) for part in ready_command]
    wait_until(script, lambda: subprocess.run(command, capture_output=True).returncode == 0)
    return url.format(port=port)


def sql_urls():
    postgres = os.environ.get("KEYWAY_TEST_POSTGRES_URL") or start_sql_server(
        "postgres.sh", ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "{port}"],
        "postgres://postgres@127.0.0.1:{port}/postgres")
    mariadb = os.environ.get("KEYWAY_TEST_MYSQL_URL") or start_sql_server(
        "mariadb.sh", ["mariadb", "-h", "127.0.0.1", "-P", "{port}", "-u", "root", "-e", "USE keyway"],
        "mysql://root@127.0.0.1:{port}/keyway")
    return {"postgres": postgres, "mariadb": mariadb}


def start_keyway():
    global _process
    if not KEYWAY_BIN.exists():
        raise RuntimeError(f"{KEYWAY_BIN} is missing: run `cargo build` first (or set KEYWAY_BIN)")
    ports = {"memcache": free_port(), "resp": free_port(), "admin": free_port(), "pool_a": free_port(),
             "pool_b": free_port(), "redis": free_port()}
    for name in ("pool_a", "pool_b"):
        _pool.append(
            subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(ports[name]), "-U", "0", "-u", "nobody"])
        )
        wait_for(ports[name])
    _pool.append(
        subprocess.Popen(["redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"], stdout=subprocess.DEVNULL)
    )
    wait_for(ports["redis"])
    config = Path(_workdir.name) / "keyway.toml"
    SQL_URLS.update(sql_urls())
    config.write_text(CONFIG.format(workdir=_workdir.name, **ports, **SQL_URLS))
    log = open(Path(_workdir.name) / "keyway.log", "w")
    _process = subprocess.Popen([str(KEYWAY_BIN), "--config", str(config)], stderr=log, stdout=log)
    wait_for(ports["memcache"])
    wait_for(ports["resp"])
    for name in ("memcache", "resp"):
        ports[f"{name}_socket"] = str(Path(_workdir.name) / f"{name}.sock")
        wait_until(f"Keyway's {name} socket", lambda: Path(ports[f"{name}_socket"]).exists(), timeout=10)
    return ports


def caches_for(ports):
    memcache = f"127.0.0.1:{ports['memcache']}"
    redis_url = f"redis://127.0.0.1:{ports['resp']}"
    return {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "pymemcache": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": memcache},
        "pylibmc": {"BACKEND": "django.core.cache.backends.memcached.PyLibMCCache", "LOCATION": memcache},
        # pylibmc over memcached's binary protocol, on memory and on the pool.
        **{
            alias: {
                "BACKEND": "django.core.cache.backends.memcached.PyLibMCCache",
                "LOCATION": memcache,
                "OPTIONS": {"binary": True},
                "KEY_PREFIX": prefix,
            }
            for alias, prefix in (("binary_pylibmc", ""), ("pool_binary_pylibmc", "pool"))
        },
        # redis-py 8 negotiates RESP3 (HELLO 3) by default.
        "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url},
        "redis_resp2": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "OPTIONS": {"protocol": 2},
        },
        # db 0: FLUSHDB (clear) on db 1..15 is refused while a memcached pool
        # is routed on this listener (memcached has no databases).
        "django_redis": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url + "/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        },
        # django-redis's other serializers and compressors (session values
        # Keyway reads: test_session_objects).
        **{
            f"django_redis_{name}": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_url + "/0",
                "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", **options},
            }
            for name, options in (
                ("json", {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"}),
                ("msgpack_lzma", {"SERIALIZER": "django_redis.serializers.msgpack.MSGPackSerializer",
                                  "COMPRESSOR": "django_redis.compressors.lzma.LzmaCompressor"}),
                ("zstd", {"COMPRESSOR": "django_redis.compressors.zstd.ZStdCompressor"}),
                ("zlib", {"COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor"}),
            )
        },
        # Every client library through Keyway's Unix sockets, each written
        # the way its documentation writes a socket LOCATION.
        "unix_pymemcache": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": f"unix:{ports['memcache_socket']}",
        },
        "unix_pylibmc": {
            "BACKEND": "django.core.cache.backends.memcached.PyLibMCCache",
            "LOCATION": ports["memcache_socket"],
        },
        "unix_redis": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"unix://{ports['resp_socket']}",
        },
        "unix_django_redis": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"unix://{ports['resp_socket']}?db=0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        },
        # Every client library again, through Keyway to each real backend
        # (KEY_PREFIX picks the route).
        **{
            f"{prefix}_{client}": {
                "BACKEND": backend,
                "LOCATION": location,
                "KEY_PREFIX": prefix,
            }
            for prefix in ("pool", "rds", "sqlite", "pg", "maria")
            for client, backend, location in (
                ("pymemcache", "django.core.cache.backends.memcached.PyMemcacheCache", memcache),
                ("pylibmc", "django.core.cache.backends.memcached.PyLibMCCache", memcache),
                ("redis", "django.core.cache.backends.redis.RedisCache", redis_url),
                ("django_redis", "django_redis.cache.RedisCache", redis_url + "/0"),
            )
        },
    }


def pytest_configure(config):
    ports = start_keyway()
    config.keyway_ports = ports
    settings.configure(
        DEBUG=False,
        SECRET_KEY="keyway-e2e",
        INSTALLED_APPS=["django.contrib.sessions"],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(Path(_workdir.name) / "db.sqlite3")}
        },
        CACHES=caches_for(ports),
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def pytest_unconfigure(config):
    for server in _pool:
        server.terminate()
    if _process is not None:
        _process.terminate()
        try:
            code = _process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _process.kill()
            raise
        # SIGTERM must drain and exit cleanly.
        assert code == 0, f"keyway exited with {code} on SIGTERM"
