"""The real OpenStack dashboard and identity service, for Keyway's
end-to-end tests: Keystone 30 (SQLite, fernet tokens, bootstrapped admin,
endpoints on loopback) under gunicorn, and Horizon 27 under gunicorn with two
workers and a local_settings.py per host, both from target/horizon-venv
(tests/run.sh installs it from requirements.txt and constraints.txt).

A `Browser` drives the dashboard as a person does: the login form (with
`?next=/identity/`, since /project/ needs nova), a page that needs the
session, and the logout POST with the CSRF token. What the store holds is
read straight from Keyway.

KEYWAY_HORIZON_WRONG=1 runs every scenario against a deliberately wrong
Keyway configuration (each scenario names its own); every scenario must then
fail, which shows it tests what it says.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from net import free_port, wait_for  # noqa: E402  (the e2e suite's loopback helpers)

VENV = ROOT / "target" / "horizon-venv"
BIN = VENV / "bin"
KEYWAY_BIN = Path(os.environ.get("KEYWAY_BIN", ROOT / "target" / "debug" / "keyway")).resolve()
# collectstatic + compress output: Horizon runs with COMPRESS_OFFLINE, so
# without it the login page answers 500. Made once per install.
STATIC = ROOT / "target" / "horizon-static"
ADMIN_PASSWORD = "keyway-horizon-admin"
WRONG = os.environ.get("KEYWAY_HORIZON_WRONG") == "1"
HERE = Path(__file__).resolve().parent


def wrong(right, wrong_one):
    """The scenario's configuration, or its deliberately wrong one."""
    return wrong_one if WRONG else right


class Service:
    """A server process with its log; stopped with SIGTERM."""

    def __init__(self, args, port, log, env=None, cwd=None):
        self.port = port
        self.log = log
        with open(log, "a") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=out, env=env, cwd=cwd)
        try:
            wait_for(port, timeout=60, hint=f"; see {log}")
        except RuntimeError:
            self.stop()
            raise

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def workdir():
    directory = Path(tempfile.mkdtemp(prefix="keyway-horizon-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def keystone(workdir):
    """Keystone's public URL (…/v3), with user admin / ADMIN_PASSWORD."""
    home = workdir / "keystone"
    home.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v3"
    (home / "keystone.conf").write_text(f"""
[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///{home}/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = {home}/fernet-keys
[fernet_receipts]
key_repository = {home}/fernet-keys
[credential]
key_repository = {home}/credential-keys
""")
    manage = [str(BIN / "keystone-manage"), "--config-file", str(home / "keystone.conf")]
    owner = ["--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())]
    log = home / "keystone-manage.log"
    with open(log, "w") as out:
        for step in (["db_sync"], ["fernet_setup", *owner], ["credential_setup", *owner],
                     ["bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
                      "--bootstrap-admin-url", url, "--bootstrap-public-url", url,
                      "--bootstrap-internal-url", url, "--bootstrap-region-id", "RegionOne"]):
            subprocess.run(manage + step, check=True, stdout=out, stderr=out)
    # keystone.server hands sys.argv to oslo.config, which refuses
    # gunicorn's own flags: the shim loads the app with argv cleared.
    env = dict(os.environ, OS_KEYSTONE_CONFIG_DIR=str(home))
    service = Service(
        [str(BIN / "gunicorn"), "--no-control-socket", "-b", f"127.0.0.1:{port}", "-w", "1",
         "--chdir", str(HERE), "keystone_wsgi:application"],
        port, home / "keystone.log", env=env)
    yield url
    service.stop()


def horizon_settings(keystone_url, caches, extra=""):
    return f"""
DEBUG = False
ALLOWED_HOSTS = ["*"]
# One key for every host: a session cookie made on one host is good on another.
SECRET_KEY = "keyway-horizon-test"
OPENSTACK_KEYSTONE_URL = {keystone_url!r}
STATIC_ROOT = {str(STATIC)!r}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
CACHES = {caches!r}
{extra}
"""


@pytest.fixture(scope="session")
def static_files(keystone, workdir):
    """Horizon's collected and compressed static files (once per install)."""
    marker = STATIC / ".keyway-compressed"
    version = (VENV / "horizon-version").read_text() if (VENV / "horizon-version").exists() else ""
    if marker.exists() and marker.read_text() == version:
        return
    shutil.rmtree(STATIC, ignore_errors=True)
    settings = workdir / "compress_settings.py"
    settings.write_text(horizon_settings(keystone, {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}))
    env = dict(os.environ, KEYWAY_HORIZON_SETTINGS=str(settings),
               DJANGO_SETTINGS_MODULE="openstack_dashboard.settings")
    with open(workdir / "compress.log", "w") as out:
        for command in (["collectstatic", "--noinput"], ["compress", "--force"]):
            subprocess.run([str(BIN / "django-admin"), *command], check=True, env=env,
                           stdout=out, stderr=out)
    marker.write_text(version)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL URL: KEYWAY_TEST_POSTGRES_URL, or a throwaway server
    (tests/servers/postgres.sh) stopped when this process exits."""
    if os.environ.get("KEYWAY_TEST_POSTGRES_URL"):
        return os.environ["KEYWAY_TEST_POSTGRES_URL"]
    port = free_port()
    subprocess.run([str(ROOT / "tests" / "servers" / "postgres.sh"), str(port), str(os.getpid())],
                   check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode != 0:
        assert time.monotonic() < deadline, "PostgreSQL did not start"
        time.sleep(0.2)
    return f"postgres://postgres@127.0.0.1:{port}/postgres"


@pytest.fixture(scope="session")
def mariadb():
    """A MariaDB URL (kolla's session database): KEYWAY_TEST_MYSQL_URL, or a
    throwaway server (tests/servers/mariadb.sh) stopped when this process exits."""
    if os.environ.get("KEYWAY_TEST_MYSQL_URL"):
        return os.environ["KEYWAY_TEST_MYSQL_URL"]
    port = free_port()
    subprocess.run([str(ROOT / "tests" / "servers" / "mariadb.sh"), str(port), str(os.getpid())],
                   check=True, stdout=subprocess.DEVNULL)
    ready = ["mariadb", "-h", "127.0.0.1", "-P", str(port), "-u", "root", "-e", "USE keyway"]
    deadline = time.monotonic() + 60
    while subprocess.run(ready, capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "MariaDB did not start"
        time.sleep(0.2)
    return f"mysql://root@127.0.0.1:{port}/keyway"


def psql(url, sql):
    """One value from PostgreSQL, as psql prints it."""
    return subprocess.run(["psql", url, "-tAc", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def mariadb_sessions(url, table):
    """Django sessions (cache engine) in the MariaDB table `table` (not the
    markers Keyway keeps beside ended ones, `<key>:keyway-ended`)."""
    parts = urlparse(url)
    sql = (f"SELECT count(*) FROM {table} WHERE cache_key LIKE ':1:django.contrib.sessions.cache%' "
           "AND cache_key NOT LIKE '%:keyway-ended'")
    done = subprocess.run(["mariadb", "-h", parts.hostname, "-P", str(parts.port), "-u", parts.username,
                           parts.path.lstrip("/"), "-N", "-e", sql],
                          check=True, capture_output=True, text=True)
    return int(done.stdout.strip())


@pytest.fixture
def memcached():
    """Starts real memcached servers: `memcached()` returns an address."""
    started = []

    def start():
        port = free_port()
        started.append(subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0",
                                         "-u", "nobody", "-m", "64"]))
        wait_for(port)
        return f"127.0.0.1:{port}"

    def stop_all():
        for process in started:
            process.terminate()
            process.wait()

    start.stop_all = stop_all
    yield start
    stop_all()


class Horizon(Service):
    """One Horizon host: gunicorn with two workers (each a process with its
    own memory, as Apache's mod_wsgi daemons are) and this host's settings."""

    def __init__(self, workdir, keystone_url, caches, extra=""):
        port = free_port()
        settings = workdir / f"horizon-{port}.py"
        settings.write_text(horizon_settings(keystone_url, caches, extra))
        env = dict(os.environ, KEYWAY_HORIZON_SETTINGS=str(settings))
        super().__init__(
            [str(BIN / "gunicorn"), "--no-control-socket", "-b", f"127.0.0.1:{port}", "-w", "2",
             "--timeout", "120", "openstack_dashboard.wsgi:application"],
            port, workdir / f"horizon-{port}.log", env=env)
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
def horizons(workdir, keystone, static_files):
    """Starts Horizon hosts: `horizons(caches, extra="")`; stopped after the test."""
    started = []

    def start(caches, extra=""):
        host = Horizon(workdir, keystone, caches, extra)
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


class Keyway(Service):
    """A Keyway process: `keyway --config FILE` (or the embedded default with
    `args`), restartable on the same ports."""

    def __init__(self, workdir, name, port, config=None, args=(), env=None):
        self.workdir, self.name, self.config, self.args, self.env = workdir, name, config, list(args), env
        command = [str(KEYWAY_BIN)]
        if config is not None:
            path = workdir / f"keyway-{name}.toml"
            path.write_text(config)
            command += ["--config", str(path)]
        env = dict(os.environ, **(env or {}))
        super().__init__(command + self.args, port, workdir / f"keyway-{name}.log", env=env)

    def reload(self, config):
        """Rewrites the configuration file and sends SIGHUP, as an operator does."""
        self.config = config
        (self.workdir / f"keyway-{self.name}.toml").write_text(config)
        self.process.send_signal(signal.SIGHUP)

    def migrate(self, policy):
        """`keyway migrate --policy POLICY` with this Keyway's configuration; its report."""
        done = subprocess.run([str(KEYWAY_BIN), "--config", str(self.workdir / f"keyway-{self.name}.toml"),
                               "migrate", "--policy", policy], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def restart(self):
        self.stop()
        assert self.process.returncode == 0, f"Keyway {self.name} stopped with {self.process.returncode}"
        Keyway.__init__(self, self.workdir, self.name, self.port, self.config, self.args, self.env)


def shown(page):
    """A page as a person would describe it: its status and title."""
    title = re.search(r"<title>\s*([^<]*?)\s*</title>", page.text)
    return f"{page.status_code} {title.group(1) if title else page.text[:200]!r}"


class Browser:
    """A person with a browser: cookies, the login form, the logout POST."""

    def __init__(self, host):
        self.host = host
        self.session = requests.Session()

    def login(self, username="admin", password=ADMIN_PASSWORD):
        page = self.session.get(f"{self.host.url}/auth/login/?next=/identity/", timeout=60)
        assert page.status_code == 200, f"the login page answered {shown(page)}"
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text))
        form = {"csrfmiddlewaretoken": fields["csrfmiddlewaretoken"], "region": fields["region"],
                "username": username, "password": password, "next": "/identity/"}
        answer = self.session.post(f"{self.host.url}/auth/login/", data=form, timeout=60,
                                   headers={"Referer": f"{self.host.url}/auth/login/"})
        assert answer.status_code == 200, f"logging in answered {shown(answer)}"
        return answer

    def on(self, host):
        """The same browser (cookies) sent to another host behind the load balancer."""
        other = Browser(host)
        other.session.cookies = self.session.cookies
        return other

    def copy(self):
        """Another browser holding a copy of this one's cookies now (a second
        window that missed the logout, or a copied cookie): the server must
        end the session, not trust the browser to forget it."""
        other = Browser(self.host)
        other.session.cookies = requests.cookies.merge_cookies(
            requests.cookies.RequestsCookieJar(), self.session.cookies)
        return other

    # Pages that need the session, and what each shows when logged in. The
    # Identity panel asks Keystone with the session's token; User Settings
    # needs nothing but the session (so a stale session shows there even
    # after Keystone revoked its token).
    PAGES = {"/identity/": "Projects", "/settings/": "User Settings"}

    def logged_in(self, path="/identity/"):
        """What the person sees on a page that needs the session: the page
        (True), or the login page it redirects to (False)."""
        page = self.session.get(f"{self.host.url}{path}", allow_redirects=False, timeout=60)
        if page.status_code == 302 and "/auth/login/" in page.headers["Location"]:
            return False
        assert page.status_code == 200, f"{path} answered {shown(page)}"
        assert self.PAGES[path] in page.text and "admin" in page.text, shown(page)
        return True

    def logout(self):
        token = self.session.cookies.get("csrftoken")
        answer = self.session.post(f"{self.host.url}/auth/logout/", timeout=60,
                                   data={"csrfmiddlewaretoken": token},
                                   headers={"Referer": f"{self.host.url}/identity/"})
        assert answer.status_code == 200, f"logging out answered {shown(answer)}"

    @property
    def session_key(self):
        return self.session.cookies.get("sessionid")

    def cache_key(self):
        """The key Django's cache session engine stores this session under."""
        return f":1:django.contrib.sessions.cache{self.session_key}"
