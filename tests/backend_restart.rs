//! A backend killed and restarted under traffic: while it is down every
//! request gets an error within the configured timeouts (no hang), and once
//! it is back requests succeed again on their own (reconnection). And a SQL
//! backend that is down when Keyway starts: Keyway starts anyway, and the
//! route works once the database is up.

mod common;

use std::time::{Duration, Instant};

use common::{
    free_port, start_keyway, start_memcached_at, start_private_postgres, start_redis_at, External,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest a request may take while the backend is down: the connect
/// timeout below, plus scheduling slack.
const NO_HANG: Duration = Duration::from_millis(1500);

struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    /// Sends a SET over RESP and returns its one-line reply and how long it took.
    async fn set(&mut self, i: usize) -> (String, Duration) {
        let started = Instant::now();
        let request = format!("SET restart:key v{i}\r\n");
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_line(&mut line))
            .await
            .expect("a reply, not a hang")
            .unwrap();
        (line.trim_end().to_string(), started.elapsed())
    }
}

async fn restart_under_traffic(url: &str, port: u16, start: fn(u16) -> External) {
    let server = start(port);
    let config = format!(
        "[backends.b]\nurl = \"{url}\"\nconnect_timeout_ms = 300\nrequest_timeout_ms = 500\n\
         [[routes]]\nglob = \"*\"\nbackend = \"b\"\n"
    );
    let keyway = start_keyway(&config).await;
    let stream = TcpStream::connect(keyway.resp_addr.unwrap()).await.unwrap();
    let mut client = Client {
        stream: BufReader::new(stream),
    };
    for i in 0..50 {
        assert_eq!(client.set(i).await.0, "+OK");
    }

    drop(server);
    let down = Instant::now();
    let mut errors = 0;
    while down.elapsed() < Duration::from_secs(2) {
        let (reply, took) = client.set(0).await;
        assert!(reply.starts_with("-ERR backend"), "{reply}");
        assert!(
            took < NO_HANG,
            "a request took {took:?} while the backend was down"
        );
        errors += 1;
    }
    assert!(errors >= 2, "{errors}");

    let _server = start(port);
    let back = Instant::now();
    loop {
        let (reply, _) = client.set(1).await;
        if reply == "+OK" {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "still failing 5 s after the backend came back: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..50 {
        assert_eq!(client.set(i).await.0, "+OK");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn memcached_restarted_under_traffic() {
    let port = free_port();
    restart_under_traffic(
        &format!("memcached://127.0.0.1:{port}"),
        port,
        start_memcached_at,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_under_traffic() {
    let port = free_port();
    restart_under_traffic(&format!("redis://127.0.0.1:{port}"), port, start_redis_at).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_down_at_start_then_up() {
    let port = free_port();
    let config = format!(
        "[backends.b]\nurl = \"postgres://postgres@127.0.0.1:{port}/postgres\"\n\
         connect_timeout_ms = 300\nrequest_timeout_ms = 1000\n\
         [[routes]]\nglob = \"*\"\nbackend = \"b\"\n"
    );
    let keyway = start_keyway(&config).await;
    let stream = TcpStream::connect(keyway.resp_addr.unwrap()).await.unwrap();
    let mut client = Client {
        stream: BufReader::new(stream),
    };
    for i in 0..3 {
        let (reply, took) = client.set(i).await;
        assert!(reply.starts_with("-ERR backend postgres"), "{reply}");
        assert!(
            took < NO_HANG,
            "a request took {took:?} while PostgreSQL was down"
        );
    }

    let _postgres = start_private_postgres(port);
    let up = Instant::now();
    loop {
        let (reply, _) = client.set(7).await;
        if reply == "+OK" {
            break;
        }
        assert!(
            up.elapsed() < Duration::from_secs(10),
            "still failing 10 s after PostgreSQL came up: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..20 {
        assert_eq!(client.set(i).await.0, "+OK");
    }
}
