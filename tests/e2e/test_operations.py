"""Operating Keyway as an operator does, against the real binary, real
memcached servers and real clients: the admin listener's /metrics (parsed by
the Prometheus project's own OpenMetrics parser), /healthz, /readyz and
/config; and live reload by SIGHUP while clients keep working.
"""

import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import redis
from pymemcache.client.base import Client
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import KEYWAY_BIN, free_port, wait_for


def start_memcached(port):
    process = subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody"])
    wait_for(port)
    return process


class Keyway:
    def __init__(self, tmp_path, config_text, ports):
        self.config = tmp_path / "keyway.toml"
        self.config.write_text(config_text)
        self.log = open(tmp_path / "keyway.log", "a")
        self.process = subprocess.Popen([str(KEYWAY_BIN), "--config", str(self.config)],
                                        stdout=self.log, stderr=self.log)
        for name in ("memcache", "resp", "admin"):
            if name in ports:
                wait_for(ports[name])

    def reload(self, config_text):
        self.config.write_text(config_text)
        self.process.send_signal(signal.SIGHUP)

    def stop(self):
        self.process.terminate()
        assert self.process.wait(timeout=15) == 0


def http(port, path, token=None):
    """(status, body) of GET http://127.0.0.1:port/path (with a bearer token if given)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(port):
    """{(sample name, frozenset(labels)): value} from /metrics, through the strict parser."""
    status, text = http(port, "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


CONFIG = """
[listen]
memcache = "127.0.0.1:{memcache}"
resp = "127.0.0.1:{resp}"
admin = "127.0.0.1:{admin}"

[runtime]
data_dir = "{data_dir}"

[backends.mc]
url = "memcached://127.0.0.1:{memcached}"
request_timeout_ms = 500
connect_timeout_ms = 300

[backends.db]
url = "sqlite://sessions.sqlite3"

[backends.mem]
url = "memory://"

[[routes]]
prefix = "mc:"
backend = "mc"

[[routes]]
prefix = "db:"
backend = "db"

[[routes]]
glob = "*"
backend = "mem"
"""


def test_metrics_count_a_known_workload_and_readyz_follows_a_backend(tmp_path):
    ports = {"memcache": free_port(), "resp": free_port(), "admin": free_port(), "memcached": free_port()}
    memcached = start_memcached(ports["memcached"])
    keyway = Keyway(tmp_path, CONFIG.format(data_dir=tmp_path / "data", **ports), ports)
    try:
        assert http(ports["admin"], "/healthz") == (200, "ok\n")
        status, body = http(ports["admin"], "/readyz")
        assert status == 200 and json.loads(body)["ready"] is True, body

        mc = Client(("127.0.0.1", ports["memcache"]))
        for i in range(20):
            assert mc.set(f"mc:{i}", b"v", expire=300)
        found = sum(mc.get(f"mc:{i}") is not None for i in range(30))
        assert found == 20
        for i in range(5):
            assert mc.delete(f"mc:{i}", noreply=False)
        r = redis.Redis(port=ports["resp"], protocol=3)
        for i in range(10):
            assert r.set(f"db:{i}", "session")
        assert all(r.get(f"db:{i}") == b"session" for i in range(10))
        for i in range(7):
            r.set(f"x:{i}", "memory")

        m = scrape(ports["admin"])
        assert value(m, "keyway_requests_total", target="mc", kind="memcached", family="set") == 20
        assert value(m, "keyway_requests_total", target="mc", kind="memcached", family="get") == 30
        assert value(m, "keyway_requests_total", target="mc", kind="memcached", family="delete") == 5
        assert value(m, "keyway_hits_total", target="mc", kind="memcached") == 20
        assert value(m, "keyway_misses_total", target="mc", kind="memcached") == 10
        assert value(m, "keyway_request_errors_total", target="mc", kind="memcached", family="get") == 0
        assert value(m, "keyway_request_duration_seconds_count", target="mc", kind="memcached", family="get") == 30
        assert value(m, "keyway_request_duration_seconds_bucket", target="mc", kind="memcached", family="get",
                     le="+Inf") == 30
        assert value(m, "keyway_requests_total", target="db", kind="sqlite", family="set") == 10
        assert value(m, "keyway_hits_total", target="db", kind="sqlite") == 10
        assert value(m, "keyway_sql_batch_size_sum", backend="db", kind="sqlite") == 10
        assert value(m, "keyway_requests_total", target="mem", kind="memory", family="set") == 7
        assert value(m, "keyway_memory_items", backend="mem") == 7
        assert value(m, "keyway_client_connections") == 2
        assert value(m, "keyway_client_commands_total") >= 20 + 30 + 5 + 10 + 10 + 7
        assert value(m, "keyway_client_read_bytes_total") > 0
        assert value(m, "keyway_backend_up", backend="mc", kind="memcached") == 1
        assert value(m, "keyway_backend_connections", backend="mc", kind="memcached") >= 1
        assert value(m, "keyway_route_info", route="0", matcher='prefix = "mc:"', target="mc") == 1
        print({"mc set/get/delete": (20, 30, 5), "mc hits/misses": (20, 10), "db sets in batches": 10})

        # memcached stops: /readyz names it, requests to it fail and count.
        memcached.terminate()
        memcached.wait()
        status, body = http(ports["admin"], "/readyz")
        assert status == 503, body
        failing = json.loads(body)["failing"]
        assert list(failing) == ["mc"], body
        try:
            mc.get("mc:7")
        except Exception:
            pass
        m = scrape(ports["admin"])
        assert value(m, "keyway_backend_up", backend="mc", kind="memcached") == 0
        assert value(m, "keyway_request_errors_total", target="mc", kind="memcached", family="get") >= 1
        # ...and it comes back.
        memcached = start_memcached(ports["memcached"])
        deadline = time.monotonic() + 10
        while http(ports["admin"], "/readyz")[0] != 200:
            assert time.monotonic() < deadline, "readyz did not recover"
            time.sleep(0.1)
        mc.set("mc:back", b"1")
        m = scrape(ports["admin"])
        assert value(m, "keyway_backend_up", backend="mc", kind="memcached") == 1
    finally:
        keyway.stop()
        memcached.terminate()


def test_config_shows_the_running_configuration_without_passwords(tmp_path):
    ports = {"memcache": free_port(), "admin": free_port()}
    text = f"""
[listen]
memcache = "127.0.0.1:{ports['memcache']}"
admin = "127.0.0.1:{ports['admin']}"

[backends.r]
url = "redis://keyway:s3cret-pass@127.0.0.1:{free_port()}/2"
connect_timeout_ms = 200
request_timeout_ms = 200

[[routes]]
glob = "*"
backend = "r"
"""
    keyway = Keyway(tmp_path, text, ports)
    try:
        status, shown = http(ports["admin"], "/config")
        assert status == 200
        assert "s3cret-pass" not in shown
        assert 'url = "redis://keyway:***@127.0.0.1:' in shown
        status, body = http(ports["admin"], "/readyz")
        assert status == 503 and "r" in json.loads(body)["failing"]
        assert "s3cret-pass" not in body
        assert http(ports["admin"], "/nothing")[0] == 404
    finally:
        keyway.stop()


def test_an_admin_listener_off_loopback_needs_a_token(tmp_path):
    admin = free_port()
    text = f"""
[listen]
memcache = "127.0.0.1:{free_port()}"
admin = "0.0.0.0:{admin}"

[backends.m]
url = "memory://"

[[routes]]
glob = "*"
backend = "m"
"""
    config = tmp_path / "open.toml"
    config.write_text(text)
    checked = subprocess.run([str(KEYWAY_BIN), "check-config", str(config)], capture_output=True, text=True)
    assert checked.returncode != 0
    assert "listen.admin" in checked.stderr and "admin_token_file" in checked.stderr, checked.stderr

    token_file = tmp_path / "admin.token"
    token_file.write_text("first-token-0123456789\n")
    with_token = text.replace("[backends.m]", f'admin_token_file = "{token_file}"\n\n[backends.m]')
    keyway = Keyway(tmp_path, with_token, {"admin": admin})
    try:
        # Bound on every interface; the test only ever connects over loopback.
        assert http(admin, "/healthz") == (200, "ok\n")
        assert http(admin, "/readyz")[0] == 200
        for path in ("/metrics", "/config", "/nothing"):
            status, body = http(admin, path)
            assert status == 401 and "Authorization: Bearer" in body, (path, status, body)
            assert http(admin, path, token="wrong-token-0123456789")[0] == 401
        assert http(admin, "/config", token="first-token-0123456789")[0] == 200
        assert "keyway_" in http(admin, "/metrics", token="first-token-0123456789")[1]
        # Rotating the token is editing the file and sending SIGHUP.
        token_file.write_text("second-token-0123456789\n")
        keyway.reload(with_token)
        deadline = time.monotonic() + 10
        while http(admin, "/metrics", token="second-token-0123456789")[0] != 200:
            assert time.monotonic() < deadline, "the reload did not rotate the token"
            time.sleep(0.05)
        assert http(admin, "/metrics", token="first-token-0123456789")[0] == 401
    finally:
        keyway.stop()


def test_redis_exporter_scrapes_keyway_as_it_scrapes_redis(tmp_path):
    """The Prometheus project's redis_exporter (Debian's
    prometheus-redis-exporter), pointed at Keyway's RESP listener, reads its
    INFO, CONFIG GET and keyspace as it reads a redis."""
    resp, admin, exporter_port = free_port(), free_port(), free_port()
    text = f"""
[listen]
resp = "127.0.0.1:{resp}"
admin = "127.0.0.1:{admin}"

[backends.m]
url = "memory://"
capacity = "64MiB"

[[routes]]
glob = "*"
backend = "m"
"""
    keyway = Keyway(tmp_path, text, {"resp": resp, "admin": admin})
    exporter = subprocess.Popen(
        ["prometheus-redis-exporter", f"--redis.addr=redis://127.0.0.1:{resp}",
         f"--web.listen-address=127.0.0.1:{exporter_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(exporter_port)
        client = redis.Redis(port=resp)
        for i in range(25):
            client.set(f"key:{i}", i)
        client.select(3)
        client.set("other", 1)
        client.get("missing")
        status, text = http(exporter_port, "/metrics")
        assert status == 200
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, number = line.rpartition(" ")
                samples[name] = float(number)
        assert samples["redis_up"] == 1
        assert samples['redis_db_keys{db="db0"}'] == 25
        assert samples['redis_db_keys{db="db3"}'] == 1
        assert samples['redis_commands_total{cmd="set"}'] == 26
        assert samples["redis_keyspace_misses_total"] >= 1
        assert samples["redis_connected_clients"] >= 1
        assert samples["redis_config_maxmemory"] == 64 * 1024 * 1024
        info = next(name for name in samples if name.startswith("redis_instance_info"))
        assert 'role="master"' in info and 'redis_mode="standalone"' in info, info
        client.close()
    finally:
        exporter.terminate()
        exporter.wait(timeout=10)
        keyway.stop()


RELOAD = """
[listen]
memcache = "127.0.0.1:{memcache}"
admin = "127.0.0.1:{admin}"

[backends.a]
url = "memcached://127.0.0.1:{a}"

[backends.b]
url = "memcached://127.0.0.1:{b}"

[policies.to-b]
kind = "migrate"
from = "a"
to = "b"

[[routes]]
prefix = "moving:"
{moving}

[[routes]]
glob = "*"
backend = "a"
"""


def total_connections(port):
    return int(Client(("127.0.0.1", port)).stats()[b"total_connections"])


def test_sighup_reloads_routes_under_load_without_a_failed_request(tmp_path):
    ports = {"memcache": free_port(), "admin": free_port(), "a": free_port(), "b": free_port()}
    servers = [start_memcached(ports["a"]), start_memcached(ports["b"])]
    keyway = Keyway(tmp_path, RELOAD.format(moving='backend = "a"', **ports), ports)
    stop = threading.Event()
    done = {"requests": 0, "failures": [], "last": {}}

    def client_loop(worker):
        client = Client(("127.0.0.1", ports["memcache"]), timeout=5, no_delay=True)
        n = 0
        while not stop.is_set():
            n += 1
            try:
                for key in (f"moving:{worker}:{n}", f"stays:{worker}:{n}"):
                    assert client.set(key, str(n).encode(), expire=600)
                    assert client.get(key) == str(n).encode()
                    done["requests"] += 2
                done["last"][worker] = n
            except Exception as error:  # noqa: BLE001 - every failure is the finding
                done["failures"].append(repr(error))

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        a_connections = total_connections(ports["a"])
        # 1. A bad configuration: refused, counted, the running one stays.
        keyway.reload(RELOAD.format(moving='backend = "a"', **ports) + "\nnot_a_field = 1\n")
        deadline = time.monotonic() + 10
        while value(scrape(ports["admin"]), "keyway_config_reloads_total", outcome="failure") != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # 2. The route moves to b the way an operator moves a live store
        #    (a migrate policy: writes to b, reads from b then a, so a key
        #    written just before the switch still reads back), and the admin
        #    listener moves to a new port.
        new_admin = free_port()
        moved = dict(ports, admin=new_admin)
        keyway.reload(RELOAD.format(moving='policy = "to-b"', **moved))
        wait_for(new_admin)
        deadline = time.monotonic() + 10
        while value(scrape(new_admin), "keyway_config_reloads_total", outcome="success") != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        reloaded_at = done["requests"]
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    try:
        assert done["failures"] == [], done["failures"][:5]
        assert done["requests"] > reloaded_at > 0
        # New writes on the moved route are in b only; the other route stays on a.
        b = Client(("127.0.0.1", ports["b"]))
        a = Client(("127.0.0.1", ports["a"]))
        client = Client(("127.0.0.1", ports["memcache"]))
        assert client.set("moving:after", b"new", noreply=False)
        assert client.set("stays:after", b"old", noreply=False)
        assert b.get("moving:after") == b"new" and a.get("moving:after") is None
        assert a.get("stays:after") == b"old" and b.get("stays:after") is None
        # ...as were the loop's last writes, made after the reload.
        for worker, n in done["last"].items():
            assert b.get(f"moving:{worker}:{n}") == str(n).encode()
            assert a.get(f"stays:{worker}:{n}") == str(n).encode()
        # Backend a did not change: its pooled connections were kept. Since
        # the count before, only the direct client `a` and this stats call
        # connected; a rebuilt pool would have opened its two again.
        assert total_connections(ports["a"]) <= a_connections + 2
        # The old admin port is closed.
        try:
            http(ports["admin"], "/healthz")
            raise AssertionError("the old admin listener still answers")
        except urllib.error.URLError:
            pass
        print({"requests": done["requests"], "after the reload": done["requests"] - reloaded_at, "failed": 0})
    finally:
        keyway.stop()
        for server in servers:
            server.terminate()
