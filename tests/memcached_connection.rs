//! The pipelined backend connection against a real memcached: many callers
//! share one socket and each gets its own reply; a dead or silent server gives
//! prompt errors, never a hang.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::start_memcached;
use keyway::backend::pipeline::{ConnectionError, Expect, Memcache};
use keyway_protocol::memcache::Response;

type Connection = keyway::backend::pipeline::Connection<Memcache>;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_callers_get_their_own_replies() {
    let memcached = start_memcached();
    let connection = Arc::new(
        Connection::connect(memcached.addr, SECOND, 5 * SECOND, 1 << 20)
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..500 {
        let connection = connection.clone();
        tasks.push(tokio::spawn(async move {
            let value = format!("value-{i}-{}", "x".repeat(i % 97));
            let set = format!("set key{i} {i} 0 {}\r\n{value}\r\n", value.len());
            let stored = connection
                .call(Bytes::from(set), Expect::One)
                .await
                .unwrap();
            assert_eq!(stored[0].response, Response::Stored);
            assert_eq!(stored[0].raw, "STORED\r\n");
            let get = format!("get key{i} missing{i} key{i}\r\n");
            let got = connection
                .call(Bytes::from(get), Expect::UntilEnd)
                .await
                .unwrap();
            let raw: Vec<u8> = got.iter().flat_map(|reply| reply.raw.to_vec()).collect();
            let want = format!("VALUE key{i} {i} {len}\r\n{value}\r\n", len = value.len());
            assert_eq!(raw, format!("{want}{want}END\r\n").into_bytes());
            let got: Vec<Response> = got.into_iter().map(|reply| reply.response).collect();
            let value = Bytes::from(value);
            let hit = Response::Value {
                key: Bytes::from(format!("key{i}")),
                flags: i as u32,
                data: value,
                cas: None,
            };
            assert_eq!(got, vec![hit.clone(), hit, Response::End]);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = connection
        .call(Bytes::from_static(b"stats\r\n"), Expect::UntilEnd)
        .await
        .unwrap();
    assert!(matches!(
        stats.last().map(|s| &s.response),
        Some(Response::End)
    ));
    assert!(stats.len() > 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_fails_callers_promptly() {
    let memcached = start_memcached();
    let addr = memcached.addr;
    let connection = Connection::connect(addr, SECOND, 10 * SECOND, 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        connection
            .call(Bytes::from_static(b"version\r\n"), Expect::One)
            .await
            .map(|r| r.len()),
        Ok(1)
    );
    drop(memcached);
    let started = Instant::now();
    let error = connection
        .call(Bytes::from_static(b"get k\r\n"), Expect::UntilEnd)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < 2 * SECOND,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, ConnectionError::Closed(_) | ConnectionError::Io(..)),
        "{error}"
    );
    assert!(!connection.is_open());
    let refused = Connection::connect(addr, SECOND, SECOND, 1 << 20).await;
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and reads, never answers.
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut socket, &mut sink).await;
    });
    let timeout = Duration::from_millis(300);
    let connection = Connection::connect(addr, SECOND, timeout, 1 << 20)
        .await
        .unwrap();
    let started = Instant::now();
    // Pipelined callers all learn of the timeout, and the connection is
    // given up, so the pool opens a fresh one.
    let (first, second) = tokio::join!(
        connection.call(Bytes::from_static(b"get k\r\n"), Expect::UntilEnd),
        connection.call(Bytes::from_static(b"get j\r\n"), Expect::UntilEnd),
    );
    assert_eq!(first.unwrap_err(), ConnectionError::Timeout(addr, timeout));
    assert_eq!(second.unwrap_err(), ConnectionError::Timeout(addr, timeout));
    assert!(started.elapsed() >= timeout);
    assert!(started.elapsed() < timeout + Duration::from_millis(500));
    assert!(!connection.is_open());
}
