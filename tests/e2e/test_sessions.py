"""Django's cache and cached_db session engines through every client library."""

import time
from importlib import import_module

import pytest
from django.core.cache import caches
from django.test import override_settings

from test_django_cache import ALIASES, TTL_ALIASES

ENGINES = ["django.contrib.sessions.backends.cache", "django.contrib.sessions.backends.cached_db"]


def _param_id(param):
    engine, alias = param
    return f"{engine.rsplit('.', 1)[1]}-{alias}"


def _session_store(request):
    engine, alias = request.param
    caches[alias].clear()
    with override_settings(SESSION_ENGINE=engine, SESSION_CACHE_ALIAS=alias):
        yield import_module(engine).SessionStore


@pytest.fixture(params=[(engine, alias) for engine in ENGINES for alias in ALIASES], ids=_param_id)
def store_class(request):
    yield from _session_store(request)


# Expiry waits two seconds: the aliases test_django_cache waits on (TTL_ALIASES).
@pytest.fixture(params=[(engine, alias) for engine in ENGINES for alias in TTL_ALIASES], ids=_param_id)
def ttl_store_class(request):
    yield from _session_store(request)


def test_save_load_exists_delete(store_class):
    session = store_class()
    session["user"] = "alice"
    session["roles"] = ["admin", "member"]
    session.save()
    key = session.session_key
    assert len(key) == 32
    assert store_class().exists(key)
    loaded = store_class(session_key=key)
    assert loaded["user"] == "alice"
    assert loaded["roles"] == ["admin", "member"]
    loaded["user"] = "bob"
    loaded.save()
    assert store_class(session_key=key)["user"] == "bob"
    loaded.delete()
    assert not store_class().exists(key)
    assert store_class(session_key=key).load() == {}


def test_create_makes_distinct_keys(store_class):
    keys = set()
    for _ in range(20):
        session = store_class()
        session.create()
        keys.add(session.session_key)
    assert len(keys) == 20
    assert all(store_class().exists(k) for k in keys)


def test_cycle_key_keeps_data(store_class):
    session = store_class()
    session["cart"] = [1, 2, 3]
    session.save()
    old = session.session_key
    session.cycle_key()
    assert session.session_key != old
    assert not store_class().exists(old)
    assert store_class(session_key=session.session_key)["cart"] == [1, 2, 3]


def test_expiry(ttl_store_class):
    store_class = ttl_store_class
    session = store_class()
    session["x"] = 1
    session.set_expiry(1)
    session.save()
    key = session.session_key
    assert store_class(session_key=key)["x"] == 1
    time.sleep(2.1)
    assert store_class(session_key=key).load() == {}


def test_save_with_must_create_refuses_an_existing_key(store_class):
    from django.contrib.sessions.backends.base import CreateError

    session = store_class()
    session["a"] = 1
    session.save()
    clash = store_class(session_key=session.session_key)
    clash._session_cache = {"b": 2}
    with pytest.raises(CreateError):
        clash.save(must_create=True)
