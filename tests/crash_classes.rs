//! The inputs that crashed other proxies, each sent to a running Keyway: it
//! answers what redis-server 7.0 or memcached 1.6.18 answer to the byte (the
//! expected bytes were taken from them), and lives on.
//!
//! - RESP inline arguments with `\x` escapes cut short or invalid, and
//!   unbalanced quotes (Envoy #46642 aborted on these);
//! - memcached lines ending in `\n` alone and `get` followed by 1,000 spaces
//!   (memcached CVE-2023-46852/46853, in its proxy);
//! - keys of 250 and 251 bytes;
//! - MULTI/EXEC through the replicate, shadow and migrate policies (Envoy
//!   #23651 and #26342 crashed there);
//! - a reload that removes a user who is connected (Valkey #3800): that
//!   user's connections are closed, never left authenticated.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{exchange, keyway_config, start_keyway, ONE_MEMORY_ROUTE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything that arrives until the server closes or has been quiet a while.
async fn replies(addr: SocketAddr, request: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => return (got, false),
        }
    }
}

async fn still_alive(resp: SocketAddr) {
    assert_eq!(
        exchange(resp, b"PING\r\nQUIT\r\n").await,
        b"+PONG\r\n+OK\r\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inline_escapes_and_quotes_are_answered_as_redis() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let resp = keyway.resp_addr.unwrap();
    let unbalanced = &b"-ERR Protocol error: unbalanced quotes in request\r\n"[..];
    let cases: [(&[u8], &[u8], bool); 9] = [
        // `\x` not followed by two hex digits escapes the `x` alone, as redis.
        (b"SET k \"\\x\"\r\nGET k\r\n", b"+OK\r\n$1\r\nx\r\n", false),
        (
            b"SET k \"\\xZZ\"\r\nGET k\r\n",
            b"+OK\r\n$3\r\nxZZ\r\n",
            false,
        ),
        (
            b"SET k \"\\x4\"\r\nGET k\r\n",
            b"+OK\r\n$2\r\nx4\r\n",
            false,
        ),
        (
            b"SET k \"\\x41\\x\"\r\nGET k\r\n",
            b"+OK\r\n$2\r\nAx\r\n",
            false,
        ),
        (
            b"SET k \\x41\r\nGET k\r\n",
            b"+OK\r\n$4\r\n\\x41\r\n",
            false,
        ),
        // Unbalanced: redis's error, then the close.
        (b"\"\\x\r\nPING\r\n", unbalanced, true),
        (b"SET \"k\r\nPING\r\n", unbalanced, true),
        (b"SET 'k\r\nPING\r\n", unbalanced, true),
        (b"SET \"k\"x v\r\nPING\r\n", unbalanced, true),
    ];
    for (request, expected, closes) in cases {
        let (got, closed) = replies(resp, request).await;
        assert_eq!(
            common::show(&got),
            common::show(expected),
            "{}",
            common::show(request)
        );
        assert_eq!(closed, closes, "{}", common::show(request));
        still_alive(resp).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn memcached_lines_and_key_lengths_are_answered_as_memcached() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let memcache = keyway.memcache_addr.unwrap();
    let k250 = "k".repeat(250);
    let k251 = "k".repeat(251);
    let spaces = " ".repeat(1000);
    let cases: Vec<(String, String)> = vec![
        // `\n` alone ends a line; a data block must end in `\r\n`.
        (
            "set a 0 0 1\nx\r\nget a\n".into(),
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n".into(),
        ),
        (
            "set a 0 0 1\nx\nget a\n".into(),
            "CLIENT_ERROR bad data chunk\r\nERROR\r\n".into(),
        ),
        (format!("get{spaces}absent\r\n"), "END\r\n".into()),
        (format!("get{spaces}\r\n"), "ERROR\r\n".into()),
        (
            format!("get absent{spaces}{spaces}{spaces}\r\n"),
            "END\r\n".into(),
        ),
        (
            format!("set {k250} 0 0 1\r\nx\r\nget {k250}\r\n"),
            format!("STORED\r\nVALUE {k250} 0 1\r\nx\r\nEND\r\n"),
        ),
        (
            format!("get {k251}\r\n"),
            "CLIENT_ERROR bad command line format\r\n".into(),
        ),
        (
            format!("set {k251} 0 0 1\r\n"),
            "CLIENT_ERROR bad command line format\r\n".into(),
        ),
    ];
    for (request, expected) in cases {
        let (got, closed) = replies(memcache, request.as_bytes()).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            expected,
            "{:?}",
            &request[..request.len().min(40)]
        );
        assert!(!closed);
    }
    let (version, _) = replies(memcache, b"version\r\n").await;
    assert!(version.starts_with(b"VERSION "));
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_exec_runs_through_replicate_shadow_and_migrate() {
    let (redis_a, redis_b) = (common::start_redis(), common::start_redis());
    let backends = [
        ("memory://".to_string(), "memory://".to_string()),
        (
            format!("redis://{}", redis_a.addr),
            format!("redis://{}", redis_b.addr),
        ),
    ];
    let policies = [
        "kind = \"replicate\"\nmembers = [\"a\", \"b\"]",
        "kind = \"shadow\"\nprimary = \"a\"\nshadow = \"b\"",
        "kind = \"migrate\"\nfrom = \"a\"\nto = \"b\"",
    ];
    for ((a, b), policy) in backends
        .iter()
        .flat_map(|urls| policies.iter().map(move |policy| (urls, policy)))
    {
        common::redis_cli(redis_a.addr, &["FLUSHALL"]);
        common::redis_cli(redis_b.addr, &["FLUSHALL"]);
        let keyway = start_keyway(&format!(
            "[backends.a]\nurl = \"{a}\"\n[backends.b]\nurl = \"{b}\"\n\
             [policies.p]\n{policy}\n[[routes]]\nglob = \"*\"\npolicy = \"p\"\n"
        ))
        .await;
        let resp = keyway.resp_addr.unwrap();
        let (got, closed) = replies(
            resp,
            b"MULTI\r\nSET k v\r\nINCR n\r\nGET k\r\nDEL k\r\nEXEC\r\n\
              MULTI\r\nSET k\r\nEXEC\r\nMULTI\r\nDISCARD\r\nEXEC\r\nGET n\r\n",
        )
        .await;
        assert_eq!(
            common::show(&got),
            common::show(
                b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n\
                  *4\r\n+OK\r\n:1\r\n$1\r\nv\r\n:1\r\n\
                  +OK\r\n-ERR wrong number of arguments for 'set' command\r\n\
                  -EXECABORT Transaction discarded because of previous errors.\r\n\
                  +OK\r\n+OK\r\n-ERR EXEC without MULTI\r\n$1\r\n1\r\n"
            ),
            "{policy} over {a}"
        );
        assert!(!closed, "{policy} over {a}");
        still_alive(resp).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_removes_a_connected_user_closes_that_users_connections() {
    let users = "[auth]\nmemcache = \"ascii\"\n\
                 [[auth.users]]\nname = \"alice\"\npassword = \"a-secret\"\n\
                 [[auth.users]]\nname = \"bob\"\npassword = \"b-secret\"\n";
    let keyway = start_keyway(&format!("{users}{ONE_MEMORY_ROUTE}")).await;
    let resp = keyway.resp_addr.unwrap();
    let login = |user: &'static str, password: &'static str| async move {
        let mut stream = TcpStream::connect(resp).await.unwrap();
        stream
            .write_all(format!("AUTH {user} {password}\r\n").as_bytes())
            .await
            .unwrap();
        let mut ok = [0u8; 5];
        stream.read_exact(&mut ok).await.unwrap();
        assert_eq!(&ok, b"+OK\r\n");
        stream
    };
    let mut alice = login("alice", "a-secret").await;
    let mut bob = login("bob", "b-secret").await;

    // bob is removed from the configuration; alice stays.
    let remaining = "[auth]\nmemcache = \"ascii\"\n\
                     [[auth.users]]\nname = \"alice\"\npassword = \"a-secret\"\n";
    keyway
        .reload(keyway_config(&format!("{remaining}{ONE_MEMORY_ROUTE}")))
        .await
        .unwrap();

    bob.write_all(b"SET k from-bob\r\n").await.unwrap();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), bob.read_to_end(&mut got)).await;
    assert!(closed.is_ok(), "a removed user's connection stayed open");
    assert!(
        !got.starts_with(b"+OK"),
        "a removed user's command ran: {}",
        common::show(&got)
    );
    alice.write_all(b"GET k\r\n").await.unwrap();
    let mut nil = [0u8; 5];
    alice.read_exact(&mut nil).await.unwrap();
    assert_eq!(&nil, b"$-1\r\n", "bob's SET must not have run");
}
