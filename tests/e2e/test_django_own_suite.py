"""Django's own test suites, run against Keyway: the cache tests for every
memcached and redis backend class, and the session tests with the default
cache going through Keyway over each protocol.

Django ships its tests in the sdist; it is downloaded from PyPI once, matching
the installed Django version, and kept under target/.
"""

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import django
import pytest

from conftest import KEYWAY_BIN, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def django_tests():
    version = django.get_version()
    source = ROOT / "target" / f"django-{version}"
    if not (source / "tests" / "runtests.py").exists():
        download = ROOT / "target" / "django-sdist"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             f"django=={version}", "-d", str(download)],
            check=True,
        )
        with tarfile.open(download / f"django-{version}.tar.gz") as archive:
            archive.extractall(ROOT / "target", filter="data")
    return source / "tests"


def run_django_tests(tests_dir, tmp_path, label, caches, extra_args=()):
    settings = tmp_path / "keyway_django_settings.py"
    settings.write_text(
        "SECRET_KEY = 'keyway'\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3'},"
        " 'other': {'ENGINE': 'django.db.backends.sqlite3'}}\n"
        f"CACHES = {caches!r}\n"
        "USE_TZ = False\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "runtests.py", label, "--settings=keyway_django_settings", "--parallel", "1", *extra_args],
        cwd=tests_dir, env=env, capture_output=True, text=True, timeout=900,
    )
    summary = result.stderr.strip().splitlines()[-3:]
    assert result.returncode == 0, result.stderr[-5000:]
    return summary


def test_django_cache_suite(django_tests, tmp_path, request):
    ports = request.config.keyway_ports
    memcache = f"127.0.0.1:{ports['memcache']}"
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "pymemcache": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": memcache},
        "pylibmc": {"BACKEND": "django.core.cache.backends.memcached.PyLibMCCache", "LOCATION": memcache},
        "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                  "LOCATION": f"redis://127.0.0.1:{ports['resp']}"},  # its pool test sets db itself
    }
    summary = run_django_tests(
        django_tests, tmp_path, "cache", caches,
        ["-k", "PyMemcacheCacheTests", "-k", "PyLibMCCacheTests", "-k", "RedisCacheTests"],
    )
    print("\n".join(summary))


@pytest.mark.parametrize("protocol", ["memcache", "resp"])
def test_django_session_suite(django_tests, tmp_path, request, protocol):
    ports = request.config.keyway_ports
    if protocol == "memcache":
        default = {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                   "LOCATION": f"127.0.0.1:{ports['memcache']}"}
    else:
        default = {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                   "LOCATION": f"redis://127.0.0.1:{ports['resp']}/4"}
    summary = run_django_tests(django_tests, tmp_path, "sessions_tests", {"default": default})
    print("\n".join(summary))


def redis_cache_suite_through(django_tests, tmp_path, backend_toml, servers, prepare=None):
    """Django's RedisCache tests against a Keyway whose every key goes to
    `backend_toml`'s backend; `servers` are started first (then `prepare`
    runs, if given) and stopped after."""
    resp_port = free_port()
    config = tmp_path / "keyway.toml"
    config.write_text(f"""
[listen]
resp = "127.0.0.1:{resp_port}"

{backend_toml}

[[routes]]
glob = "*"
backend = "store"
""")
    log = open(tmp_path / "keyway.log", "w")
    processes = [subprocess.Popen(args, stdout=subprocess.DEVNULL) for args, _ in servers]
    keyway = subprocess.Popen([str(KEYWAY_BIN), "--config", str(config)], stdout=log, stderr=log)
    try:
        for port in [port for _, port in servers] + [resp_port]:
            wait_for(port)
        if prepare:
            prepare()
        caches = {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                      "LOCATION": f"redis://127.0.0.1:{resp_port}"},
        }
        summary = run_django_tests(django_tests, tmp_path, "cache", caches, ["-k", "RedisCacheTests"])
        print("\n".join(summary))
    finally:
        for process in [keyway, *reversed(processes)]:
            process.terminate()
            process.wait(timeout=15)


def test_django_redis_cache_suite_through_a_memcached_route(django_tests, tmp_path):
    """Every key on a real memcached behind Keyway's RESP listener: keys too
    long for memcached (Django's key length tests) go in digest form."""
    port = free_port()
    memcached = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody", "-m", "64"]
    backend = f'[backends.store]\nurl = "memcached://127.0.0.1:{port}"'
    redis_cache_suite_through(django_tests, tmp_path, backend, [(memcached, port)])


def test_django_redis_cache_suite_through_a_redis_sentinel_backend(django_tests, tmp_path):
    """Every key on the redis a real Redis Sentinel names (redis-sentinel://)."""
    redis_port, sentinel_port = free_port(), free_port()
    server = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--dir", str(tmp_path)]
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor main 127.0.0.1 {redis_port} 1\n")
    sentinel = ["redis-sentinel", str(conf)]
    backend = f'[backends.store]\nurl = "redis-sentinel://127.0.0.1:{sentinel_port}/main"'
    redis_cache_suite_through(django_tests, tmp_path, backend, [(server, redis_port), (sentinel, sentinel_port)])


def test_django_redis_cache_suite_through_a_redis_cluster_backend(django_tests, tmp_path):
    """Every key on a real three-primary Redis Cluster (redis-cluster://):
    get_many/set_many/delete_many over keys in many hash slots."""
    ports = [free_port() for _ in range(3)]
    servers = []
    for port in ports:
        directory = tmp_path / str(port)
        directory.mkdir()
        servers.append((["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--dir", str(directory), "--cluster-enabled", "yes",
                         "--cluster-config-file", "nodes.conf",
                         # Not port + 10000, which may be past 65535.
                         "--cluster-port", str(free_port())], port))

    def create_cluster():
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-yes"], check=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not all("cluster_state:ok" in subprocess.run(
                ["redis-cli", "-p", str(p), "cluster", "info"], capture_output=True, text=True).stdout
                for p in ports):
            assert time.monotonic() < deadline, "the cluster did not settle"
            time.sleep(0.1)

    seeds = ",".join(f"127.0.0.1:{p}" for p in ports)
    backend = f'[backends.store]\nurl = "redis-cluster://{seeds}"'
    redis_cache_suite_through(django_tests, tmp_path, backend, servers, prepare=create_cluster)
