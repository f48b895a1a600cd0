//! Client certificates both ways, with real peers: Keyway's listeners
//! requiring one (`[tls] client_ca_file`; redis-cli and a rustls client
//! presenting none, one from another CA, an expired one, a good one), a
//! certificate standing for a user (`client_user = "cn"`), a reload that
//! changes the client CA; and Keyway presenting one (`tls_cert_file`,
//! `tls_key_file`) to a memcached `-Z` with `ssl_verify_mode=2` and a
//! redis-server with `tls-auth-clients yes`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{keyway_config, start_keyway, ONE_MEMORY_ROUTE};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Certificates in a directory: CAs and what they sign, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A CA written to `<name>.pem`; returns what signs with it.
    fn ca(&self, name: &str) -> rcgen::Issuer<'static, rcgen::KeyPair> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("Keyway test CA {name}"));
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        rcgen::Issuer::new(params, key)
    }

    /// `<name>.pem` and `<name>-key.pem`: a certificate for localhost and
    /// 127.0.0.1 with common name `cn`, signed by `issuer`.
    fn issue(
        &self,
        issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
        name: &str,
        cn: &str,
        expired: bool,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, issuer).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    }

    /// A rustls client trusting `ca`, presenting `client` if given.
    fn connector(&self, ca: &str, client: Option<&str>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.path(&format!("{ca}.pem"))).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let certs = CertificateDer::pem_file_iter(self.path(&format!("{name}.pem")))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let key =
                    PrivateKeyDer::from_pem_file(self.path(&format!("{name}-key.pem"))).unwrap();
                builder.with_client_auth_cert(certs, key).unwrap()
            }
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// `request` over TLS presenting `client`; what came back, or the error
/// (a refused certificate fails the handshake or the first read).
async fn exchange_as(
    pki: &Pki,
    client: Option<&str>,
    addr: SocketAddr,
    request: &[u8],
) -> Result<String, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = pki
        .connector("server-ca", client)
        .connect(name, stream)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(request).await.map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut reply),
    )
    .await
    .expect("an answer or a close in time");
    match read {
        Ok(_) => Ok(String::from_utf8_lossy(&reply).into_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof && !reply.is_empty() => {
            Ok(String::from_utf8_lossy(&reply).into_owned())
        }
        Err(error) => Err(error.to_string()),
    }
}

fn redis_cli_as(pki: &Pki, port: u16, client: &str, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--tls",
            "--sni",
            "localhost",
        ])
        .arg("--cacert")
        .arg(pki.path("server-ca.pem"))
        .arg("--cert")
        .arg(pki.path(&format!("{client}.pem")))
        .arg("--key")
        .arg(pki.path(&format!("{client}-key.pem")))
        .args(args)
        .output()
        .expect("redis-cli (apt-get install -y redis-tools)");
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn mutual_tls_config(pki: &Pki, client_ca: &str) -> String {
    format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}\nlisteners = [\"resp\", \"memcache\"]\n\
         client_ca_file = {:?}\nclient_user = \"cn\"\n\
         [auth]\nmemcache = \"certificate\"\n\
         [[auth.users]]\nname = \"horizon\"\npassword = \"h-pass\"\n\
         permissions = \"+@all -@dangerous -@scripting\"\n{ONE_MEMORY_ROUTE}",
        pki.path("server.pem").display().to_string(),
        pki.path("server-key.pem").display().to_string(),
        pki.path(&format!("{client_ca}.pem")).display().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn listeners_require_a_client_certificate_from_the_configured_ca() {
    let pki = Pki::new();
    let server_ca = pki.ca("server-ca");
    pki.issue(&server_ca, "server", "keyway", false);
    let clients = pki.ca("client-ca");
    pki.issue(&clients, "horizon", "horizon", false);
    pki.issue(&clients, "stranger", "someone-else", false);
    pki.issue(&clients, "expired", "horizon", true);
    let other = pki.ca("other-ca");
    pki.issue(&other, "impostor", "horizon", false);

    let keyway = start_keyway(&mutual_tls_config(&pki, "client-ca")).await;
    let (resp, memcache) = (keyway.resp_addr.unwrap(), keyway.memcache_addr.unwrap());

    // Refused: no certificate, one from another CA, an expired one.
    for client in [None, Some("impostor"), Some("expired")] {
        for addr in [resp, memcache] {
            let got = exchange_as(&pki, client, addr, b"PING\r\nversion\r\n").await;
            assert!(got.is_err(), "{client:?} at {addr} was served: {got:?}");
        }
    }
    // A certificate whose common name is a user is that user: no AUTH, and
    // its permissions apply.
    let got = exchange_as(
        &pki,
        Some("horizon"),
        resp,
        b"SET k v\r\nGET k\r\nFLUSHALL\r\nQUIT\r\n",
    )
    .await
    .unwrap();
    assert_eq!(
        got,
        "+OK\r\n$1\r\nv\r\n-NOPERM this user has no permissions to run the 'flushall' command\r\n+OK\r\n"
    );
    // Another certificate from the CA is admitted, but names no user: AUTH first.
    let got = exchange_as(
        &pki,
        Some("stranger"),
        resp,
        b"GET k\r\nAUTH h-pass\r\nQUIT\r\n",
    )
    .await
    .unwrap();
    assert!(got.starts_with("-NOAUTH"), "{got}");
    let got = exchange_as(
        &pki,
        Some("stranger"),
        resp,
        b"AUTH horizon h-pass\r\nGET k\r\nQUIT\r\n",
    )
    .await
    .unwrap();
    assert_eq!(got, "+OK\r\n$1\r\nv\r\n+OK\r\n");
    // The memcached listener takes the certificate as its credential.
    let got = exchange_as(&pki, Some("stranger"), memcache, b"get k\r\nquit\r\n")
        .await
        .unwrap();
    assert_eq!(got, "VALUE k 0 1\r\nv\r\nEND\r\n");
    // A real client: redis-cli with --cert/--key.
    assert_eq!(
        redis_cli_as(&pki, resp.port(), "horizon", &["GET", "k"]).trim(),
        "v"
    );

    // A reload that trusts another client CA: the old certificates are
    // refused from then on, the new CA's admitted.
    let rotated = pki.ca("client-ca-2");
    pki.issue(&rotated, "horizon-2", "horizon", false);
    keyway
        .reload(keyway_config(&mutual_tls_config(&pki, "client-ca-2")))
        .await
        .unwrap();
    assert!(exchange_as(&pki, Some("horizon"), resp, b"PING\r\n")
        .await
        .is_err());
    let got = exchange_as(&pki, Some("horizon-2"), resp, b"GET k\r\nQUIT\r\n")
        .await
        .unwrap();
    assert_eq!(got, "$1\r\nv\r\n+OK\r\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn keyway_presents_a_client_certificate_to_memcached_and_redis_that_require_one() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    pki.issue(&ca, "server", "localhost", false);
    pki.issue(&ca, "keyway", "keyway", false);
    let path = |name: &str| pki.path(name).display().to_string();
    let memcached = common::start_memcached_with(&[
        "-Z",
        "-o",
        &format!(
            "ssl_chain_cert={},ssl_key={},ssl_ca_cert={},ssl_verify_mode=2",
            path("server.pem"),
            path("server-key.pem"),
            path("ca.pem")
        ),
    ]);
    let redis_port = common::free_port();
    let redis = common::start_redis_on(
        redis_port,
        &[
            "--port",
            "0",
            "--tls-port",
            &redis_port.to_string(),
            "--tls-cert-file",
            &path("server.pem"),
            "--tls-key-file",
            &path("server-key.pem"),
            "--tls-ca-cert-file",
            &path("ca.pem"),
            "--tls-auth-clients",
            "yes",
        ],
    );
    let backends = |client: &str| {
        format!(
            "[backends.m]\nurl = \"memcached://127.0.0.1:{}\"\ntls = true\ntls_ca_file = {ca:?}\n\
             tls_server_name = \"localhost\"\nconnect_timeout_ms = 1000\nrequest_timeout_ms = 2000\n{client}\
             [backends.r]\nurl = \"rediss://localhost:{}\"\ntls_ca_file = {ca:?}\n\
             connect_timeout_ms = 1000\nrequest_timeout_ms = 2000\n{client}\
             [[routes]]\nprefix = \"r:\"\nbackend = \"r\"\n\
             [[routes]]\nglob = \"*\"\nbackend = \"m\"\n",
            memcached.addr.port(),
            redis.addr.port(),
            ca = path("ca.pem"),
        )
    };
    let with_certificate = format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}\n",
        path("keyway.pem"),
        path("keyway-key.pem")
    );
    let keyway = start_keyway(&backends(&with_certificate)).await;
    let reply = common::exchange(
        keyway.resp_addr.unwrap(),
        b"SET r:k v\r\nGET r:k\r\nSET m:k w\r\nGET m:k\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        "+OK\r\n$1\r\nv\r\n+OK\r\n$1\r\nw\r\n+OK\r\n"
    );
    // Without the certificate both servers refuse Keyway, and the client
    // is told.
    let keyway = start_keyway(&backends("")).await;
    let reply =
        common::exchange(keyway.resp_addr.unwrap(), b"GET r:k\r\nGET m:k\r\nQUIT\r\n").await;
    let text = String::from_utf8(reply).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert!(lines[0].starts_with("-ERR"), "{text}");
    assert!(lines[1].starts_with("-ERR"), "{text}");
}

#[test]
fn check_config_explains_and_refuses_certificate_settings() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    pki.issue(&ca, "server", "localhost", false);
    let write = |name: &str, text: &str| -> PathBuf {
        let path = pki.path(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let good = write(
        "good.toml",
        &format!(
            "[listen]\nmemcache = \"127.0.0.1:11211\"\nresp = \"127.0.0.1:6379\"\n{}",
            mutual_tls_config(&pki, "ca")
        ),
    );
    let output = check_config(&good);
    assert!(output.0, "{}", output.1);
    assert!(output.1.contains("note: listen.memcache (127.0.0.1:11211): a client certificate from tls.client_ca_file (auth.memcache = \"certificate\")"), "{}", output.1);
    assert!(
        output
            .1
            .contains("require a client certificate from client_ca_file; one whose common name"),
        "{}",
        output.1
    );
    let no_ca = write(
        "no-ca.toml",
        &std::fs::read_to_string(&good)
            .unwrap()
            .replace("client_ca_file", "# client_ca_file")
            .replace("client_user = \"cn\"\n", ""),
    );
    let output = check_config(&no_ca);
    assert!(!output.0);
    assert!(
        output.1.contains("auth.memcache: \"certificate\" needs"),
        "{}",
        output.1
    );
}

fn check_config(path: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}
