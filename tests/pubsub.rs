//! Pub/sub, MONITOR and CLIENT TRACKING through Keyway. Pub/sub on routes that reach one
//! redis server goes to that redis on a connection of the subscriber's own:
//! the same dialogue (subscribe, publish from another client, PING and
//! other commands while subscribed, unsubscribe) gives the same bytes
//! through Keyway as straight to a real redis-server, in RESP2 and RESP3.
//! MONITOR shows every client's commands, whichever route serves them.
//! A tracking client is told of changes as redis tells its own clients.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{kill, show, start_keyway, start_redis, External};
use keyway::server::Server;

/// Every key to one redis, except keys under `mem:` (memory).
async fn keyway_before(redis: &External, extra: &str) -> Server {
    start_keyway(&format!(
        "{extra}[backends.redis]\nurl = \"redis://{}\"\n\
         [backends.memory]\nurl = \"memory://\"\ncapacity = \"8MiB\"\n\
         [[routes]]\nprefix = \"mem:\"\nbackend = \"memory\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"redis\"\nprotected = false\n",
        redis.addr
    ))
    .await
}

/// Who sends a step of a dialogue: the subscriber or another client.
#[derive(Clone, Copy)]
enum Who {
    Subscriber,
    Publisher,
}
use Who::{Publisher, Subscriber};

/// Steps: (who sends, what); the subscriber's bytes are compared.
const DIALOGUE: &[(Who, &str)] = &[
    (Subscriber, "SUBSCRIBE news sport"),
    (Publisher, "PUBLISH news hello"),
    (Subscriber, "PSUBSCRIBE n*"),
    (Publisher, "PUBLISH news again"),
    (Publisher, "PUBLISH nothing x"),
    (Subscriber, "PING"),
    (Subscriber, "PING there"),
    (Subscriber, "GET k"),
    (Subscriber, "PUBSUB NUMSUB news"),
    (Subscriber, "SUBSCRIBE"),
    (Subscriber, "UNSUBSCRIBE sport"),
    // (With several channels, their order is that of redis's hash table.)
    (Subscriber, "UNSUBSCRIBE"),
    (Publisher, "PUBLISH news unheard"),
    (Publisher, "PUBLISH nx heard"),
    (Subscriber, "SSUBSCRIBE shard"),
    (Publisher, "SPUBLISH shard piece"),
    (Subscriber, "PUNSUBSCRIBE"),
    (Subscriber, "SUNSUBSCRIBE shard"),
    (Subscriber, "PING"),
    (Subscriber, "UNSUBSCRIBE gone"),
    (Subscriber, "SET k v"),
    (Subscriber, "GET k"),
];

/// Reads what `stream` sends until it has sent `len` bytes, or (`len`
/// unknown) until it is quiet for a while.
async fn read_step(stream: &mut TcpStream, len: Option<usize>) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0; 4096];
    loop {
        if len.is_some_and(|len| got.len() >= len) {
            return got;
        }
        let wait = match len {
            Some(_) => Duration::from_secs(5),
            None => Duration::from_millis(300),
        };
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return got,
        }
    }
}

/// Runs the dialogue at `addr`; the subscriber's bytes at each step. With
/// `lengths` (redis's own), each step is read to that length.
async fn dialogue(addr: SocketAddr, resp3: bool, lengths: Option<&[usize]>) -> Vec<Vec<u8>> {
    let mut subscriber = TcpStream::connect(addr).await.unwrap();
    let mut publisher = TcpStream::connect(addr).await.unwrap();
    if resp3 {
        subscriber.write_all(b"HELLO 3\r\n").await.unwrap();
        read_step(&mut subscriber, None).await;
    }
    publisher.write_all(b"DEL k\r\n").await.unwrap();
    read_step(&mut publisher, None).await;
    let mut steps = Vec::new();
    for (i, (who, line)) in DIALOGUE.iter().enumerate() {
        let command = format!("{line}\r\n");
        match who {
            Subscriber => subscriber.write_all(command.as_bytes()).await.unwrap(),
            Publisher => {
                publisher.write_all(command.as_bytes()).await.unwrap();
                read_step(&mut publisher, Some(4)).await;
            }
        }
        steps.push(read_step(&mut subscriber, lengths.map(|l| l[i])).await);
    }
    steps
}

/// The dialogue at redis (`direct`) and through Keyway give the subscriber
/// the same bytes at every step, in RESP2 and in RESP3.
async fn dialogues_match(direct: SocketAddr, keyway: SocketAddr) {
    for resp3 in [false, true] {
        let want = dialogue(direct, resp3, None).await;
        let lengths: Vec<usize> = want.iter().map(Vec::len).collect();
        let got = dialogue(keyway, resp3, Some(&lengths)).await;
        for (i, (got, want)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                show(got),
                show(want),
                "resp3: {resp3}, step {i}: {:?}",
                DIALOGUE[i].1
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pub_sub_through_keyway_is_redis_byte_for_byte() {
    let direct = start_redis();
    let behind = start_redis();
    let keyway = keyway_before(&behind, "").await;
    dialogues_match(direct.addr, keyway.resp_addr.unwrap()).await;
}

/// Routes that reach no redis: Keyway's own pub/sub answers as redis does.
#[tokio::test(flavor = "multi_thread")]
async fn pub_sub_on_routes_without_redis_is_redis_byte_for_byte() {
    let direct = start_redis();
    let keyway = start_keyway(
        "[backends.memory]\nurl = \"memory://\"\ncapacity = \"8MiB\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"memory\"\n",
    )
    .await;
    dialogues_match(direct.addr, keyway.resp_addr.unwrap()).await;
    let mut client = TcpStream::connect(keyway.resp_addr.unwrap()).await.unwrap();
    let mut redis = TcpStream::connect(direct.addr).await.unwrap();
    for line in [
        "PUBSUB HELP",
        "PUBSUB CHANNELS a b",
        "PUBSUB NUMPAT x",
        "PUBSUB NOPE",
        "PUBSUB",
        "PUBLISH a",
        "PUBSUB NUMSUB x y",
        "PUBSUB SHARDNUMSUB",
        "PUBSUB CHANNELS",
        "PUBSUB NUMPAT",
    ] {
        assert_eq!(
            call(&mut client, line).await,
            call(&mut redis, line).await,
            "{line}"
        );
    }
}

async fn call(stream: &mut TcpStream, line: &str) -> String {
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("a reply")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Reads until `text` has arrived (or fails after 5 s).
async fn read_until(stream: &mut TcpStream, text: &str) -> String {
    let mut got = String::new();
    let mut buf = vec![0; 4096];
    while !got.contains(text) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {text:?} in {got:?}"))
            .unwrap();
        assert!(n > 0, "closed before {text:?}: {got:?}");
        got += &String::from_utf8_lossy(&buf[..n]);
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn monitor_shows_every_clients_commands_on_every_route() {
    let behind = start_redis();
    let keyway = keyway_before(&behind, "").await;
    let addr = keyway.resp_addr.unwrap();
    let mut monitor = TcpStream::connect(addr).await.unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    assert_eq!(call(&mut monitor, "MONITOR").await, "+OK\r\n");
    let local = client.local_addr().unwrap();
    call(&mut client, "SELECT 2").await;
    call(&mut client, "SET mem:a \"x\\ty\"").await;
    call(&mut client, "SET k v").await;
    call(&mut client, "AUTH someone secret").await;
    call(&mut client, "CONFIG GET maxmemory").await;
    call(&mut client, "GET k").await;
    let seen = read_until(&mut monitor, "\"GET\" \"k\"").await;
    let lines: Vec<&str> = seen.lines().collect();
    let tail = |line: &str| line.split_once(' ').map(|(_, t)| t.to_string()).unwrap();
    // Time, database and client as redis writes them; memory and redis
    // routes alike; passwords redacted, CONFIG not shown.
    assert!(lines[0].starts_with('+'), "{seen}");
    assert_eq!(tail(lines[0]), format!("[0 {local}] \"SELECT\" \"2\""));
    assert_eq!(
        tail(lines[1]),
        format!("[2 {local}] \"SET\" \"mem:a\" \"x\\ty\"")
    );
    assert_eq!(tail(lines[2]), format!("[2 {local}] \"SET\" \"k\" \"v\""));
    assert_eq!(
        tail(lines[3]),
        format!("[2 {local}] \"AUTH\" \"(redacted)\" \"(redacted)\"")
    );
    assert_eq!(tail(lines[4]), format!("[2 {local}] \"GET\" \"k\""));
    // The monitor's own commands are answered; RESET ends it.
    assert_eq!(
        call(&mut monitor, "RESET").await.lines().last(),
        Some("+RESET")
    );
    call(&mut client, "GET after").await;
    assert_eq!(call(&mut monitor, "PING").await, "+PONG\r\n");
}

/// What redis forgets when it goes away: a subscriber's connection closes,
/// so that its client subscribes again (as redis-py does).
#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_is_disconnected_when_its_redis_goes_away() {
    let mut behind = start_redis();
    let keyway = keyway_before(&behind, "").await;
    let mut subscriber = TcpStream::connect(keyway.resp_addr.unwrap()).await.unwrap();
    assert!(call(&mut subscriber, "SUBSCRIBE ch")
        .await
        .ends_with(":1\r\n"));
    kill(&mut behind);
    let mut buf = vec![0; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), subscriber.read(&mut buf))
        .await
        .expect("the subscriber's connection ends");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

/// A subscriber holds one of limits.max_pinned_connections until it has
/// unsubscribed from everything; CLIENT LIST shows what it listens to.
#[tokio::test(flavor = "multi_thread")]
async fn subscribers_are_bounded_and_shown() {
    let behind = start_redis();
    let keyway = keyway_before(&behind, "[limits]\nmax_pinned_connections = 1\n").await;
    let addr = keyway.resp_addr.unwrap();
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut other = TcpStream::connect(addr).await.unwrap();
    read_until(&mut first, "").await;
    first.write_all(b"SUBSCRIBE a b\r\n").await.unwrap();
    read_until(&mut first, ":2\r\n").await;
    let list = call(&mut other, "CLIENT LIST").await;
    assert!(
        list.contains("flags=P db=0 sub=2 psub=0 ssub=0") && list.contains("cmd=subscribe"),
        "{list}"
    );
    let refused = call(&mut second, "SUBSCRIBE c").await;
    assert!(
        refused.contains("limits.max_pinned_connections"),
        "{refused}"
    );
    first.write_all(b"UNSUBSCRIBE\r\n").await.unwrap();
    read_until(&mut first, ":0\r\n").await;
    assert!(call(&mut second, "SUBSCRIBE c").await.ends_with(":1\r\n"));
    // The first client is a plain one again.
    assert_eq!(call(&mut first, "PING").await, "+PONG\r\n");
}

/// A subscriber that reads nothing while messages pour in (Keyway's own
/// pub/sub) is unsubscribed and disconnected once broker::QUEUE messages
/// wait for it, rather than held in memory without bound.
#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_that_falls_behind_is_dropped() {
    let keyway = start_keyway(
        "[backends.memory]\nurl = \"memory://\"\ncapacity = \"8MiB\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"memory\"\n",
    )
    .await;
    let addr = keyway.resp_addr.unwrap();
    let mut subscriber = TcpStream::connect(addr).await.unwrap();
    let mut publisher = TcpStream::connect(addr).await.unwrap();
    assert!(call(&mut subscriber, "SUBSCRIBE flood")
        .await
        .ends_with(":1\r\n"));
    let payload = "x".repeat(4096);
    let batch = format!("PUBLISH flood {payload}\r\n").repeat(100);
    let mut dropped = false;
    // At most 400 MiB of messages (kernel buffers hold a few MiB).
    for _ in 0..1000 {
        publisher.write_all(batch.as_bytes()).await.unwrap();
        let replies = read_until(&mut publisher, "\r\n").await;
        let mut more = replies;
        while more.matches("\r\n").count() < 100 {
            more += &read_until(&mut publisher, "\r\n").await;
        }
        if more.ends_with(":0\r\n") {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the subscriber was never dropped");
    assert_eq!(
        call(&mut publisher, "PUBSUB NUMSUB flood").await,
        "*2\r\n$5\r\nflood\r\n:0\r\n"
    );
    // Its connection ends once what was queued is written.
    let mut buf = vec![0; 1 << 16];
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match subscriber.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the subscriber's connection did not end");
}

/// CLIENT TRACKING where every route goes to one redis: a RESP3 client is
/// told when a key it read changes (the same push bytes as redis's own
/// client gets), and with REDIRECT a RESP2 client subscribed to
/// `__redis__:invalidate` through Keyway gets the message.
#[tokio::test(flavor = "multi_thread")]
async fn client_tracking_invalidates_as_redis_does() {
    let direct = start_redis();
    let behind = start_redis();
    let keyway = start_keyway(&format!(
        "[backends.redis]\nurl = \"redis://{}\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"redis\"\nprotected = false\n",
        behind.addr
    ))
    .await;
    let invalidation = async |addr: SocketAddr| {
        let mut tracker = TcpStream::connect(addr).await.unwrap();
        let mut writer = TcpStream::connect(addr).await.unwrap();
        read_until(&mut tracker, "").await;
        call(&mut writer, "SET tk v1").await;
        let hello = call(&mut tracker, "HELLO 3").await;
        assert!(hello.contains("proto"), "{hello}");
        assert_eq!(call(&mut tracker, "CLIENT TRACKING ON").await, "+OK\r\n");
        assert_eq!(call(&mut tracker, "GET tk").await, "$2\r\nv1\r\n");
        assert_eq!(call(&mut writer, "SET tk v2").await, "+OK\r\n");
        let pushed = read_until(&mut tracker, "tk\r\n").await;
        let info = call(&mut tracker, "CLIENT TRACKINGINFO").await;
        let off = call(&mut tracker, "CLIENT TRACKING OFF").await;
        call(&mut tracker, "GET tk").await;
        call(&mut writer, "SET tk v3").await;
        let after = call(&mut tracker, "PING").await;
        (pushed, info, off, after)
    };
    let want = invalidation(direct.addr).await;
    let got = invalidation(keyway.resp_addr.unwrap()).await;
    assert_eq!(got, want);
    assert_eq!(want.0, ">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\ntk\r\n");

    // RESP2: invalidations redirected to a subscriber through Keyway.
    let addr = keyway.resp_addr.unwrap();
    let mut subscriber = TcpStream::connect(addr).await.unwrap();
    let mut tracker = TcpStream::connect(addr).await.unwrap();
    let mut writer = TcpStream::connect(addr).await.unwrap();
    let id = call(&mut subscriber, "CLIENT ID").await;
    let id = id.trim_start_matches(':').trim();
    read_until_sent(&mut subscriber, "SUBSCRIBE __redis__:invalidate", ":1\r\n").await;
    let stranger = call(&mut tracker, "CLIENT TRACKING ON REDIRECT 999999").await;
    assert!(stranger.contains("holds no redis connection"), "{stranger}");
    assert_eq!(
        call(&mut tracker, &format!("CLIENT TRACKING ON REDIRECT {id}")).await,
        "+OK\r\n"
    );
    assert_eq!(
        call(&mut tracker, "CLIENT GETREDIR").await,
        format!(":{id}\r\n")
    );
    call(&mut tracker, "GET tk").await;
    call(&mut writer, "SET tk v4").await;
    let message = read_until(&mut subscriber, "tk\r\n").await;
    assert_eq!(
        message,
        "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$2\r\ntk\r\n"
    );
    // Tracking needs every key on that redis.
    let memory = start_keyway(
        "[backends.memory]\nurl = \"memory://\"\ncapacity = \"8MiB\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"memory\"\n",
    )
    .await;
    let mut client = TcpStream::connect(memory.resp_addr.unwrap()).await.unwrap();
    let refused = call(&mut client, "CLIENT TRACKING ON").await;
    assert!(refused.contains("needs every route"), "{refused}");
}

async fn read_until_sent(stream: &mut TcpStream, line: &str, text: &str) -> String {
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    read_until(stream, text).await
}

/// Two Keyways in front of one redis (a memory tier over it, as a sidecar
/// runs): a message published through one reaches a subscriber on the
/// other, and redis's own clients, because both publish on that redis.
#[tokio::test(flavor = "multi_thread")]
async fn publishers_and_subscribers_on_two_keyways_meet_on_their_redis() {
    let redis = start_redis();
    let tier = format!(
        "[backends.redis]\nurl = \"redis://{}\"\n\
         [backends.local]\nurl = \"memory://\"\ncapacity = \"8MiB\"\n\
         [policies.tier]\nkind = \"write-through\"\ncache = \"local\"\ndurable = \"redis\"\n\
         coherence = \"none\"\n\
         [[routes]]\nglob = \"*\"\npolicy = \"tier\"\n",
        redis.addr
    );
    let first = start_keyway(&tier).await;
    let second = start_keyway(&tier).await;
    let mut subscriber = TcpStream::connect(first.resp_addr.unwrap()).await.unwrap();
    let mut direct = TcpStream::connect(redis.addr).await.unwrap();
    let mut publisher = TcpStream::connect(second.resp_addr.unwrap()).await.unwrap();
    read_until_sent(&mut subscriber, "SUBSCRIBE news", ":1\r\n").await;
    read_until_sent(&mut direct, "SUBSCRIBE news", ":1\r\n").await;
    assert_eq!(call(&mut publisher, "PUBLISH news hello").await, ":2\r\n");
    let want = "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
    assert_eq!(read_until(&mut subscriber, "hello\r\n").await, want);
    assert_eq!(read_until(&mut direct, "hello\r\n").await, want);
    assert_eq!(
        call(&mut publisher, "PUBSUB NUMSUB news").await,
        "*2\r\n$4\r\nnews\r\n:2\r\n"
    );
}

/// limits.idle_timeout_seconds closes an idle client, not a subscriber
/// waiting for messages (redis exempts pub/sub clients from `timeout`).
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_subscriber_is_not_timed_out() {
    let keyway = start_keyway(
        "[limits]\nidle_timeout_seconds = 1\n\
         [backends.memory]\nurl = \"memory://\"\ncapacity = \"8MiB\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"memory\"\n",
    )
    .await;
    let addr = keyway.resp_addr.unwrap();
    let mut subscriber = TcpStream::connect(addr).await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    read_until_sent(&mut subscriber, "SUBSCRIBE news", ":1\r\n").await;
    assert_eq!(call(&mut idle, "PING").await, "+PONG\r\n");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut buf = [0; 64];
    let closed = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    let mut publisher = TcpStream::connect(addr).await.unwrap();
    assert_eq!(call(&mut publisher, "PUBLISH news late").await, ":1\r\n");
    assert!(read_until(&mut subscriber, "late\r\n")
        .await
        .ends_with("late\r\n"));
}
