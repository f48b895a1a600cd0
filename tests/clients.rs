//! CLIENT LIST, KILL, PAUSE and REPLY: what redis-server answers, through
//! Keyway (one registry of the process's RESP clients).

mod common;

use std::time::{Duration, Instant};

use common::{exchange, start_keyway, start_redis, ONE_MEMORY_ROUTE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn call(stream: &mut TcpStream, line: &str) -> String {
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("a reply")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `field=value` of the CLIENT LIST line whose name is `name`.
fn field(list: &str, name: &str, field: &str) -> Option<String> {
    let line = list
        .lines()
        .find(|l| l.contains(&format!(" name={name} ")))?;
    line.split(' ')
        .find_map(|pair| pair.strip_prefix(&format!("{field}=")))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn client_list_shows_every_client_and_kill_ends_the_one_asked() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let addr = keyway.resp_addr.unwrap();
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    call(&mut first, "CLIENT SETNAME one").await;
    call(&mut second, "CLIENT SETNAME two").await;
    call(&mut third, "CLIENT SETNAME three").await;
    call(&mut third, "SELECT 4").await;
    let list = call(&mut first, "CLIENT LIST").await;
    assert_eq!(field(&list, "three", "db").as_deref(), Some("4"), "{list}");
    assert_eq!(field(&list, "one", "cmd").as_deref(), Some("client|list"));
    assert_eq!(field(&list, "two", "cmd").as_deref(), Some("NULL"));
    let two = field(&list, "two", "id").unwrap();
    let three = field(&list, "three", "addr").unwrap();
    let only = call(&mut first, &format!("CLIENT LIST ID {two}")).await;
    assert_eq!(only.matches("id=").count(), 1, "{only}");
    assert_eq!(
        call(&mut first, "CLIENT LIST TYPE pubsub").await,
        "$0\r\n\r\n"
    );
    assert_eq!(
        call(&mut first, "CLIENT LIST TYPE nope").await,
        "-ERR Unknown client type 'nope'\r\n"
    );
    // By id: one ended, its connection closed at once.
    assert_eq!(
        call(&mut first, &format!("CLIENT KILL ID {two}")).await,
        ":1\r\n"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
    // The old form, by address; then no such client.
    assert_eq!(
        call(&mut first, &format!("CLIENT KILL {three}")).await,
        "+OK\r\n"
    );
    assert_eq!(
        call(&mut first, &format!("CLIENT KILL {three}")).await,
        "-ERR No such client\r\n"
    );
    // SKIPME yes (the default) spares the asker.
    assert_eq!(call(&mut first, "CLIENT KILL USER default").await, ":0\r\n");
    let list = call(&mut first, "CLIENT LIST").await;
    assert_eq!(list.matches("id=").count(), 1, "{list}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_pause_write_holds_writes_back_and_reads_go_on() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let addr = keyway.resp_addr.unwrap();
    let mut admin = TcpStream::connect(addr).await.unwrap();
    let mut app = TcpStream::connect(addr).await.unwrap();
    assert_eq!(call(&mut admin, "CLIENT PAUSE 400 WRITE").await, "+OK\r\n");
    let started = Instant::now();
    assert_eq!(call(&mut app, "GET k").await, "$-1\r\n");
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(call(&mut app, "SET k v").await, "+OK\r\n");
    assert!(started.elapsed() >= Duration::from_millis(350));
    // UNPAUSE ends a pause at once (under PAUSE ALL it would wait with the
    // rest, as on redis-server).
    assert_eq!(call(&mut admin, "CLIENT PAUSE 5000 WRITE").await, "+OK\r\n");
    assert_eq!(call(&mut admin, "CLIENT UNPAUSE").await, "+OK\r\n");
    let started = Instant::now();
    assert_eq!(call(&mut app, "SET k w").await, "+OK\r\n");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(call(&mut app, "GET k").await, "$1\r\nw\r\n");
    assert_eq!(
        call(&mut admin, "CLIENT PAUSE soon").await,
        "-ERR timeout is not an integer or out of range\r\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_reply_drops_replies_as_redis_does() {
    let redis = start_redis();
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let script =
        b"CLIENT REPLY OFF\r\nSET a 1\r\nGET a\r\nCLIENT REPLY SKIP\r\nCLIENT REPLY ON\r\n\
                   GET a\r\nCLIENT REPLY SKIP\r\nGET a\r\nGET a\r\nCLIENT REPLY bogus\r\nQUIT\r\n";
    let want = exchange(redis.addr, script).await;
    let got = exchange(keyway.resp_addr.unwrap(), script).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
}
