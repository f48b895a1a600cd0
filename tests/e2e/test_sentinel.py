"""Keyway's sentinel listener as kolla-ansible's Horizon uses a Valkey
behind Sentinel: django-redis 7's SentinelClient with kolla's OPTIONS,
literally (only the addresses differ), redis-py's Sentinel discovering the
master, and the reply shapes compared with a real redis-sentinel."""

import socket
import subprocess
import time

import pytest
import redis
from redis.sentinel import Sentinel
from django.core.cache import caches
from django.test import override_settings

from conftest import free_port, run_keyway, wait_for

PASSWORD = "kolla-redis-pass"


def start_keyway(tmp_path, resp, sentinel, password=None, sentinel_auth=None):
    """Keyway with its sentinel listener naming its RESP listener as master
    "kolla" (and, with `password`, that password required on the RESP
    listener, and on the sentinel listener with sentinel_auth="users")."""
    users = f'[[auth.users]]\nname = "default"\npassword = "{password}"\n' if password else ""
    auth = f'auth = "{sentinel_auth}"' if sentinel_auth else ""
    return run_keyway(tmp_path, f"""
[listen]
resp = "127.0.0.1:{resp}"
sentinel = "127.0.0.1:{sentinel}"

[sentinel]
master_name = "kolla"
{auth}

{users}
[backends.memory]
url = "memory://"

[[routes]]
glob = "*"
backend = "memory"
""", resp, sentinel)


@pytest.fixture(autouse=True)
def fresh_django_redis_pools():
    """django-redis keeps its connection pools process-wide, keyed by the
    LOCATION ("redis://kolla/0" in every test here): each test's Keyway is
    new, so its pools must be too."""
    from django_redis.pool import ConnectionFactory

    ConnectionFactory._pools.clear()
    yield
    ConnectionFactory._pools.clear()


def kolla_caches(sentinel_port, with_sentinel_kwargs):
    """kolla-ansible's Horizon CACHES for Valkey behind Sentinel: the
    template since commit 65fc0f8a0 (2026-04-17) gives the password to the
    master only; the older one also sends it to the sentinels."""
    options = {
        "CLIENT_CLASS": "django_redis.client.SentinelClient",
        "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
        "SENTINELS": [("127.0.0.1", sentinel_port)],
        "PASSWORD": PASSWORD,
        "CONNECTION_POOL_KWARGS": {"retry_on_timeout": True},
    }
    if with_sentinel_kwargs:
        options["SENTINEL_KWARGS"] = {"password": PASSWORD}
    return {"default": {"BACKEND": "django_redis.cache.RedisCache",
                        "LOCATION": "redis://kolla/0", "OPTIONS": options}}


@pytest.mark.parametrize("template", ["current", "older"])
def test_both_kolla_templates_work_against_the_default_sentinel_auth(tmp_path, template):
    """The same Keyway configuration (sentinel.auth left at its default)
    serves kolla's current template (no SENTINEL_KWARGS) and the older one;
    the master still refuses a client without the password."""
    resp, sentinel_port = free_port(), free_port()
    keyway = start_keyway(tmp_path, resp, sentinel_port, PASSWORD)
    try:
        with override_settings(CACHES=kolla_caches(sentinel_port, template == "older")):
            cache = caches["default"]
            cache.set("answer", 42, 60)
            assert cache.get("answer") == 42
            cache.close()
        # No credential: the sentinel answers, the master does not.
        open_sentinel = redis.Redis(port=sentinel_port)
        assert open_sentinel.execute_command(
            "SENTINEL", "get-master-addr-by-name", "kolla") == [b"127.0.0.1", str(resp).encode()]
        with pytest.raises(redis.exceptions.AuthenticationError):
            open_sentinel.execute_command("AUTH", "not-the-password")
        open_sentinel.close()
        stranger = redis.Redis(port=resp)
        with pytest.raises(redis.exceptions.AuthenticationError):
            stranger.get(":1:answer")
        stranger.close()
    finally:
        keyway.terminate()
        keyway.wait(timeout=15)


def test_kolla_valkey_mode_settings_work_against_keyway(tmp_path):
    """The older template against sentinel.auth = "users": the sentinel
    asks for the password too."""
    resp, sentinel_port = free_port(), free_port()
    keyway = start_keyway(tmp_path, resp, sentinel_port, PASSWORD, sentinel_auth="users")
    try:
        kolla = {
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": "redis://kolla/0",
                "OPTIONS": {
                    "CLIENT_CLASS": "django_redis.client.SentinelClient",
                    "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                    "SENTINELS": [("127.0.0.1", sentinel_port)],
                    "SENTINEL_KWARGS": {"password": PASSWORD},
                    "PASSWORD": PASSWORD,
                    "CONNECTION_POOL_KWARGS": {"retry_on_timeout": True},
                },
            }
        }
        with override_settings(CACHES=kolla, SESSION_ENGINE="django.contrib.sessions.backends.cache",
                               SESSION_CACHE_ALIAS="default"):
            cache = caches["default"]
            cache.set("answer", 42, 60)
            assert cache.get("answer") == 42
            assert cache.incr("answer") == 43
            cache.set_many({"a": 1, "b": 2})
            assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
            cache.delete_many(["a", "b"])
            assert cache.get("a") is None
            assert 0 < cache.ttl("answer") <= 60

            from django.contrib.sessions.backends.cache import SessionStore

            session = SessionStore()
            session["token"] = "gAAAA-keystone-token"
            session.save()
            assert SessionStore(session_key=session.session_key).load() == {"token": "gAAAA-keystone-token"}
            cache.close()

        # The value is in Keyway, reached over its RESP listener with the password.
        direct = redis.Redis(port=resp, password=PASSWORD)
        assert direct.exists(":1:answer") == 1
        direct.close()

        # redis-py's Sentinel as such.
        sentinel = Sentinel([("127.0.0.1", sentinel_port)], sentinel_kwargs={"password": PASSWORD},
                            password=PASSWORD, socket_timeout=2)
        assert sentinel.discover_master("kolla") == ("127.0.0.1", resp)
        assert sentinel.discover_slaves("kolla") == []
        master = sentinel.master_for("kolla")
        master.set("via-sentinel", "yes")
        # No replicas: slave_for falls back to the master, as redis-py does.
        assert sentinel.slave_for("kolla").get("via-sentinel") == b"yes"
        try:
            sentinel.discover_master("nope")
            raise AssertionError("an unknown master was found")
        except redis.sentinel.MasterNotFoundError:
            pass
        # Without the sentinel password: refused as redis-sentinel refuses.
        unauthenticated = redis.Redis(port=sentinel_port)
        try:
            unauthenticated.execute_command("SENTINEL", "get-master-addr-by-name", "kolla")
            raise AssertionError("answered without AUTH")
        except redis.exceptions.AuthenticationError:
            pass
        unauthenticated.close()
    finally:
        keyway.terminate()
        keyway.wait(timeout=15)


def exchange(port, request):
    """What comes back for `request` until the server has been quiet for
    0.3 s (redis-sentinel 7.0 keeps the connection open after QUIT)."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(request)
        reply = b""
        conn.settimeout(0.3)
        while True:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                return reply
            if not chunk:
                return reply
            reply += chunk


def shape(reply):
    """The reply with every run-specific value (ports, ids, times, counters) blanked."""
    lines = reply.split(b"\r\n")
    out = []
    for line in lines:
        if line[:1] in (b"$",) or line[:1] == b":":
            out.append(line[:1] + b"#")
        elif line and line[:1] not in b"*%_+-":
            out.append(b"<value>")
        else:
            out.append(line)
    return out


def test_reply_shapes_match_a_real_redis_sentinel(tmp_path):
    redis_port, real_sentinel = free_port(), free_port()
    server = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {real_sentinel}\nbind 127.0.0.1\n"
                    f"sentinel monitor kolla 127.0.0.1 {redis_port} 1\n")
    sentinel = subprocess.Popen(["redis-sentinel", str(conf)], stdout=subprocess.DEVNULL)
    resp, keyway_sentinel = free_port(), free_port()
    keyway = start_keyway(tmp_path, resp, keyway_sentinel)
    try:
        for port in (redis_port, real_sentinel):
            wait_for(port)
        # The sentinel needs a moment to see its master.
        deadline = time.monotonic() + 10
        while b"flags" not in exchange(real_sentinel, b"SENTINEL master kolla\r\n"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for request in [
            b"PING\r\n",
            b"SENTINEL get-master-addr-by-name kolla\r\n",
            b"SENTINEL get-master-addr-by-name nope\r\n",
            b"SENTINEL replicas kolla\r\n",
            b"SENTINEL slaves kolla\r\n",
            b"SENTINEL sentinels kolla\r\n",
            b"SENTINEL master nope\r\n",
            b"SENTINEL replicas nope\r\n",
            b"SENTINEL masters\r\n",
            b"SENTINEL master kolla\r\n",
            b"SENTINEL myid\r\n",
            b"SENTINEL\r\n",
            b"SENTINEL foo\r\n",
            b"ROLE\r\n",
            b"GET x\r\n",
            b"SELECT 0\r\n",
            b"CLIENT SETNAME x\r\nCLIENT GETNAME\r\n",
            b"HELLO 3\r\nSENTINEL get-master-addr-by-name nope\r\nSENTINEL master kolla\r\n",
            b"AUTH x\r\n",
        ]:
            want = exchange(real_sentinel, request)
            got = exchange(keyway_sentinel, request)
            assert shape(got) == shape(want), (request, want, got)
        # The values that matter: Keyway names its own RESP listener.
        assert exchange(keyway_sentinel, b"SENTINEL get-master-addr-by-name kolla\r\n") == \
            f"*2\r\n$9\r\n127.0.0.1\r\n${len(str(resp))}\r\n{resp}\r\n".encode()
    finally:
        for process in (keyway, sentinel, server):
            process.terminate()
            process.wait(timeout=15)
