"""Per-user permissions (`[[auth.users]] permissions`, redis's ACL words)
as Horizon's user meets them: Django's RedisCache and django-redis with the
user in LOCATION run the cache calls and sessions Horizon makes, and what
the permissions take away (scripts, FLUSHALL, CONFIG, DEBUG, MIGRATE,
RESTORE) is refused to redis-py as a redis ACL refuses it."""

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings

from conftest import free_port, run_keyway

PERMISSIONS = "+@all -@dangerous -@scripting"


@pytest.fixture
def keyway(tmp_path):
    resp = free_port()
    process = run_keyway(tmp_path, f"""
[listen]
resp = "127.0.0.1:{resp}"

[[auth.users]]
name = "horizon"
password = "h-pass"
permissions = "{PERMISSIONS}"

[[auth.users]]
name = "operator"
password = "o-pass"

[backends.memory]
url = "memory://"

[[routes]]
glob = "*"
backend = "memory"
""", resp)
    yield resp
    process.terminate()
    process.wait(timeout=15)


@pytest.mark.parametrize("backend", ["django.core.cache.backends.redis.RedisCache",
                                     "django_redis.cache.RedisCache"])
def test_horizons_user_runs_its_cache_and_sessions_and_nothing_dangerous(keyway, backend):
    location = f"redis://horizon:h-pass@127.0.0.1:{keyway}/0"
    with override_settings(CACHES={"default": {"BACKEND": backend, "LOCATION": location}},
                           SESSION_ENGINE="django.contrib.sessions.backends.cache"):
        cache = caches["default"]
        cache.set("answer", 41, 60)
        assert cache.incr("answer") == 42
        cache.set_many({"a": 1, "b": 2})
        assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
        assert cache.touch("a", 30)
        cache.delete_many(["a", "b"])
        assert cache.get("a") is None
        from django.contrib.sessions.backends.cache import SessionStore

        session = SessionStore()
        session["token"] = "gAAAA-keystone-token"
        session.save()
        assert SessionStore(session_key=session.session_key).load() == {"token": "gAAAA-keystone-token"}
        session.delete()
        # Django's clear() is FLUSHDB: @dangerous, so refused as redis would.
        with pytest.raises(redis.exceptions.NoPermissionError):
            cache.clear()
        cache.close()


def test_what_the_permissions_take_away_is_refused_as_redis_refuses_it(keyway):
    horizon = redis.Redis(port=keyway, username="horizon", password="h-pass")
    refused = [("EVAL", "return 1", 0), ("SCRIPT", "LOAD", "return 1"), ("FLUSHALL",),
               ("CONFIG", "SET", "maxmemory", "1"), ("DEBUG", "SLEEP", "0"),
               ("MIGRATE", "127.0.0.1", "1", "k", "0", "1000"), ("RESTORE", "k", "0", "x"),
               ("FUNCTION", "FLUSH")]
    for command in refused:
        with pytest.raises(redis.exceptions.NoPermissionError,
                           match=f"no permissions to run the '{command[0].lower()}"):
            horizon.execute_command(*command)
    assert horizon.set("still", "served")
    # A user without permissions may run everything Keyway serves.
    operator = redis.Redis(port=keyway, username="operator", password="o-pass")
    assert operator.get("still") == b"served"
    assert operator.execute_command("CONFIG", "GET", "maxmemory")
    horizon.close()
    operator.close()
