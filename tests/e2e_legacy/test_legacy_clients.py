"""Django 4.0's cache API and cache session engine through Keyway with the
legacy client stacks, and a python-memcached list LOCATION sharing its pool
with Keyway."""

import time
import uuid

import pytest
from django.core.cache import caches
from django.test import override_settings

ALIASES = ["default", "redis", "keyway_pool"]


def fresh(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("alias", ALIASES)
def test_cache_api(alias):
    cache = caches[alias]
    key = fresh("k")
    assert cache.get(key) is None
    cache.set(key, {"user": "admin", "roles": ["member"]}, 30)
    assert cache.get(key) == {"user": "admin", "roles": ["member"]}
    # django-redis-cache answers an add as redis-py 3 does: None, not False.
    assert not cache.add(key, "other")
    assert cache.add(fresh("a"), "first")
    counter = fresh("n")
    cache.set(counter, 10)
    assert cache.incr(counter, 5) == 15
    assert cache.decr(counter, 3) == 12
    many = {fresh("m"): i for i in range(20)}
    cache.set_many(many)
    assert cache.get_many(list(many) + [fresh("missing")]) == many
    cache.delete_many(list(many)[:10])
    assert cache.get_many(list(many)) == dict(list(many.items())[10:])
    assert cache.has_key(key)
    cache.delete(key)
    assert cache.get(key, "gone") == "gone"
    assert cache.get(key) is None
    short = fresh("t")
    cache.set(short, "soon", 1)
    time.sleep(1.6)
    assert cache.get(short) is None


@pytest.mark.parametrize("alias", ALIASES)
def test_cache_session_engine(alias):
    with override_settings(SESSION_CACHE_ALIAS=alias):
        from django.contrib.sessions.backends.cache import SessionStore

        session = SessionStore()
        session["user"] = "demo"
        session["project"] = "admin"
        session.save()
        key = session.session_key
        loaded = SessionStore(session_key=key)
        assert loaded.load() == {"user": "demo", "project": "admin"}
        loaded["project"] = "demo"
        loaded.save()
        assert SessionStore(session_key=key).load()["project"] == "demo"
        SessionStore(session_key=key).delete()
        assert SessionStore(session_key=key).load() == {}


def test_a_list_location_and_keyway_share_the_pool():
    direct, through = caches["list"], caches["keyway_pool"]
    written = {fresh("session"): f"value {i}" for i in range(1000)}
    direct.set_many(written)
    found = through.get_many(list(written))
    assert found == written, f"{len(found)} of {len(written)} found through Keyway"
    again = {fresh("user"): i for i in range(1000)}
    through.set_many(again)
    found = direct.get_many(list(again))
    assert found == again, f"{len(found)} of {len(again)} found by python-memcached"
    print(f"\npython-memcached 1.59 list LOCATION and Keyway: {len(written)}/{len(written)} and "
          f"{len(again)}/{len(again)} keys seen both ways")
