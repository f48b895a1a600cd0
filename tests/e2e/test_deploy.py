"""What deploy/ ships, checked the way it is used: each Horizon settings
snippet, loaded as Horizon loads it, keeps a Django session through a real
Keyway running a shipped example config; the Kubernetes manifest passes the
Kubernetes schemas and its ConfigMap's config runs; the systemd unit passes
`systemd-analyze verify`; the Grafana dashboard asks only for metrics Keyway
exposes; the Dockerfile copies only what the repository has.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.test import override_settings

from conftest import KEYWAY_BIN, ROOT, free_port, wait_for
from test_operations import http

DEPLOY = ROOT / "deploy"
SNIPPETS = sorted((DEPLOY / "horizon" / "local_settings.d").glob("_*.py"))
MANIFEST = DEPLOY / "kubernetes" / "horizon-with-keyway.yaml"


def run_keyway(tmp_path, config, ports=None):
    """Keyway on `config` with its listeners moved to `ports` (free loopback
    ports when not given), its data directory under tmp_path."""
    ports = ports or {"memcache": free_port(), "resp": free_port(), "admin": free_port()}
    log = open(tmp_path / "keyway.log", "a")
    process = subprocess.Popen(
        [str(KEYWAY_BIN), "--config", str(config), "--data-dir", str(tmp_path / "data"),
         "--memcache-listen", f"127.0.0.1:{ports['memcache']}",
         "--resp-listen", f"127.0.0.1:{ports['resp']}",
         "--admin-listen", f"127.0.0.1:{ports['admin']}"],
        stdout=log, stderr=log)
    for port in ports.values():
        wait_for(port)
    return process, ports


def stop(process):
    process.terminate()
    assert process.wait(timeout=15) == 0


def snippet_settings(path, ports):
    """The settings a local_settings.d snippet sets, pointed at the test's ports."""
    settings = {}
    exec(compile(path.read_text(), str(path), "exec"), settings)
    caches = json.loads(json.dumps(settings["CACHES"]))
    location = caches["default"]["LOCATION"]
    location = location.replace("127.0.0.1:11211", f"127.0.0.1:{ports['memcache']}")
    location = location.replace("127.0.0.1:6379", f"127.0.0.1:{ports['resp']}")
    caches["default"]["LOCATION"] = location
    return {"CACHES": caches, "SESSION_ENGINE": settings["SESSION_ENGINE"], "SESSION_CACHE_ALIAS": "default"}


def test_there_is_a_snippet_per_client_library():
    names = {path.name for path in SNIPPETS}
    assert names == {"_50_keyway_pymemcache.py", "_50_keyway_pylibmc.py", "_50_keyway_redis.py",
                     "_50_keyway_django_redis.py"}


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda p: p.stem)
def test_each_horizon_snippet_keeps_sessions_across_a_keyway_restart(tmp_path, snippet):
    config = DEPLOY / "config" / "sessions-sqlite.toml"
    process, ports = run_keyway(tmp_path, config)
    settings = snippet_settings(snippet, ports)
    try:
        with override_settings(**settings):
            from django.contrib.sessions.backends.cache import SessionStore
            from django.core.cache import caches

            session = SessionStore()
            session["user"] = "admin"
            session.save()
            key = session.session_key
            caches["default"].close()
            stop(process)
            process, _ = run_keyway(tmp_path, config, ports)
            if "pylibmc" in snippet.stem:
                # libmemcached keeps its connection (Django's close() leaves
                # it) and fails the first request after the server went
                # away, as with memcached itself; README says so.
                import pylibmc

                with pytest.raises(pylibmc.ConnectionError):
                    caches["default"].get("warm-up")
            assert SessionStore(session_key=key).load() == {"user": "admin"}
            caches["default"].close()
    finally:
        stop(process)


def manifest_documents():
    return [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]


def test_kubernetes_manifest_passes_the_schemas_and_its_config_runs(tmp_path):
    import kubernetes_validate

    docs = manifest_documents()
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == ["ConfigMap", "ConfigMap", "Deployment", "PersistentVolumeClaim"]
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    keyway = containers["keyway"]
    assert keyway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert keyway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    admin_port = next(p["containerPort"] for p in keyway["ports"] if p["name"] == "admin")

    config_map = next(doc for doc in docs if doc["metadata"]["name"] == "keyway-config")
    config = tmp_path / "keyway.toml"
    config.write_text(config_map["data"]["keyway.toml"])
    checked = subprocess.run([str(KEYWAY_BIN), "check-config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert f'admin = "0.0.0.0:{admin_port}"' in config.read_text(), "the kubelet must reach the admin port"
    # The Secret the manifest mounts, as `kubectl create secret` makes it.
    token = tmp_path / "admin.token"
    token.write_text("0123456789abcdef0123456789abcdef")
    config.write_text(config.read_text().replace("/etc/keyway-admin/token", str(token)))

    process, ports = run_keyway(tmp_path, config)
    try:
        status, body = http(ports["admin"], "/readyz")
        assert status == 200, body
        horizon = next(doc for doc in docs if doc["metadata"]["name"] == "horizon-keyway-settings")
        snippet = tmp_path / "_50_keyway.py"
        snippet.write_text(horizon["data"]["_50_keyway.py"])
        with override_settings(**snippet_settings(snippet, ports)):
            from django.contrib.sessions.backends.cache import SessionStore
            from django.core.cache import caches

            session = SessionStore()
            session["user"] = "demo"
            session.save()
            assert SessionStore(session_key=session.session_key).load() == {"user": "demo"}
            caches["default"].close()
    finally:
        stop(process)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies_and_is_hardened(tmp_path):
    unit = (DEPLOY / "systemd" / "keyway.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    # verify checks that ExecStart's program exists: point it at the built one.
    local = tmp_path / "keyway.service"
    local.write_text(unit.replace("/usr/local/bin/keyway", str(Path(KEYWAY_BIN).resolve())))
    verified = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    assert "keyway.service" not in verified.stderr, verified.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(local)],
                              capture_output=True, text=True)
    exposure = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout).group(1))
    print({"systemd exposure": exposure})
    assert exposure <= 2.0, security.stdout


def test_grafana_dashboard_asks_only_for_metrics_keyway_exposes(tmp_path):
    dashboard = json.loads((DEPLOY / "grafana" / "keyway-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    asked = {name for expr in exprs for name in re.findall(r"\bkeyway_[a-z_]+", expr)}
    process, ports = run_keyway(tmp_path, DEPLOY / "config" / "sessions-sqlite.toml")
    try:
        _, text = http(ports["admin"], "/metrics")
    finally:
        stop(process)
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    exposed = set()
    for family in text_string_to_metric_families(text):
        exposed.add(family.name)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "info": ["_info"]}
        exposed.update(family.name + suffix for suffix in suffixes.get(family.type, []))
    assert len(exprs) > 20
    assert asked <= exposed, asked - exposed


def test_dockerfile_copies_only_what_the_repository_has():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    sources = [line.split()[1:-1] for line in dockerfile.splitlines()
               if line.startswith("COPY ") and "--from" not in line]
    assert sources
    for paths in sources:
        for path in paths:
            assert (ROOT / path).exists(), path
    for config in re.findall(r"deploy/config/[\w.-]+\.toml", dockerfile):
        assert (ROOT / config).exists(), config
