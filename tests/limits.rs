//! `[limits]` enforced the way a client sees it: the connection cap, long
//! pipelines answered in turns, a client that never reads its replies, an
//! idle client, and shutdown's grace with a client that never pauses.

mod common;

use std::time::{Duration, Instant};

use common::{exchange, start_keyway, ONE_MEMORY_ROUTE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn with_limits(limits: &str) -> String {
    format!("[limits]\n{limits}\n{ONE_MEMORY_ROUTE}")
}

/// Reads whatever arrives until the server closes the connection, or `wait` passes.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let closed = tokio::time::timeout(wait, stream.read_to_end(&mut got))
        .await
        .is_ok_and(|read| read.is_ok());
    (got, closed)
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_past_the_cap_are_refused_and_open_ones_go_on() {
    let keyway = start_keyway(&with_limits("max_connections = 2")).await;
    let (resp, memcache) = (keyway.resp_addr.unwrap(), keyway.memcache_addr.unwrap());
    let mut first = TcpStream::connect(resp).await.unwrap();
    let mut second = TcpStream::connect(memcache).await.unwrap();
    first.write_all(b"PING\r\n").await.unwrap();
    let mut pong = [0u8; 7];
    first.read_exact(&mut pong).await.unwrap();
    second.write_all(b"version\r\n").await.unwrap();
    let mut version = [0u8; 8];
    second.read_exact(&mut version).await.unwrap();

    let mut refused = TcpStream::connect(resp).await.unwrap();
    let (reply, closed) = read_until_closed(&mut refused, Duration::from_secs(5)).await;
    assert_eq!(reply, b"-ERR max number of clients reached\r\n");
    assert!(closed);
    let mut refused = TcpStream::connect(memcache).await.unwrap();
    let (reply, closed) = read_until_closed(&mut refused, Duration::from_secs(5)).await;
    assert_eq!(reply, b"SERVER_ERROR Too many open connections\r\n");
    assert!(closed);

    // The open ones are unaffected; a freed slot takes a new connection.
    first.write_all(b"PING\r\n").await.unwrap();
    first.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    drop(second);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        exchange(memcache, b"version\r\nquit\r\n").await[..8],
        *b"VERSION "
    );
    assert_eq!(keyway.current().stats.rejected_connections.get(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_longer_than_max_pipeline_is_answered_whole_in_order() {
    let keyway = start_keyway(&with_limits("max_pipeline = 4")).await;
    let mut request = String::new();
    for i in 0..50 {
        request.push_str(&format!("SET k{i} {i}\r\nGET k{i}\r\n"));
    }
    request.push_str("QUIT\r\n");
    let reply = exchange(keyway.resp_addr.unwrap(), request.as_bytes()).await;
    let mut want = String::new();
    for i in 0..50 {
        want.push_str(&format!("+OK\r\n${}\r\n{i}\r\n", i.to_string().len()));
    }
    want.push_str("+OK\r\n");
    assert_eq!(String::from_utf8(reply).unwrap(), want);

    let mut request = String::new();
    for i in 0..50 {
        request.push_str(&format!("get k{i}\r\n"));
    }
    request.push_str("quit\r\n");
    let reply = exchange(keyway.memcache_addr.unwrap(), request.as_bytes()).await;
    assert_eq!(
        String::from_utf8(reply).unwrap().matches("END\r\n").count(),
        50
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_reads_its_replies_is_disconnected_and_others_go_on() {
    let keyway = start_keyway(&with_limits(
        "max_output_buffer = \"64KiB\"\nclient_write_timeout_seconds = 1\nitem_size = \"1MiB\"",
    ))
    .await;
    let memcache = keyway.memcache_addr.unwrap();
    let value = "x".repeat(500_000);
    let stored = exchange(
        memcache,
        format!("set big 0 0 {}\r\n{value}\r\nquit\r\n", value.len()).as_bytes(),
    )
    .await;
    assert_eq!(stored, b"STORED\r\n");

    // 400 gets of a 500 KB value: 200 MB of replies, never read.
    let mut greedy = TcpStream::connect(memcache).await.unwrap();
    let gets = "get big\r\n".repeat(400);
    greedy.write_all(gets.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let (got, closed) = read_until_closed(&mut greedy, Duration::from_secs(10)).await;
    assert!(closed, "the server closed the connection");
    assert!(
        got.len() < 400 * value.len() / 4,
        "most replies were never produced: {} bytes",
        got.len()
    );
    println!(
        "non-reading client: disconnected; {} of {} reply bytes had been produced (read out in {:?})",
        got.len(),
        400 * value.len(),
        started.elapsed()
    );
    // Everyone else is served.
    assert_eq!(
        &exchange(memcache, b"version\r\nquit\r\n").await[..8],
        b"VERSION "
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_client_is_disconnected_and_a_busy_one_is_not() {
    let keyway = start_keyway(&with_limits("idle_timeout_seconds = 1")).await;
    let resp = keyway.resp_addr.unwrap();
    let mut idle = TcpStream::connect(resp).await.unwrap();
    let mut busy = TcpStream::connect(resp).await.unwrap();
    let started = Instant::now();
    for _ in 0..8 {
        busy.write_all(b"PING\r\n").await.unwrap();
        let mut pong = [0u8; 7];
        busy.read_exact(&mut pong).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(2));
    let (got, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(got.is_empty() && closed, "the idle client was closed");
    busy.write_all(b"PING\r\n").await.unwrap();
    let mut pong = [0u8; 7];
    busy.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
}

/// Shutdown answers what a client has sent and closes its connection, also
/// for one that never stops sending (its next requests are always there
/// when the last are answered, so the wait for new bytes never waits): in
/// well under `shutdown_grace_seconds`, not at its end.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_a_client_that_never_stops_sending() {
    let keyway = start_keyway(&with_limits("shutdown_grace_seconds = 30")).await;
    let stream = TcpStream::connect(keyway.resp_addr.unwrap()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let flood = tokio::spawn(async move {
        let pings = b"PING\r\n".repeat(1000);
        while writer.write_all(&pings).await.is_ok() {}
    });
    let replies = tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        let mut read = 0;
        while let Ok(n @ 1..) = reader.read(&mut buf).await {
            read += n;
        }
        read
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(Duration::from_secs(10), keyway.shutdown())
        .await
        .expect("shut down long before the 30 s grace");
    let read = tokio::time::timeout(Duration::from_secs(5), replies)
        .await
        .expect("the connection closed")
        .unwrap();
    assert!(read >= b"+PONG\r\n".len(), "{read} bytes of replies");
    flood.abort();
}
