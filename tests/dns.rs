//! A backend named by a host name that starts resolving to another address
//! (a Kubernetes Service, a VIP moved by keepalived, a DNS change) is
//! followed without a restart.
//!
//! Keyway runs in a mount namespace of its own in which /etc/hosts is a
//! file this test rewrites (`unshare --mount` and a bind mount: needs root,
//! as the test machines run; the system's resolver reads the file afresh on
//! every lookup). Two memcached servers listen on the same port of
//! 127.0.0.1 and 127.0.0.2; the name moves from the first to the second.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;

const KEYWAY: &str = env!("CARGO_BIN_EXE_keyway");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn memcached_on(ip: &str, port: u16) -> Killed {
    let child = Command::new("memcached")
        .args(["-l", ip, "-p", &port.to_string(), "-U", "0", "-u", "nobody"])
        .spawn()
        .expect("memcached runs (apt-get install -y memcached)");
    wait_port(ip, port);
    Killed(child)
}

fn wait_port(ip: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect((ip, port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {ip}:{port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One memcached text exchange; reads until the reply ends with `end`.
fn exchange(ip: &str, port: u16, request: &str, end: &str) -> String {
    let mut stream = TcpStream::connect((ip, port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&reply).ends_with(end) {
        let n = stream.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&reply).into_owned()
}

fn holds(ip: &str, port: u16, key: &str) -> bool {
    exchange(ip, port, &format!("get {key}\r\n"), "END\r\n").starts_with("VALUE")
}

#[test]
fn a_memcached_host_name_that_moves_is_followed_without_a_restart() {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    assert!(
        root,
        "this test runs Keyway in a private mount namespace (unshare --mount): run the suite as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _first = memcached_on("127.0.0.1", port);
    let _second = memcached_on("127.0.0.2", port);
    let hosts = dir.path().join("hosts");
    let name = "sessions-cache.keyway-test";
    std::fs::write(&hosts, format!("127.0.0.1 localhost\n127.0.0.1 {name}\n")).unwrap();
    let (listen, admin) = (free_port(), free_port());
    let config = dir.path().join("keyway.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\nmemcache = \"127.0.0.1:{listen}\"\nadmin = \"127.0.0.1:{admin}\"\n\
             [backends.cache]\nurl = \"memcached://{name}:{port}\"\nresolve_interval_seconds = 1\nconnections = 1\n\
             [[routes]]\nglob = \"*\"\nbackend = \"cache\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("keyway.log");
    let script = format!(
        "mount --bind {} /etc/hosts && exec {KEYWAY} --config {}",
        hosts.display(),
        config.display()
    );
    let _keyway = Killed(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("unshare runs (util-linux)"),
    );
    wait_port("127.0.0.1", listen);

    let set = |key: &str| {
        exchange(
            "127.0.0.1",
            listen,
            &format!("set {key} 0 0 1\r\nx\r\n"),
            "\r\n",
        )
    };
    assert_eq!(set("before"), "STORED\r\n");
    assert!(holds("127.0.0.1", port, "before"));
    assert!(!holds("127.0.0.2", port, "before"));

    // The name moves (rewritten in place: the bind mount follows the inode).
    // The open connection stays on the old address until the interval's
    // lookup sees the move; a connection opened after it would go to the
    // new one at once.
    std::fs::write(&hosts, format!("127.0.0.1 localhost\n127.0.0.2 {name}\n")).unwrap();
    let moved = Instant::now();
    let mut n = 0;
    let followed = loop {
        n += 1;
        let key = format!("after{n}");
        assert_eq!(set(&key), "STORED\r\n");
        if holds("127.0.0.2", port, &key) {
            assert!(!holds("127.0.0.1", port, &key));
            break moved.elapsed();
        }
        assert!(
            moved.elapsed() < Duration::from_secs(10),
            "writes still reach the old address 10 s after the name moved"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("the name's move was followed after {followed:?}");
    assert!(followed < Duration::from_secs(3), "{followed:?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("backend address changed") && logged.contains("127.0.0.2"),
        "{logged}"
    );
    let ready = exchange(
        "127.0.0.1",
        admin,
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "}\n",
    );
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
}
