"""Sessions as objects, through every client library and store: Django's
cache session engine writes sessions through each alias (each library,
each of django-redis's serializers and compressors, each store behind
Keyway); Keyway's admin listener says whose they are, revokes one user's,
and a late save of a revoked session does not bring it back."""

import json
import secrets
import urllib.request
from importlib import import_module

import pytest
from django.core.cache import caches
from django.test import override_settings

from test_django_cache import ALIASES

SERIALIZER_ALIASES = ["django_redis_json", "django_redis_msgpack_lzma", "django_redis_zstd", "django_redis_zlib"]


def admin(config, method, path):
    url = f"http://127.0.0.1:{config.keyway_ports['admin']}{path}"
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as reply:
        return json.loads(reply.read())


@pytest.fixture(params=ALIASES + SERIALIZER_ALIASES)
def store(request):
    alias = request.param
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache", SESSION_CACHE_ALIAS=alias):
        yield alias, import_module("django.contrib.sessions.backends.cache").SessionStore


def signed_in(store_class, user):
    session = store_class()
    session["_auth_user_id"] = user
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["cart"] = [1, 2, 3]
    session.create()
    session.save()
    return session


def test_a_users_sessions_are_found_and_revoked_everywhere(store, pytestconfig):
    alias, store_class = store
    user, other = f"u-{alias}-{secrets.token_hex(4)}", f"o-{alias}-{secrets.token_hex(4)}"
    mine = [signed_in(store_class, user) for _ in range(2)]
    theirs = signed_in(store_class, other)
    anonymous = store_class()
    anonymous["visits"] = 1
    anonymous.save()

    listed = admin(pytestconfig, "GET", f"/sessions?user={user}")
    assert listed["sessions"] == 2, listed
    assert all(session.session_key not in json.dumps(listed) for session in mine)
    # A request of this user still in flight holds its session object.
    in_flight = store_class(session_key=mine[0].session_key)
    assert in_flight["cart"] == [1, 2, 3]

    revoked = admin(pytestconfig, "POST", f"/sessions/revoke?user={user}")
    assert revoked == {"user": user, "revoked": 2, "elapsed_ms": revoked["elapsed_ms"]}
    for session in mine:
        assert not store_class().exists(session.session_key)
        assert store_class(session_key=session.session_key).load() == {}
    # The late save's write reaches Keyway after the revoke: refused, and
    # the session stays ended (Django's own get-then-set check aside).
    cache = caches[alias]
    cache.set(in_flight.cache_key, in_flight._session, 3600)
    assert cache.get(in_flight.cache_key) is None
    assert not store_class().exists(mine[0].session_key)
    # Everyone else is untouched.
    assert store_class(session_key=theirs.session_key)["_auth_user_id"] == other
    assert store_class().exists(anonymous.session_key)
    assert admin(pytestconfig, "GET", f"/sessions?user={other}")["sessions"] == 1


def test_a_logout_is_not_undone_by_a_late_save(store):
    alias, store_class = store
    session = signed_in(store_class, "late-" + secrets.token_hex(4))
    in_flight = store_class(session_key=session.session_key)
    in_flight["cart"]
    session.flush()  # Django's logout()
    caches[alias].set(in_flight.cache_key, in_flight._session, 3600)
    assert not store_class().exists(in_flight.session_key)
    # A new session is unaffected.
    fresh = signed_in(store_class, "late-" + secrets.token_hex(4))
    assert store_class(session_key=fresh.session_key)["cart"] == [1, 2, 3]
