"""The real Horizon 27 and Keystone 30 through Keyway, as their operators
run them: a person logs in through the dashboard's login form, opens a page
that needs the session (Identity), and logs out by POST; each scenario
asserts what the person sees (logged in or out) and what the store holds.
See conftest.py for the services and KEYWAY_HORIZON_WRONG."""

import json
import re
import subprocess
import time

import pymemcache.client.base
import pytest
import redis
import requests

from conftest import ADMIN_PASSWORD, KEYWAY_BIN, ROOT, Browser, Keyway, free_port, mariadb_sessions, psql, wrong

MEMCACHED = "django.core.cache.backends.memcached.PyMemcacheCache"
# Each client as Horizon's settings would name Keyway.
CLIENTS = {
    "pymemcache": lambda memcache, resp: {"default": {"BACKEND": MEMCACHED, "LOCATION": f"127.0.0.1:{memcache}"}},
    "redis": lambda memcache, resp: {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                                 "LOCATION": f"redis://127.0.0.1:{resp}"}},
    "django-redis": lambda memcache, resp: {"default": {
        "BACKEND": "django_redis.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{resp}/0",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"}}},
}


def held_over_memcache(port, key):
    client = pymemcache.client.base.Client(("127.0.0.1", port), timeout=5)
    try:
        return client.get(key) is not None
    finally:
        client.close()


def held_over_resp(port, key, password=None):
    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5)
    try:
        return client.exists(key) == 1
    finally:
        client.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_the_embedded_default_keeps_people_logged_in_across_a_keyway_restart(workdir, horizons, client):
    """`keyway` with its embedded default (sessions in SQLite, the rest in
    memory). Wrong: every key in memory (deploy/config/all-memory.toml)."""
    memcache, resp = free_port(), free_port()
    listen = ["--memcache-listen", f"127.0.0.1:{memcache}", "--resp-listen", f"127.0.0.1:{resp}",
              "--admin-listen", "127.0.0.1:0", "--data-dir", str(workdir / f"default-{client}")]
    config = wrong(None, (ROOT / "deploy" / "config" / "all-memory.toml").read_text())
    keyway = Keyway(workdir, f"default-{client}", memcache, config=config, args=listen)
    held = {"pymemcache": lambda key: held_over_memcache(memcache, key)}.get(
        client, lambda key: held_over_resp(resp, key))
    try:
        host = horizons(CLIENTS[client](memcache, resp))
        person = Browser(host)
        person.login()
        assert person.logged_in()
        assert held(person.cache_key())
        keyway.restart()
        assert person.logged_in(), "logged out by a restart of Keyway"
        assert held(person.cache_key())
        person.logout()
        assert not person.logged_in()
        assert not held(person.cache_key())
    finally:
        keyway.stop()


@pytest.mark.parametrize("template", ["current", "older"])
def test_kolla_valkey_mode_through_keyways_sentinel_listener(workdir, horizons, template):
    """kolla-ansible's Valkey-mode Horizon settings, only the addresses
    changed, against deploy/config/kolla-valkey-sentinel.toml (only the
    addresses changed): the template as kolla ships it since 2026-04-17
    (commit 65fc0f8a0: the password to the master only) and the older one
    (SENTINEL_KWARGS: the password to the sentinels too), against the same
    configuration. Wrong: the sentinel listener names another master."""
    resp, sentinel = free_port(), free_port()
    password = "kolla-redis-master-password"
    config = (ROOT / "deploy" / "config" / "kolla-valkey-sentinel.toml").read_text()
    config = (config.replace("127.0.0.1:6379", f"127.0.0.1:{resp}")
              .replace("127.0.0.1:26379", f"127.0.0.1:{sentinel}")
              .replace("127.0.0.1:9121", "127.0.0.1:0")
              .replace('"/var/lib/keyway"', repr(str(workdir / "kolla-valkey"))))
    config = wrong(config, config.replace('master_name = "kolla"', 'master_name = "mymaster"'))
    keyway = Keyway(workdir, "kolla-valkey", sentinel, config=config,
                    env={"KEYWAY_REDIS_PASSWORD": password})
    options = {
        "CLIENT_CLASS": "django_redis.client.SentinelClient",
        "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
        "SENTINELS": [("127.0.0.1", sentinel)],
        "PASSWORD": password,
        "CONNECTION_POOL_KWARGS": {"retry_on_timeout": True},
    }
    if template == "older":
        options["SENTINEL_KWARGS"] = {"password": password}
    try:
        host = horizons({"default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://kolla/0",
            "OPTIONS": options,
        }})
        person = Browser(host)
        person.login()
        assert person.logged_in()
        assert held_over_resp(resp, person.cache_key(), password)
        keyway.restart()
        assert person.logged_in(), "logged out by a restart of Keyway"
        person.logout()
        assert not person.logged_in()
        assert not held_over_resp(resp, person.cache_key(), password)
    finally:
        keyway.stop()


def shipped_write_through(postgres, table, pool, memcache):
    """deploy/config/sessions-write-through-postgres.toml with only the
    addresses changed: this PostgreSQL and table, this memcached pool for
    the rest, the memcached listener on `memcache`, the others on free ports."""
    shipped = (ROOT / "deploy" / "config" / "sessions-write-through-postgres.toml").read_text()
    return (shipped.replace("postgres://keyway:change-me@db.example.org:5432/horizon", postgres)
            .replace('table = "keyway_sessions"', f'table = "{table}"')
            .replace("10.0.0.11:11211,10.0.0.12:11211", pool)
            .replace("127.0.0.1:11211", f"127.0.0.1:{memcache}")
            .replace("127.0.0.1:6379", f"127.0.0.1:{free_port()}")
            .replace("127.0.0.1:9121", f"127.0.0.1:{free_port()}"))


def test_two_hosts_over_one_postgresql_share_a_logout(workdir, horizons, postgres, memcached):
    """Two Horizon hosts behind a load balancer, each with its own Keyway
    running deploy/config/sessions-write-through-postgres.toml (only the
    addresses changed): one PostgreSQL, a memory tier per host following
    its change log. A person logged in on one host is logged in on the
    other; a logout on one is a logout on the other. Wrong: the memory tiers
    do not follow the change log (coherence = "none")."""
    table = f"horizon_sessions_{free_port()}"
    pool = f"{memcached()},{memcached()}"
    hosts = []
    for name in ("a", "b"):
        memcache = free_port()
        config = shipped_write_through(postgres, table, pool, memcache)
        config = wrong(config, config.replace('durable = "sessions-db"',
                                              'durable = "sessions-db"\ncoherence = "none"'))
        keyway = Keyway(workdir, f"host-{name}", memcache, config=config)
        host = horizons({"default": {"BACKEND": MEMCACHED, "LOCATION": f"127.0.0.1:{memcache}"}})
        hosts.append((keyway, host))
    (keyway_a, a), (keyway_b, b) = hosts
    try:
        person = Browser(a)
        person.login()
        assert person.logged_in()
        assert person.on(b).logged_in(), "the other host does not know the session"
        key = person.cache_key()
        stored = f"SELECT count(*) FROM {table} WHERE cache_key = convert_to('{key}', 'UTF8')"
        assert psql(postgres, stored) == "1"
        # Both hosts' memory tiers hold the session now; the logout goes
        # through host a only.
        assert person.logged_in() and person.on(b).logged_in()
        assert person.on(b).logged_in("/settings/")
        # A second window still holding the session cookie.
        window = person.copy()
        person.logout()
        assert psql(postgres, stored) == "0"
        time.sleep(0.3)  # three times max_staleness_ms
        assert not person.on(b).logged_in()
        assert not person.logged_in()
        # User Settings needs only the session (Identity would also ask
        # Keystone, which revoked the token): a host serving the ended
        # session from its memory tier shows it, and saves it back.
        assert not window.on(b).logged_in("/settings/"), "still logged in on the other host"
        assert not window.on(a).logged_in("/settings/")
        assert psql(postgres, stored) == "0", "the ended session was saved back"
    finally:
        keyway_a.stop()
        keyway_b.stop()


def test_an_operator_moves_kollas_memcached_sessions_onto_keyway_without_logging_anyone_out(
        workdir, horizons, memcached, mariadb):
    """kolla-ansible's memcached mode: two Horizon hosts, each with
    PyMemcacheCache over the same list of three memcached (ignore_exc),
    people logged in on either and some logged out. Then, as an operator
    does it, one host at a time: host a moved onto its own Keyway running
    deploy/config/kolla-memcached-pool.toml (only the addresses changed:
    sessions move from the pool to MariaDB behind a memory tier) while host
    b still uses the pool directly, then host b onto its Keyway; `keyway
    migrate`; the pool retired by a reload on both. Nobody is logged out on
    the way, a logout through a moved host holds on the host not yet moved,
    and nobody who logged out is back in. Wrong: Keyway looks for the pool's
    keys with its default placement instead of pymemcache's."""
    pool = [memcached() for _ in range(3)]
    kolla = {"default": {"BACKEND": MEMCACHED, "LOCATION": pool, "OPTIONS": {"ignore_exc": True}}}
    hosts = [horizons(kolla), horizons(kolla)]
    people = [Browser(hosts[i % 2]) for i in range(10)]
    for person in people:
        person.login()
        assert person.logged_in()
    # Two log out; a second window of each keeps the old cookie.
    windows = [person.copy() for person in people[:2]]
    for person in people[:2]:
        person.logout()
    staying = people[2:]

    table = f"horizon_sessions_{free_port()}"
    shipped = (ROOT / "deploy" / "config" / "kolla-memcached-pool.toml").read_text()

    def move(name):
        """The host's Keyway, and the host restarted naming it."""
        memcache = free_port()
        config = (shipped.replace("192.0.2.11:11211,192.0.2.12:11211,192.0.2.13:11211", ",".join(pool))
                  .replace("mysql://keyway:change-me@192.0.2.10:3306/horizon", mariadb)
                  .replace('table = "keyway_sessions"', f'table = "{table}"')
                  .replace("127.0.0.1:11211", f"127.0.0.1:{memcache}")
                  .replace("127.0.0.1:9121", "127.0.0.1:0"))
        config += f'\n[runtime]\ndata_dir = "{workdir / ("kolla-move-" + name)}"\n'
        config = wrong(config, config.replace('placement = "pymemcache"\n', ""))
        keyway = Keyway(workdir, f"kolla-move-{name}", memcache, config=config)
        host = horizons({"default": {"BACKEND": MEMCACHED, "LOCATION": f"127.0.0.1:{memcache}",
                                     "OPTIONS": {"ignore_exc": True}}})
        return keyway, host

    keyways = []
    try:
        hosts[0].stop()
        keyway, moved = move("a")
        keyways.append(keyway)
        # People come back through the moved host (read through the
        # migrate route) and through the one not moved yet.
        for person in staying[:4]:
            assert person.on(moved).logged_in(), "logged out by the move onto Keyway"
        for person in staying[4:]:
            assert person.on(hosts[1]).logged_in()
        # A logout through the moved host holds on the one not moved yet.
        leaving = staying.pop()
        windows.append(leaving.copy())
        leaving.on(moved).logout()
        assert not windows[-1].on(hosts[1]).logged_in("/settings/"), \
            "a logout through Keyway is not seen by a host on the pool"
        hosts[1].stop()
        keyway, moved_b = move("b")
        keyways.append(keyway)
        hosts = [moved, moved_b]
        for person in staying[4:]:
            assert person.on(moved_b).logged_in(), "logged out by the move onto Keyway"
        report = keyways[0].migrate("moving")
        print(report)
        copied = int(re.search(r"copied (\d+)", report).group(1))
        # The pool retired on both: sessions in the write-through tier
        # alone, the rest in memory; then the pool's servers stop.
        for keyway in keyways:
            retired = re.sub(r"\[backends\.pool\]\n(.*\n)*?\n", "[backends.cache]\nurl = \"memory://\"\n\n",
                             keyway.config)
            retired = re.sub(r"\[policies\.moving\]\n(.*\n)*?\n", "", retired)
            retired = retired.replace('policy = "moving"', 'policy = "sessions"').replace(
                'backend = "pool"', 'backend = "cache"')
            keyway.reload(retired)
        time.sleep(1)
        memcached.stop_all()
        for person in staying:
            for host in hosts:
                assert person.on(host).logged_in(), "logged out once the pool was retired"
        for window in windows:
            for host in hosts:
                assert not window.on(host).logged_in("/settings/"), "a logged-out session is back"
        held = mariadb_sessions(mariadb, table)
        print(f"kolla move over two hosts: {len(staying)} logged in, {len(windows)} logged out; "
              f"copied {copied} keys; {held} sessions in MariaDB after retiring the pool")
        assert held == len(staying)
    finally:
        for keyway in keyways:
            keyway.stop()


def keyway_cli(keyway, *args):
    """`keyway --config <that Keyway's file> sessions ARGS`, as an operator runs it."""
    done = subprocess.run([str(KEYWAY_BIN), "--config", str(keyway.workdir / f"keyway-{keyway.name}.toml"),
                           "sessions", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def keystone_user(keystone_url, name, password):
    """Creates a Keystone user with the member role on the admin project (as
    an operator would); returns its id and the admin user's id."""
    auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    answer = requests.post(f"{keystone_url}/auth/tokens", json=auth, timeout=60)
    assert answer.status_code == 201, answer.text
    headers = {"X-Auth-Token": answer.headers["X-Subject-Token"]}
    token = answer.json()["token"]
    user = requests.post(f"{keystone_url}/users", headers=headers, timeout=60, json={
        "user": {"name": name, "password": password, "domain_id": "default"}}).json()["user"]
    role = requests.get(f"{keystone_url}/roles?name=member", headers=headers, timeout=60).json()["roles"][0]
    granted = requests.put(f"{keystone_url}/projects/{token['project']['id']}/users/{user['id']}/roles/{role['id']}",
                           headers=headers, timeout=60)
    assert granted.status_code == 204, granted.text
    return user["id"], token["user"]["id"]


def test_an_operator_revokes_one_persons_sessions_on_every_host(workdir, horizons, keystone, postgres, memcached):
    """Two Horizon hosts with a Keyway each over one PostgreSQL (the shipped
    write-through example). The admin is signed in on both hosts with two
    windows on each; a second person too. The operator runs `keyway sessions
    revoke --user <admin's Keystone id>` through host a's Keyway: every
    window of the admin is on the login page on both hosts, the other
    person's are not, and a save of the admin's session that arrives after
    the revoke (a request that was in flight) does not bring it back.
    Wrong: `[sessions] keep_ended = false` (the late save is taken)."""
    other_name, other_password = f"person-{free_port()}", "keyway-person-password"
    other_id, admin_id = keystone_user(keystone, other_name, other_password)
    table = f"horizon_revoke_{free_port()}"
    pool = f"{memcached()},{memcached()}"
    hosts = []
    for name in ("a", "b"):
        memcache = free_port()
        config = shipped_write_through(postgres, table, pool, memcache)
        config = wrong(config, config + "\n[sessions]\nkeep_ended = false\n")
        keyway = Keyway(workdir, f"revoke-{name}", memcache, config=config)
        host = horizons({"default": {"BACKEND": MEMCACHED, "LOCATION": f"127.0.0.1:{memcache}"}})
        hosts.append((keyway, memcache, host))
    (keyway_a, memcache_a, a), (keyway_b, memcache_b, b) = hosts
    try:
        admin_windows, other_windows = [], []
        for host in (a, b):
            person = Browser(host)
            person.login()
            admin_windows += [person, person.copy()]
            other = Browser(host)
            other.login(other_name, other_password)
            other_windows += [other, other.copy()]
        assert all(w.logged_in("/settings/") for w in admin_windows + other_windows)
        listed = json.loads(keyway_cli(keyway_a, "list", "--user", admin_id))
        assert listed["sessions"] == 2, listed
        # A request of the admin still in flight: it read the session
        # before the revoke and saves it after.
        # (Its bytes as Horizon pickled them: unpickling needs Horizon's settings.)
        in_flight = pymemcache.client.base.Client(("127.0.0.1", memcache_b))
        key = admin_windows[2].cache_key()
        session = in_flight.get(key)
        assert session.startswith(b"\x80") and admin_id.encode() in session

        # Copies of every cookie, kept unused until the late save (a window
        # that was shown the login page has lost its cookie: Django deletes it).
        held = [window.copy() for window in admin_windows]
        revoked = json.loads(keyway_cli(keyway_a, "revoke", "--user", admin_id))
        assert revoked["revoked"] == 2, revoked
        time.sleep(0.3)  # three times max_staleness_ms
        for window in admin_windows:
            for host in (a, b):
                assert not window.on(host).logged_in("/settings/"), "still signed in after the revoke"
        for window in other_windows:
            for host in (a, b):
                assert window.on(host).logged_in("/settings/"), "the other person was signed out"

        # Django's PyMemcacheCache writes a pickle with flags 1.
        stored = in_flight.set(key, session, 3600, noreply=False, flags=1)
        in_flight.close()
        time.sleep(0.3)
        # Each held cookie on its own host: two on a, two on b (whose Keyway took the save).
        for window in held:
            assert not window.logged_in("/settings/"), "a late save brought the session back"
        assert stored is False, "the late save was answered STORED"
        assert json.loads(keyway_cli(keyway_b, "list", "--user", admin_id))["sessions"] == 0
    finally:
        keyway_a.stop()
        keyway_b.stop()
