"""django-redis extras, raw redis-py in both protocols, and crossing protocols."""

import time

import pytest
import redis
from django.core.cache import caches
from pymemcache.client.base import Client as MemcacheClient


@pytest.fixture
def dr():
    cache = caches["django_redis"]
    cache.clear()
    yield cache
    cache.close()


def test_django_redis_ttl_persist_expire(dr):
    dr.set("k", "v", timeout=100)
    assert 98 <= dr.ttl("k") <= 100
    assert 98_000 <= dr.pttl("k") <= 100_000
    assert dr.persist("k") is True
    assert dr.ttl("k") is None
    assert dr.expire("k", 50) is True
    assert 48 <= dr.ttl("k") <= 50
    assert dr.pexpire("k", 20_000) is True
    assert 18 <= dr.ttl("k") <= 20
    assert dr.ttl("missing") == 0
    from datetime import datetime, timedelta, timezone

    assert dr.expire_at("k", datetime.now(timezone.utc) + timedelta(seconds=30)) is True
    assert 28 <= dr.ttl("k") <= 30
    assert dr.pexpire_at("k", datetime.now(timezone.utc) + timedelta(seconds=40)) is True
    assert 38 <= dr.ttl("k") <= 40


def test_django_redis_incr_decr_use_scripts(dr):
    dr.set("n", 5)
    assert dr.incr("n") == 6
    assert dr.incr("n", 10) == 16
    assert dr.decr("n", 6) == 10
    assert dr.get("n") == 10
    with pytest.raises(ValueError):
        dr.incr("missing")
    assert dr.incr("fresh", 3, ignore_key_check=True) == 3


def test_django_redis_keys_iter_keys_delete_pattern(dr):
    for i in range(30):
        dr.set(f"user:{i}", i)
    dr.set("other", 1)
    assert sorted(dr.keys("user:*")) == sorted(f"user:{i}" for i in range(30))
    assert sorted(dr.iter_keys("user:1*")) == sorted(["user:1"] + [f"user:{i}" for i in range(10, 20)])
    assert dr.delete_pattern("user:*") == 30
    assert dr.keys("*") == ["other"]


def test_django_redis_lock(dr):
    lock = dr.lock("resource", timeout=5)
    assert lock.acquire(blocking=False)
    second = dr.lock("resource", timeout=5)
    assert not second.acquire(blocking=False)
    assert lock.extend(5)
    assert lock.reacquire()
    lock.release()
    assert second.acquire(blocking=False)
    second.release()
    with dr.lock("ctx", timeout=2):
        assert dr.has_key("ctx")  # django-redis prefixes the lock key like a cache key
    assert dr.get_many(["x"]) == {}


@pytest.mark.parametrize("protocol", [2, 3])
def test_raw_redis_py(request, protocol):
    port = request.config.keyway_ports["resp"]
    # db 5: redis-py sends SELECT 5 on connect.
    r = redis.Redis(port=port, protocol=protocol, db=5)
    r.delete("a", "c", "p")
    assert r.ping()
    assert r.set("a", "1", ex=10) is True
    assert r.get("a") == b"1"
    assert r.get("nope") is None
    assert r.mget(["a", "nope"]) == [b"1", None]
    assert r.incrby("c", 5) == 5
    pipe = r.pipeline(transaction=True)
    pipe.set("p", "x").incr("c").get("p")
    assert pipe.execute() == [True, 6, b"x"]
    assert sorted(r.keys("*")) == [b"a", b"c", b"p"]
    assert redis.Redis(port=port, protocol=protocol, db=0).get("p") is None
    assert r.client_info()["db"] == 5
    assert r.getex("a", persist=True) == b"1"
    assert r.ttl("a") == -1
    r.close()


def test_values_cross_protocols(request):
    ports = request.config.keyway_ports
    mc = MemcacheClient(("127.0.0.1", ports["memcache"]))
    r = redis.Redis(port=ports["resp"])
    r.set("from-resp", b"\x00binary\r\n")
    assert mc.get("from-resp") == b"\x00binary\r\n"  # flags 0: raw bytes
    mc.set("from-memcache", b"value", expire=100, noreply=False)  # wait: the read is on another connection
    assert r.get("from-memcache") == b"value"
    assert 98 <= r.ttl("from-memcache") <= 100
    mc.close()
    r.close()
