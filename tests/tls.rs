//! TLS with real peers: redis-cli --tls and a rustls client against
//! Keyway's TLS listeners (and a reload that rotates the certificate), and
//! Keyway against redis-server and memcached serving TLS.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{free_port, keyway_config, start_keyway, ONE_MEMORY_ROUTE};
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A CA, and a certificate for localhost and 127.0.0.1 it signed, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = Self { dir };
        pki.issue("server");
        pki
    }

    /// (Re)issues `cert.pem`/`key.pem` under a fresh CA written to `ca.pem`;
    /// `label` goes into the subject, to tell certificates apart.
    fn issue(&self, label: &str) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("Keyway test CA {label}"));
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("keyway {label}"));
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(self.path("ca.pem"), ca.pem()).unwrap();
        std::fs::write(self.path("cert.pem"), cert.pem()).unwrap();
        std::fs::write(self.path("key.pem"), key.serialize_pem()).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tls_section(&self, listeners: &str) -> String {
        format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\nlisteners = {listeners}\n",
            self.path("cert.pem").display().to_string(),
            self.path("key.pem").display().to_string()
        )
    }

    /// A rustls client trusting this CA (read now: it may be reissued later).
    fn connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.path("ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Sends `request` over TLS and reads until the server closes.
async fn tls_exchange(pki: &Pki, addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let stream = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = pki.connector().connect(name, stream).await?;
    tls.write_all(request).await?;
    let mut reply = Vec::new();
    match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut reply),
    )
    .await
    {
        Ok(Ok(_)) => Ok(reply),
        // Some servers end TLS without close_notify; what arrived counts.
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(reply),
        Ok(Err(error)) => Err(error),
        Err(_) => panic!("no reply in time"),
    }
}

fn redis_cli_tls(port: u16, ca: &Path, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--tls",
            "--cacert",
        ])
        .arg(ca)
        .args(["--sni", "localhost"])
        .args(args)
        .output()
        .expect("redis-cli (apt-get install -y redis-tools)");
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn listeners_speak_tls_to_real_clients_and_a_reload_rotates_the_certificate() {
    let pki = Pki::new();
    let body = format!(
        "{ONE_MEMORY_ROUTE}\n{}",
        pki.tls_section(r#"["resp", "memcache"]"#)
    );
    let keyway = start_keyway(&body).await;
    let (resp, memcache) = (keyway.resp_addr.unwrap(), keyway.memcache_addr.unwrap());

    // redis-cli over TLS, verifying Keyway's certificate against the CA.
    let ca = pki.path("ca.pem");
    let cli = tokio::task::spawn_blocking(move || {
        (
            redis_cli_tls(resp.port(), &ca, &["SET", "tls:k", "v"]),
            redis_cli_tls(resp.port(), &ca, &["GET", "tls:k"]),
        )
    })
    .await
    .unwrap();
    assert_eq!(cli, ("OK\n".to_string(), "v\n".to_string()));
    // memcached text over TLS.
    let reply = tls_exchange(&pki, memcache, b"get tls:k\r\nquit\r\n")
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        "VALUE tls:k 0 1\r\nv\r\nEND\r\n"
    );
    // Plain text to a TLS listener gets no service.
    let plain = common::exchange(resp, b"PING\r\n").await;
    assert!(!String::from_utf8_lossy(&plain).contains("PONG"));

    // A new certificate (under a new CA) is read on reload; new connections get it.
    pki.issue("rotated");
    keyway.reload(keyway_config(&body)).await.unwrap();
    let reply = tls_exchange(&pki, resp, b"PING\r\nQUIT\r\n").await.unwrap();
    assert_eq!(reply, b"+PONG\r\n+OK\r\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_serves_https() {
    let pki = Pki::new();
    let admin = free_port();
    let body = format!("{ONE_MEMORY_ROUTE}\n{}", pki.tls_section(r#"["admin"]"#));
    let config = keyway_config(&body);
    let mut config = config;
    config.listen.admin = Some(format!("127.0.0.1:{admin}"));
    let _keyway = keyway::server::Server::start(&config).await.unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    let reply = tls_exchange(
        &pki,
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let text = String::from_utf8(reply).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.ends_with("ok\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keyway_reaches_redis_and_memcached_over_tls() {
    let pki = Pki::new();
    let path = |name: &str| pki.path(name);
    let redis = common::start_redis_tls(&path("cert.pem"), &path("key.pem"), &path("ca.pem"));
    let ssl = format!(
        "ssl_chain_cert={},ssl_key={}",
        path("cert.pem").display(),
        path("key.pem").display()
    );
    let memcached = common::start_memcached_with(&["-Z", "-o", &ssl]);
    let (redis_port, memcached_port) = (redis.addr.port(), memcached.addr.port());
    let body = format!(
        "[backends.r]\nurl = \"rediss://localhost:{redis_port}\"\ntls_ca_file = {ca:?}\n\
         [backends.m]\nurl = \"memcached://127.0.0.1:{memcached_port}\"\ntls = true\n\
         tls_ca_file = {ca:?}\ntls_server_name = \"localhost\"\n\
         [backends.untrusting]\nurl = \"rediss://localhost:{redis_port}\"\n\
         connect_timeout_ms = 500\n\
         [[routes]]\nprefix = \"r:\"\nbackend = \"r\"\n\
         [[routes]]\nprefix = \"x:\"\nbackend = \"untrusting\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"m\"\n",
        ca = path("ca.pem")
    );
    let keyway = start_keyway(&body).await;
    let reply = common::exchange(
        keyway.resp_addr.unwrap(),
        b"SET r:k v\r\nGET r:k\r\nHSET r:h f 1\r\nSET m:k w\r\nGET m:k\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        "+OK\r\n$1\r\nv\r\n:1\r\n+OK\r\n$1\r\nw\r\n+OK\r\n"
    );
    let reply = common::exchange(keyway.memcache_addr.unwrap(), b"get m:k\r\nquit\r\n").await;
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        "VALUE m:k 0 1\r\nw\r\nEND\r\n"
    );
    // A backend whose certificate is not trusted fails with the reason.
    let reply = common::exchange(keyway.resp_addr.unwrap(), b"GET x:k\r\nQUIT\r\n").await;
    let text = String::from_utf8(reply).unwrap();
    assert!(
        text.starts_with("-ERR") && text.contains("certificate"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keyway_reaches_postgres_over_tls() {
    let pki = Pki::new();
    let port = free_port();
    let _postgres =
        common::start_private_postgres_tls(port, &pki.path("cert.pem"), &pki.path("key.pem"));
    let ca = pki.path("ca.pem").display().to_string();
    let body = format!(
        "[backends.pg]\nurl = \"postgres://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={ca}\"\n\
         table = \"keyway_tls_test\"\n[[routes]]\nglob = \"*\"\nbackend = \"pg\"\n"
    );
    let keyway = start_keyway(&body).await;
    let reply = common::exchange(
        keyway.resp_addr.unwrap(),
        b"SET pg:k v\r\nGET pg:k\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        "+OK\r\n$1\r\nv\r\n+OK\r\n"
    );
    // PostgreSQL says Keyway's connections are encrypted (psql itself is not).
    let output = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable"
        ))
        .args(["-tAc", "SELECT count(*) FROM pg_stat_ssl WHERE ssl"])
        .output()
        .expect("psql (apt-get install -y postgresql-client)");
    let encrypted: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(encrypted >= 1, "{output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keyway_reaches_mariadb_over_tls() {
    let pki = Pki::new();
    let port = free_port();
    let _mariadb =
        common::start_private_mariadb_tls(port, &pki.path("cert.pem"), &pki.path("key.pem"));
    let ssl_accepts = || -> u64 {
        let output = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", &port.to_string(), "-u", "root"])
            .args([
                "--skip-ssl",
                "-N",
                "-e",
                "SHOW GLOBAL STATUS LIKE 'Ssl_accepts'",
            ])
            .output()
            .expect("mariadb client (apt-get install -y mariadb-client)");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("Ssl_accepts: {output:?}"))
    };
    let before = ssl_accepts();
    // Trusting the server's CA, checking its name; and trusting another CA.
    let other = Pki::new();
    let url = |ca: PathBuf| {
        format!(
            "mysql://root@localhost:{port}/keyway?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
            ca.display()
        )
    };
    let body = format!(
        "[backends.maria]\nurl = \"{}\"\ntable = \"keyway_tls_test\"\n\
         [backends.untrusted]\nurl = \"{}\"\ntable = \"keyway_tls_test\"\nconnect_timeout_ms = 2000\n\
         [[routes]]\nprefix = \"x:\"\nbackend = \"untrusted\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"maria\"\n",
        url(pki.path("ca.pem")),
        url(other.path("ca.pem")),
    );
    let keyway = start_keyway(&body).await;
    let reply = common::exchange(
        keyway.resp_addr.unwrap(),
        b"SET my:k v\r\nGET my:k\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        "+OK\r\n$1\r\nv\r\n+OK\r\n"
    );
    // MariaDB counts Keyway's connections as TLS ones (the client above uses none).
    let accepted = ssl_accepts() - before;
    assert!(accepted > 0, "no TLS connection reached MariaDB");
    println!("MariaDB accepted {accepted} TLS connections from Keyway");
    // A server certificate from a CA Keyway does not trust fails with the reason.
    let reply = common::exchange(keyway.resp_addr.unwrap(), b"GET x:k\r\nQUIT\r\n").await;
    let text = String::from_utf8(reply).unwrap();
    assert!(
        text.starts_with("-ERR") && text.contains("certificate"),
        "{text}"
    );
    println!("untrusted MariaDB: {}", text.lines().next().unwrap_or(""));
}

/// `keyway migrate` lists a memcached pool's keys over the backend's TLS
/// settings, as its requests go (memcached with `-Z` accepts nothing else).
#[tokio::test(flavor = "multi_thread")]
async fn keyway_migrate_lists_a_tls_memcached_pool() {
    let pki = Pki::new();
    let path = |name: &str| pki.path(name);
    let ssl = format!(
        "ssl_chain_cert={},ssl_key={}",
        path("cert.pem").display(),
        path("key.pem").display()
    );
    let memcached = common::start_memcached_with(&["-Z", "-o", &ssl]);
    let dir = tempfile::tempdir().unwrap();
    let old = format!(
        "[backends.old]\nurl = \"memcached://127.0.0.1:{port}\"\ntls = true\n\
         tls_ca_file = {ca:?}\ntls_server_name = \"localhost\"\n",
        port = memcached.addr.port(),
        ca = path("ca.pem")
    );
    let through = start_keyway(&format!(
        "{old}[[routes]]\nglob = \"*\"\nbackend = \"old\"\n"
    ))
    .await;
    let mut sets = String::new();
    for i in 0..50 {
        sets.push_str(&format!("set user:{i} {i} 600 2\r\n{i:02}\r\n"));
    }
    sets.push_str("quit\r\n");
    let reply = common::exchange(through.memcache_addr.unwrap(), sets.as_bytes()).await;
    assert_eq!(reply, "STORED\r\n".repeat(50).as_bytes());

    let config = dir.path().join("keyway.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\nresp = \"127.0.0.1:0\"\n[runtime]\ndata_dir = \"{dir}\"\n{old}\
             [backends.db]\nurl = \"sqlite://items.sqlite3\"\n\
             [policies.moving]\nkind = \"migrate\"\nfrom = \"old\"\nto = \"db\"\n\
             [[routes]]\nglob = \"*\"\npolicy = \"moving\"\n",
            dir = dir.path().display(),
        ),
    )
    .unwrap();
    let stdout = common::keyway_migrate(&config, "moving");
    assert!(
        stdout.starts_with("old -> db: listed 50, copied 50,"),
        "{stdout}"
    );
}
