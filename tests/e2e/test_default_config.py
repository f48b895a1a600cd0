"""The embedded default, as a user runs it: `keyway --data-dir DIR` with no
config. Django sessions (cache engine) go to SQLite and survive a restart of
Keyway and a cache.clear(); other keys live in memory and do not."""

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from django.core.cache import caches
from django.test import override_settings

from conftest import KEYWAY_BIN, free_port, wait_for


def start(data_dir, memcache, resp):
    log = open(Path(data_dir).parent / "keyway-default.log", "a")
    process = subprocess.Popen(
        [str(KEYWAY_BIN), "--data-dir", str(data_dir),
         "--memcache-listen", f"127.0.0.1:{memcache}", "--resp-listen", f"127.0.0.1:{resp}",
         "--admin-listen", "127.0.0.1:0"],
        stdout=log, stderr=log,
    )
    wait_for(memcache)
    wait_for(resp)
    return process


def stop(process):
    process.terminate()
    assert process.wait(timeout=15) == 0


@pytest.mark.parametrize("client", ["pymemcache", "redis"])
def test_sessions_survive_a_restart_with_the_default_config(tmp_path, client):
    memcache, resp = free_port(), free_port()
    data_dir = tmp_path / "keyway-data"
    location = {
        "pymemcache": ("django.core.cache.backends.memcached.PyMemcacheCache", f"127.0.0.1:{memcache}"),
        "redis": ("django.core.cache.backends.redis.RedisCache", f"redis://127.0.0.1:{resp}"),
    }[client]
    settings = dict(
        CACHES={"default": {"BACKEND": location[0], "LOCATION": location[1]}},
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        SESSION_CACHE_ALIAS="default",
    )
    process = start(data_dir, memcache, resp)
    try:
        with override_settings(**settings):
            from django.contrib.sessions.backends.cache import SessionStore

            session = SessionStore()
            session["user"] = "alice"
            session.set_expiry(3600)
            session.save()
            key = session.session_key
            caches["default"].set("page", "rendered")
            caches["default"].clear()  # Django's clear(): the session route is protected
            assert SessionStore(session_key=key).load() == {"user": "alice", "_session_expiry": 3600}
            caches["default"].set("page", "rendered")
            caches["default"].close()
    finally:
        stop(process)
    # The session is a row in the SQLite file, expiring in about an hour
    # (absolute time, so the restart does not extend it).
    # Each listener keeps its own keyspace: memcached clients' sessions in
    # keyway_items, RESP clients' in keyway_resp_items, in one file.
    table, other = {"pymemcache": ("keyway_items", "keyway_resp_items"),
                    "redis": ("keyway_resp_items", "keyway_items")}[client]
    with sqlite3.connect(data_dir / "sessions.sqlite3") as db:
        rows = db.execute(f"SELECT cache_key, expires_ms FROM {table}").fetchall()
        # The other listener's table is made on its first use: absent or empty.
        exists = db.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", (other,)).fetchone()
        assert exists == (0,) or db.execute(f"SELECT count(*) FROM {other}").fetchone() == (0,)
    assert [k.decode() for k, _ in rows] == [f":1:django.contrib.sessions.cache{key}"]
    remaining = rows[0][1] / 1000 - time.time()
    assert 3500 < remaining <= 3600, remaining

    process = start(data_dir, memcache, resp)
    try:
        with override_settings(**settings):
            from django.contrib.sessions.backends.cache import SessionStore

            restored = SessionStore(session_key=key)
            assert restored.load() == {"user": "alice", "_session_expiry": 3600}
            assert caches["default"].get("page") is None  # memory: gone with the restart
            caches["default"].close()
    finally:
        stop(process)


def test_the_default_keeps_each_client_librarys_values_to_its_listener(tmp_path):
    """The Horizon failure this default prevents: a session PyMemcacheCache
    pickled (under memcached flags) read back by Django's RedisCache. Both
    libraries, configured as deployments configure them, on one Keyway."""
    memcache, resp = free_port(), free_port()
    process = start(tmp_path / "keyway-data", memcache, resp)
    caches_setting = {
        "memcached": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                      "LOCATION": f"127.0.0.1:{memcache}"},
        "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                  "LOCATION": f"redis://127.0.0.1:{resp}"},
    }
    try:
        with override_settings(CACHES=caches_setting, SESSION_ENGINE="django.contrib.sessions.backends.cache"):
            from django.contrib.sessions.backends.cache import SessionStore

            with override_settings(SESSION_CACHE_ALIAS="memcached"):
                session = SessionStore()
                session["token"] = "keystone"
                session.save()
                key = session.session_key
            caches["memcached"].set("page", {"rendered": True})
            with override_settings(SESSION_CACHE_ALIAS="redis"):
                # Unknown here, not an unpickling error: the user logs in again.
                assert SessionStore(session_key=key).load() == {}
            assert caches["redis"].get("page") is None
            caches["redis"].set("page", "from redis")
            assert caches["memcached"].get("page") == {"rendered": True}
            with override_settings(SESSION_CACHE_ALIAS="memcached"):
                assert SessionStore(session_key=key).load() == {"token": "keystone"}
            for alias in ("memcached", "redis"):
                caches[alias].close()
    finally:
        stop(process)


def test_django_redis_collections_on_the_default_config(tmp_path):
    """django-redis's own API for redis's types (sets, hashes, sorted sets)
    on the embedded default's memory route, as an application calls it."""
    memcache, resp = free_port(), free_port()
    process = start(tmp_path / "keyway-data", memcache, resp)
    caches_setting = {"default": {"BACKEND": "django_redis.cache.RedisCache",
                                  "LOCATION": f"redis://127.0.0.1:{resp}/0"}}
    try:
        with override_settings(CACHES=caches_setting):
            cache = caches["default"]
            assert cache.sadd("team", "alice", "bob", "carol") == 3
            assert cache.sadd("admins", "alice") == 1
            assert cache.smembers("team") == {"alice", "bob", "carol"}
            assert cache.sinter("team", "admins") == {"alice"}
            assert cache.sismember("team", "bob")
            assert cache.smove("team", "admins", "bob")
            assert cache.scard("admins") == 2
            assert cache.srem("team", "carol") == 1
            assert cache.hset("profile", "name", "alice") == 1
            assert cache.hset("profile", "tz", "UTC") == 1
            assert cache.hlen("profile") == 2
            assert sorted(cache.hkeys("profile")) == ["name", "tz"]
            assert cache.hexists("profile", "tz")
            assert cache.hdel("profile", "tz") == 1
            assert cache.zadd("scores", {"alice": 3, "bob": 1.5}) == 2
            assert cache.zincrby("scores", 2, "bob") == 3.5
            assert cache.zrange("scores", 0, -1) == ["alice", "bob"]
            assert cache.zscore("scores", "alice") == 3.0
            assert cache.zrank("scores", "bob") == 1
            cache.set("plain", "value", timeout=60)
            assert cache.get("plain") == "value"
            assert cache.ttl("team") is None
            assert cache.expire("team", 60)
            assert 0 < cache.ttl("team") <= 60
            cache.delete_many(["team", "admins", "profile", "scores", "plain"])
            assert cache.smembers("team") == set()
            cache.close()
    finally:
        stop(process)
