//! The `keyway` binary as an operator uses it: --help, check-config on every
//! shipped example and on a broken file, and a run stopped by SIGTERM (also
//! with connections open on every worker).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEYWAY: &str = env!("CARGO_BIN_EXE_keyway");

#[test]
fn help_explains_the_commands() {
    let output = Command::new(KEYWAY).arg("--help").output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success());
    for needle in [
        "--config",
        "--memcache-listen",
        "--resp-listen",
        "--admin-listen",
        "check-config",
        "embedded default",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
}

#[test]
fn every_shipped_config_checks_out() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config");
    let mut checked = 0;
    // The certificates rhoso-mutual-tls.toml names, made here.
    let pki = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    std::fs::write(pki.path().join("ca.pem"), ca.pem()).unwrap();
    for name in ["server", "keyway"] {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(pki.path().join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(
            pki.path().join(format!("{name}-key.pem")),
            key.serialize_pem(),
        )
        .unwrap();
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let mut path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("/etc/keyway/tls/") {
            let copy = pki.path().join(path.file_name().unwrap());
            let files = format!("{}/", pki.path().display());
            std::fs::write(&copy, text.replace("/etc/keyway/tls/", &files)).unwrap();
            path = copy;
        }
        // The secret kolla-valkey-sentinel.toml reads, as systemd would set it.
        let output = Command::new(KEYWAY)
            .arg("check-config")
            .arg(&path)
            .env("KEYWAY_REDIS_PASSWORD", "secret")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        // The choice of what the sentinel listener asks is said where it is made.
        if path.ends_with("kolla-valkey-sentinel.toml") {
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                stdout.contains("note: listen.sentinel: open (sentinel.auth = \"open\""),
                "{stdout}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 2);
}

#[test]
fn check_config_names_the_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[listen]\nresp = \"127.0.0.1:6379\"\n[backends.sessions]\nurl = \"memory://\"\n\
         [[routes]]\nprefix = \":1:django.contrib.sessions.\"\nbackend = \"sesions\"\n",
    )
    .unwrap();
    let output = Command::new(KEYWAY)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("routes[0].backend: no backend named \"sesions\""),
        "{stderr}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn runs_with_listener_overrides_and_exits_cleanly_on_sigterm() {
    let (mc, resp) = (free_port(), free_port());
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(KEYWAY)
        .args([
            "--memcache-listen",
            &format!("127.0.0.1:{mc}"),
            "--resp-listen",
            &format!("127.0.0.1:{resp}"),
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--memcache-socket")
        .arg(data.path().join("memcache.sock"))
        .arg("--data-dir")
        .arg(data.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", resp)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("keyway never listened: {e}"),
        }
    };
    stream.write_all(b"SET k v\r\nGET k\r\n").unwrap();
    let mut reply = [0u8; 12];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n$1\r\nv\r\n");
    // The embedded default keeps each listener's keys apart: the RESP
    // client's `k` is not the memcached clients' `k`.
    let mut memcache = TcpStream::connect(("127.0.0.1", mc)).unwrap();
    memcache
        .write_all(b"get k\r\nset k 0 0 1\r\nv\r\n")
        .unwrap();
    let mut reply = [0u8; 13];
    memcache.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"END\r\nSTORED\r\n");
    let mut reply = [0u8; 21];
    let mut socket =
        std::os::unix::net::UnixStream::connect(data.path().join("memcache.sock")).unwrap();
    socket.write_all(b"get k\r\n").unwrap();
    socket.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"VALUE k 0 1\r\nv\r\nEND\r\n");
    drop((stream, memcache, socket));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keyway did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !data.path().join("memcache.sock").exists(),
        "the socket file is removed on exit"
    );
}

/// `keyway --data-dir <data> migrate-schema` with the embedded default.
fn migrate_schema(data: &Path) -> std::process::Output {
    Command::new(KEYWAY)
        .arg("--data-dir")
        .arg(data)
        .arg("migrate-schema")
        .output()
        .unwrap()
}

#[test]
fn migrate_schema_creates_the_default_session_table_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = migrate_schema(&data);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "backends.resp-sessions: table keyway_resp_items ready (sqlite)\n\
         backends.sessions: table keyway_items ready (sqlite)\n"
    );
    assert!(data.join("sessions.sqlite3").exists());
    // Sessions hold users' tokens: the data directory and the file are the
    // service user's alone, whatever the umask (the test runs under 022).
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("sessions.sqlite3")), 0o600);
    for side in ["sessions.sqlite3-wal", "sessions.sqlite3-shm"] {
        if data.join(side).exists() {
            assert_eq!(mode(&data.join(side)), 0o600, "{side}");
        }
    }
}

/// A data directory that is already open to others is used, with a warning.
#[test]
fn an_open_data_directory_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = migrate_schema(&data);
    assert!(output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("open to other local users") && log.contains("chmod 700"),
        "{log}"
    );
}

/// Keyway with the embedded default (sessions in SQLite under `data`) on a free RESP port.
fn start_default(data: &Path, resp: u16) -> std::process::Child {
    let child = Command::new(KEYWAY)
        .args(["--memcache-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--resp-listen", &format!("127.0.0.1:{resp}")])
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", resp)).is_err() {
        assert!(Instant::now() < deadline, "keyway never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Four clients set session keys (routed to SQLite) one after another until
/// Keyway stops answering; `signal` is sent to it after half a second.
/// Returns the keys each acknowledged.
fn sessions_until_signalled(resp: u16, child: &std::process::Child, signal: &str) -> Vec<String> {
    let clients: Vec<_> = (0..4)
        .map(|client| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(("127.0.0.1", resp)).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(15)))
                    .unwrap();
                let mut acked = Vec::new();
                for i in 0.. {
                    let key = format!(":1:django.contrib.sessions.cache{client}-{i}");
                    let request = format!("SET {key} v\r\n");
                    if stream.write_all(request.as_bytes()).is_err() {
                        break;
                    }
                    let mut reply = [0u8; 5];
                    match stream.read(&mut reply) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            // A reply is whole or absent, never cut short
                            // (unless the process was killed mid-write).
                            if n < 5 && stream.read_exact(&mut reply[n..]).is_err() {
                                break;
                            }
                            assert_eq!(&reply, b"+OK\r\n");
                            acked.push(key);
                        }
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let acked: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        acked.len() > 40,
        "only {} writes before {signal}",
        acked.len()
    );
    acked
}

/// Every one of `acked` is in the session store of a Keyway restarted on `data`.
fn all_present_after_restart(data: &Path, resp: u16, acked: &[String]) {
    let mut child = start_default(data, resp);
    let mut stream = TcpStream::connect(("127.0.0.1", resp)).unwrap();
    for chunk in acked.chunks(200) {
        let request = format!("EXISTS {}\r\n", chunk.join(" "));
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = Vec::new();
        while !reply.ends_with(b"\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).unwrap();
            reply.extend_from_slice(&byte);
        }
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            format!(":{}\r\n", chunk.len())
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Four clients write sessions to SQLite until `signal` (kill's argument)
/// reaches Keyway; after a restart every acknowledged write is there.
fn acknowledged_writes_survive(signal: &str) -> std::process::ExitStatus {
    let data = tempfile::tempdir().unwrap();
    let resp = free_port();
    let mut child = start_default(data.path(), resp);
    let acked = sessions_until_signalled(resp, &child, signal);
    let status = child.wait().unwrap();
    all_present_after_restart(data.path(), resp, &acked);
    println!(
        "kill {signal} under load: {} acknowledged writes, all present after restart",
        acked.len()
    );
    status
}

#[test]
fn sigterm_under_load_finishes_what_was_sent_keeps_every_acknowledged_write_and_exits_0() {
    let status = acknowledged_writes_survive("-TERM");
    assert!(status.success(), "exit status {status}");
}

/// SQL routes acknowledge a write only after its commit (SQLite in WAL mode
/// with synchronous = FULL), so even `kill -9` loses nothing acknowledged.
#[test]
fn kill_9_under_load_loses_no_acknowledged_sql_write() {
    let status = acknowledged_writes_survive("-KILL");
    assert!(!status.success(), "killed: {status}");
}

/// SIGTERM closes the open connections on every worker (each worker's
/// connections wait on a shutdown token of that worker's), a RESP one and
/// a memcached one on each, long before `shutdown_grace_seconds`.
#[test]
fn sigterm_closes_idle_connections_on_every_worker() {
    let (mc, resp) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keyway.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\nworkers = 2\n[limits]\nshutdown_grace_seconds = 30\n\
             [listen]\nmemcache = \"127.0.0.1:{mc}\"\nresp = \"127.0.0.1:{resp}\"\n\
             [backends.memory]\nurl = \"memory://\"\ncapacity = \"8MiB\"\n\
             [[routes]]\nglob = \"*\"\nbackend = \"memory\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(KEYWAY)
        .arg("--config")
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let connect = |port: u16| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => return stream,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("keyway never listened: {e}"),
            }
        }
    };
    // Handed to the workers in turn: two of each protocol reach both.
    let mut open = Vec::new();
    for (port, ask, answer) in [
        (resp, &b"PING\r\n"[..], &b"+PONG\r\n"[..]),
        (resp, b"PING\r\n", b"+PONG\r\n"),
        (mc, b"version\r\n", b"VERSION "),
        (mc, b"version\r\n", b"VERSION "),
    ] {
        let mut stream = connect(port);
        stream.write_all(ask).unwrap();
        let mut reply = vec![0; answer.len()];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(reply, answer);
        open.push(stream);
    }
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for mut stream in open {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rest = Vec::new();
        stream
            .read_to_end(&mut rest)
            .expect("closed by the shutdown, not left open");
    }
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "keyway waited out its grace instead of closing its connections"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
