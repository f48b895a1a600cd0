"""Client certificates as Red Hat's horizon-operator (RHOSO) uses them:
Horizon's PyMemcacheCache with the operator's OPTIONS literally (no_delay,
ignore_exc, max_pool_size 4, use_pooling, and a tls_context holding a
client certificate, from templates/horizon/config/local_settings.py),
pointed at Keyway's memcached listener that requires a certificate from
its CA; Keyway in turn presents its own certificate to a memcached -Z with
ssl_verify_mode=2. And openstack-ansible's current OPTIONS (ignore_exc,
use_pooling as its defaults compute it for one server) through Keyway."""

import os
import ssl
import subprocess

import pytest
from django.core.cache import caches
from django.test import override_settings

from conftest import free_port, run_keyway, wait_for


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(directory, ca, name, subject, san=None):
    """`name`.pem / `name`-key.pem signed by `ca` (a name in `directory`)."""
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem",
            "-out", f"{name}.csr", "-subj", subject, cwd=directory)
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", extensions.name,
            cwd=directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}-key.pem",
                "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=Keyway e2e {ca}", cwd=directory)
    issue(directory, "ca", "server", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
    issue(directory, "ca", "horizon", "/CN=horizon")
    issue(directory, "ca", "keyway", "/CN=keyway")
    issue(directory, "other-ca", "impostor", "/CN=horizon")
    return directory


@pytest.fixture(scope="module")
def memcached_requiring_certificates(pki):
    port = free_port()
    options = (f"ssl_chain_cert={pki / 'server.pem'},ssl_key={pki / 'server-key.pem'},"
               f"ssl_ca_cert={pki / 'ca.pem'},ssl_verify_mode=2")
    command = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-Z", "-o", options]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]
    process = subprocess.Popen(command)
    wait_for(port)
    yield port
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def keyway_with_mutual_tls(tmp_path, pki, memcached_requiring_certificates):
    port = free_port()
    process = run_keyway(tmp_path, f"""
[listen]
memcache = "127.0.0.1:{port}"

[tls]
cert_file = "{pki / 'server.pem'}"
key_file = "{pki / 'server-key.pem'}"
listeners = ["memcache"]
client_ca_file = "{pki / 'ca.pem'}"

[auth]
memcache = "certificate"

[backends.rhoso]
url = "memcached://127.0.0.1:{memcached_requiring_certificates}"
tls = true
tls_ca_file = "{pki / 'ca.pem'}"
tls_server_name = "localhost"
tls_cert_file = "{pki / 'keyway.pem'}"
tls_key_file = "{pki / 'keyway-key.pem'}"

[[routes]]
glob = "*"
backend = "rhoso"
""", port)
    yield port
    process.terminate()
    process.wait(timeout=15)


def rhoso_caches(port, tls_context):
    """The operator's CACHES, with only LOCATION and KEY_PREFIX's value set here."""
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": [f"127.0.0.1:{port}"],
            "KEY_PREFIX": "config-hash-0123",
            "OPTIONS": {
                "no_delay": True,
                "ignore_exc": True,
                "max_pool_size": 4,
                "use_pooling": True,
                "tls_context": tls_context,
            },
        },
    }


def mtls_context(pki, certificate):
    """The operator's mtls_context(), with this test's files."""
    tls_context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    tls_context.load_cert_chain(str(pki / f"{certificate}.pem"), str(pki / f"{certificate}-key.pem"))
    return tls_context


def test_rhoso_options_through_keyway_to_a_memcached_requiring_certificates(
        pki, keyway_with_mutual_tls, memcached_requiring_certificates):
    port = keyway_with_mutual_tls
    with override_settings(CACHES=rhoso_caches(port, mtls_context(pki, "horizon")),
                           SESSION_ENGINE="django.contrib.sessions.backends.cache"):
        cache = caches["default"]
        cache.set("answer", 42, 60)
        assert cache.get("answer") == 42
        cache.set_many({"a": 1, "b": 2})
        assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
        from django.contrib.sessions.backends.cache import SessionStore

        session = SessionStore()
        session["token"] = "gAAAA-keystone-token"
        session.save()
        assert SessionStore(session_key=session.session_key).load() == {"token": "gAAAA-keystone-token"}
        cache.close()

    # The value is in the memcached behind Keyway, which admitted Keyway by
    # its certificate.
    import pymemcache

    direct = pymemcache.Client(("127.0.0.1", memcached_requiring_certificates),
                               tls_context=mtls_context(pki, "keyway"))
    assert direct.get("config-hash-0123:1:answer") == b"42"
    direct.close()


@pytest.mark.parametrize("certificate", [None, "impostor"])
def test_without_a_certificate_from_the_ca_nothing_is_served(pki, keyway_with_mutual_tls, certificate):
    port = keyway_with_mutual_tls
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if certificate:
        context.load_cert_chain(str(pki / f"{certificate}.pem"), str(pki / f"{certificate}-key.pem"))
    with override_settings(CACHES=rhoso_caches(port, context)):
        cache = caches["default"]
        # ignore_exc: the refused handshake reads as a miss and a lost set.
        cache.set("stranger", "value", 60)
        assert cache.get("stranger") is None
        cache.close()
    import pymemcache

    strict = pymemcache.Client(("127.0.0.1", port), tls_context=context)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        strict.get("stranger")
    strict.close()


def test_openstack_ansible_options_through_keyway(tmp_path):
    port = free_port()
    process = run_keyway(tmp_path, f"""
[listen]
memcache = "127.0.0.1:{port}"

[backends.memory]
url = "memory://"

[[routes]]
glob = "*"
backend = "memory"
""", port)
    try:
        servers = f"127.0.0.1:{port}"
        # os_horizon defaults/main.yml horizon_session_caches, as rendered
        # for one memcached server.
        osa = {"default": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": servers.split(","),
            "OPTIONS": {"ignore_exc": True, "use_pooling": len(servers.split(",")) > 1},
        }}
        with override_settings(CACHES=osa, SESSION_ENGINE="django.contrib.sessions.backends.cache"):
            cache = caches["default"]
            cache.set("answer", 42, 60)
            assert cache.get("answer") == 42
            from django.contrib.sessions.backends.cache import SessionStore

            session = SessionStore()
            session["token"] = "gAAAA"
            session.save()
            assert SessionStore(session_key=session.session_key).load() == {"token": "gAAAA"}
            cache.close()
    finally:
        process.terminate()
        process.wait(timeout=15)
