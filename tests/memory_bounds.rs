//! What clients can make Keyway hold, measured on a real `keyway` process
//! (its resident memory from /proc): strangers before AUTH are held to
//! redis's pre-authentication limits, and many slow large writes together
//! to `limits.request_buffers`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEYWAY: &str = env!("CARGO_BIN_EXE_keyway");
const MIB: u64 = 1024 * 1024;

struct Keyway {
    child: Child,
    resp: SocketAddr,
    memcache: SocketAddr,
    sentinel: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Keyway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Keyway {
    /// `keyway --config` with users on both listeners and `limits`.
    async fn start(limits: &str) -> Keyway {
        let dir = tempfile::tempdir().unwrap();
        let (resp, memcache, sentinel) = (free_port(), free_port(), free_port());
        let config = dir.path().join("keyway.toml");
        std::fs::write(
            &config,
            format!(
                "[listen]\nresp = \"127.0.0.1:{resp}\"\nmemcache = \"127.0.0.1:{memcache}\"\n\
                 sentinel = \"127.0.0.1:{sentinel}\"\n\
                 [[auth.users]]\nname = \"default\"\npassword = \"sesame\"\n\
                 [auth]\nmemcache = \"ascii\"\n\
                 [limits]\n{limits}\n\
                 [backends.memory]\nurl = \"memory://\"\ncapacity = \"2GiB\"\n\
                 [[routes]]\nglob = \"*\"\nbackend = \"memory\"\n"
            ),
        )
        .unwrap();
        let child = Command::new(KEYWAY)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("keyway runs");
        let keyway = Keyway {
            child,
            resp: ([127, 0, 0, 1], resp).into(),
            memcache: ([127, 0, 0, 1], memcache).into(),
            sentinel: ([127, 0, 0, 1], sentinel).into(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(keyway.resp).await.is_err() {
            assert!(Instant::now() < deadline, "keyway did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        keyway
    }

    /// Resident memory now, in bytes.
    fn rss(&self) -> u64 {
        rss_of(self.child.id())
    }
}

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .expect("keyway is running");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Everything that arrives until the server closes or `wait` passes.
async fn until_closed(stream: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => return (got, false),
        }
    }
}

async fn authenticated(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"AUTH sesame\r\n").await.unwrap();
    let mut ok = [0u8; 5];
    stream.read_exact(&mut ok).await.unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn strangers_are_refused_at_redis_pre_authentication_limits_and_hold_nothing() {
    let keyway = Keyway::start("").await;
    let before = keyway.rss();
    // The flood of the issue: 40 connections that never authenticate, each
    // starting a 32 MiB SET, and sending all of it they can.
    let mut floods = Vec::new();
    for _ in 0..40 {
        let addr = keyway.resp;
        floods.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let header = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", 32 * MIB);
            stream.write_all(header.as_bytes()).await.unwrap();
            let chunk = vec![b'v'; MIB as usize];
            for _ in 0..32 {
                if stream.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            until_closed(&mut stream, Duration::from_secs(10)).await
        }));
    }
    for flood in floods {
        let (reply, closed) = flood.await.unwrap();
        // The reply may be lost to a reset when the client was still
        // sending as the server closed; the close never is.
        assert!(closed, "a stranger's 32 MiB SET left the connection open");
        if !reply.is_empty() {
            assert_eq!(
                reply,
                b"-ERR Protocol error: unauthenticated bulk length\r\n"
            );
        }
    }
    let grown = keyway.rss().saturating_sub(before);
    eprintln!(
        "40 strangers' 32 MiB SETs: keyway grew {} KiB",
        grown / 1024
    );
    assert!(
        grown < 64 * MIB,
        "40 strangers' 32 MiB SETs grew keyway by {} MiB",
        grown / MIB
    );

    // The headers alone are refused, not awaited (redis's words, then close).
    for (request, error) in [
        (&b"*100000\r\n"[..], "unauthenticated multibulk length"),
        (
            b"*2\r\n$4\r\nAUTH\r\n$100000000\r\n",
            "unauthenticated bulk length",
        ),
    ] {
        let mut stream = TcpStream::connect(keyway.resp).await.unwrap();
        stream.write_all(request).await.unwrap();
        let (reply, closed) = until_closed(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(
            String::from_utf8_lossy(&reply),
            format!("-ERR Protocol error: {error}\r\n")
        );
        assert!(closed);
    }
    // The sentinel listener (open to strangers by default) keeps the same
    // limits whatever the client sent: no Sentinel command needs more.
    for request in [
        &b"*100000\r\n"[..],
        b"*2\r\n$4\r\nPING\r\n$100000000\r\n",
        b"AUTH sesame\r\n*2\r\n$4\r\nPING\r\n$100000000\r\n",
    ] {
        let mut stream = TcpStream::connect(keyway.sentinel).await.unwrap();
        stream.write_all(request).await.unwrap();
        let (reply, closed) = until_closed(&mut stream, Duration::from_secs(5)).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.contains("-ERR Protocol error: unauthenticated"),
            "{reply}"
        );
        assert!(closed);
    }
    let mut stream = TcpStream::connect(keyway.sentinel).await.unwrap();
    stream
        .write_all(b"SENTINEL get-master-addr-by-name mymaster\r\nQUIT\r\n")
        .await
        .unwrap();
    let (reply, _) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(
        reply.starts_with(b"*2\r\n"),
        "{}",
        String::from_utf8_lossy(&reply)
    );

    // Within the limits, a stranger is answered NOAUTH and stays connected;
    // then AUTH lifts the limits.
    let mut stream = TcpStream::connect(keyway.resp).await.unwrap();
    stream.write_all(b"GET k\r\n").await.unwrap();
    let mut noauth = vec![0u8; b"-NOAUTH Authentication required.\r\n".len()];
    stream.read_exact(&mut noauth).await.unwrap();
    assert_eq!(noauth, b"-NOAUTH Authentication required.\r\n");
    stream.write_all(b"AUTH sesame\r\n").await.unwrap();
    let mut ok = [0u8; 5];
    stream.read_exact(&mut ok).await.unwrap();
    let value = vec![b'x'; 100_000];
    let mut set = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", value.len()).into_bytes();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    stream.write_all(&set).await.unwrap();
    stream.read_exact(&mut ok).await.unwrap();
    assert_eq!(&ok, b"+OK\r\n");

    // memcached's ASCII authentication: a token over 16 KiB is refused
    // before its block is read; a line with no newline is closed at 2 KiB.
    let mut stream = TcpStream::connect(keyway.memcache).await.unwrap();
    stream
        .write_all(format!("set k 0 0 {}\r\n", 32 * MIB).as_bytes())
        .await
        .unwrap();
    let mut line = vec![0u8; b"CLIENT_ERROR auth token too long\r\n".len()];
    stream.read_exact(&mut line).await.unwrap();
    assert_eq!(line, b"CLIENT_ERROR auth token too long\r\n");
    let mut stream = TcpStream::connect(keyway.memcache).await.unwrap();
    let _ = stream.write_all(&vec![b'x'; 64 * 1024]).await;
    let (_, closed) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(
        closed,
        "2 KiB without a newline before authentication kept the connection"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn many_slow_large_writes_stay_within_the_request_buffer_budget() {
    const BUDGET: u64 = 32 * MIB;
    const CONNECTIONS: usize = 200;
    const CHUNK: usize = 128 * 1024;
    let keyway = Keyway::start(&format!("request_buffers = {BUDGET}")).await;
    let mut writers = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut stream = authenticated(keyway.resp).await;
        let header = format!("*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n${}\r\n", 64 * MIB);
        stream.write_all(header.as_bytes()).await.unwrap();
        writers.push(stream);
    }
    let mut normal = authenticated(keyway.resp).await;
    let before = keyway.rss();
    // 200 writers, each sending its 64 MiB value a chunk at a time, as fast
    // as Keyway takes it: up to 8 MiB each (1.6 GiB offered in all).
    let chunk = vec![b'v'; CHUNK];
    let mut offered = 0u64;
    let mut peak = before;
    for _round in 0..(8 * MIB as usize / CHUNK) {
        for writer in &mut writers {
            if let Ok(n) = writer.try_write(&chunk) {
                offered += n as u64;
            }
        }
        peak = peak.max(keyway.rss());
        // Ordinary traffic is served meanwhile.
        let started = Instant::now();
        normal
            .write_all(b"SET small v\r\nGET small\r\n")
            .await
            .unwrap();
        let mut reply = [0u8; 5 + 7];
        tokio::time::timeout(Duration::from_secs(5), normal.read_exact(&mut reply))
            .await
            .expect("an ordinary client waited over 5 s under the budget")
            .unwrap();
        assert_eq!(&reply, b"+OK\r\n$1\r\nv\r\n");
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    peak = peak.max(keyway.rss());
    let grown = peak.saturating_sub(before);
    eprintln!(
        "offered {} MiB in partial requests; keyway grew {} MiB (budget {} MiB)",
        offered / MIB,
        grown / MIB,
        BUDGET / MIB
    );
    assert!(
        offered > 4 * BUDGET,
        "the writers could not offer enough to test the budget"
    );
    // The budget, the one request allowed to finish (at most the 8 MiB a
    // writer sends here, in a buffer that may be twice that), 64 KiB per
    // connection, and the allocator's slack.
    let bound = BUDGET + 16 * MIB + CONNECTIONS as u64 * 64 * 1024 + 48 * MIB;
    assert!(
        grown < bound,
        "keyway grew {} MiB holding partial requests (bound {} MiB)",
        grown / MIB,
        bound / MIB
    );
    drop(writers);

    // A single large request still completes over the budget: it holds
    // the pass.
    let mut big = authenticated(keyway.resp).await;
    let value = vec![b'b'; 48 * MIB as usize];
    let mut set = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len()).into_bytes();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    big.write_all(&set).await.unwrap();
    let mut ok = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(30), big.read_exact(&mut ok))
        .await
        .expect("a 48 MiB SET never completed under a 32 MiB budget")
        .unwrap();
    assert_eq!(&ok, b"+OK\r\n");
}
