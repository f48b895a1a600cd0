//! `redis-sentinel://` backends against real Redis Sentinel: a primary, a
//! replica and three sentinels (Debian's redis-server and redis-sentinel).
//! Keyway asks the sentinels for the master, follows a `SENTINEL FAILOVER`
//! and a primary killed under traffic; every request is answered (a value
//! or an error) within the request timeout, writes reach the new primary
//! once the sentinels have promoted it, and the figures are printed.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    exchange, free_port, kill, start_keyway, start_redis_at, start_redis_sentinel, External,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MASTER: &str = "mymaster";

struct Topology {
    servers: Vec<External>,
    sentinels: Vec<External>,
    _dir: tempfile::TempDir,
}

/// One command's reply, read whole (redis-sentinel 7.0 does not close on QUIT).
async fn ask(addr: SocketAddr, command: &str) -> String {
    use keyway_protocol::resp::{frame_backend_reply, Version};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = bytes::BytesMut::new();
    loop {
        if let Some(reply) = frame_backend_reply(&mut buf, 1 << 20, Version::Resp2).unwrap() {
            return String::from_utf8_lossy(&reply).into_owned();
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read_buf(&mut buf))
            .await
            .expect("a reply in time")
            .unwrap();
        assert!(n > 0, "{addr} closed the connection");
    }
}

/// The port the sentinels name as master now (they may disagree briefly).
async fn master_port(sentinel: SocketAddr) -> Option<u16> {
    let reply = ask(
        sentinel,
        &format!("SENTINEL get-master-addr-by-name {MASTER}"),
    )
    .await;
    reply.split("\r\n").nth(4)?.parse().ok()
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut ready: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn topology() -> Topology {
    let dir = tempfile::tempdir().unwrap();
    let primary = start_redis_at(free_port());
    let replica_port = free_port();
    let replica = common::start_redis_on(
        replica_port,
        &["--replicaof", "127.0.0.1", &primary.addr.port().to_string()],
    );
    let mut sentinels = Vec::new();
    for i in 0..3 {
        let port = free_port();
        let conf = dir.path().join(format!("sentinel-{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor {MASTER} 127.0.0.1 {} 2\n\
                 sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n",
                primary.addr.port()
            ),
        )
        .unwrap();
        sentinels.push(start_redis_sentinel(&conf, port));
    }
    let first = sentinels[0].addr;
    wait_until("the replica in sync and seen by every sentinel", || async {
        let info = ask(replica.addr, "INFO replication").await;
        let mut seen = info.contains("master_link_status:up");
        for sentinel in &sentinels {
            let replicas = ask(sentinel.addr, &format!("SENTINEL replicas {MASTER}")).await;
            let others = ask(sentinel.addr, &format!("SENTINEL sentinels {MASTER}")).await;
            seen &= replicas.starts_with("*1") && others.starts_with("*2");
        }
        seen && master_port(first).await == Some(primary.addr.port())
    })
    .await;
    Topology {
        servers: vec![primary, replica],
        sentinels,
        _dir: dir,
    }
}

fn sentinel_url(topology: &Topology) -> String {
    let hosts: Vec<String> = topology
        .sentinels
        .iter()
        .map(|s| s.addr.to_string())
        .collect();
    format!("redis-sentinel://{}/{MASTER}", hosts.join(","))
}

/// Writes `set w<i> <i>` through Keyway one after another until stopped,
/// each on the same connection, counting acknowledgements and errors and
/// noting when the first error and the first success after it came.
struct Traffic {
    stop: AtomicBool,
    acked: std::sync::Mutex<Vec<usize>>,
    errors: AtomicUsize,
    slowest_ms: AtomicUsize,
    first_error: std::sync::Mutex<Option<Instant>>,
    recovered: std::sync::Mutex<Option<Instant>>,
}

impl Traffic {
    fn new() -> Arc<Self> {
        Arc::new(Traffic {
            stop: AtomicBool::new(false),
            acked: Default::default(),
            errors: AtomicUsize::new(0),
            slowest_ms: AtomicUsize::new(0),
            first_error: Default::default(),
            recovered: Default::default(),
        })
    }
}

async fn write_loop(addr: SocketAddr, traffic: Arc<Traffic>) {
    write_loop_as(addr, traffic, "w").await
}

/// `write_loop` with keys `<prefix><i>`.
async fn write_loop_as(addr: SocketAddr, traffic: Arc<Traffic>, prefix: &'static str) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut i = 0;
    while !traffic.stop.load(Ordering::Relaxed) && i < 200_000 {
        let started = Instant::now();
        let request = format!("set {prefix}{i} 0 0 {}\r\n{i}\r\n", i.to_string().len());
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            let mut byte = [0u8; 1];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
                .await
                .expect("every request is answered")
                .unwrap();
            assert_eq!(n, 1, "Keyway closed the connection");
            line.push(byte[0]);
        }
        let took = started.elapsed().as_millis() as usize;
        traffic.slowest_ms.fetch_max(took, Ordering::Relaxed);
        if line == b"STORED\r\n" {
            traffic.acked.lock().unwrap().push(i);
            let errored = traffic.first_error.lock().unwrap().is_some();
            let mut recovered = traffic.recovered.lock().unwrap();
            if errored && recovered.is_none() {
                *recovered = Some(Instant::now());
            }
        } else {
            traffic.errors.fetch_add(1, Ordering::Relaxed);
            traffic
                .first_error
                .lock()
                .unwrap()
                .get_or_insert(Instant::now());
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs traffic through a failover `cause` starts; returns the report line.
async fn through_failover(
    name: &str,
    topology: &mut Topology,
    cause: impl FnOnce(&mut Topology),
) -> String {
    let keyway = start_keyway(&format!(
        "[backends.ha]\nurl = \"{}\"\nconnect_timeout_ms = 300\nrequest_timeout_ms = 500\n\
         [[routes]]\nglob = \"*\"\nbackend = \"ha\"\n",
        sentinel_url(topology)
    ))
    .await;
    let old = master_port(topology.sentinels[0].addr).await.unwrap();
    let traffic = Traffic::new();
    let writer = tokio::spawn(write_loop(keyway.memcache_addr.unwrap(), traffic.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    cause(topology);
    let first = topology.sentinels[1].addr;
    wait_until("a new master named by the sentinels", || async {
        master_port(first).await.is_some_and(|port| port != old)
    })
    .await;
    let promoted = started.elapsed();
    let new = master_port(first).await.unwrap();
    // Writes reach the new primary once it is promoted.
    let new_addr: SocketAddr = format!("127.0.0.1:{new}").parse().unwrap();
    let acked_before = traffic.acked.lock().unwrap().len();
    wait_until("acknowledged writes on the new primary", || {
        let traffic = traffic.clone();
        async move {
            let last = traffic.acked.lock().unwrap().last().copied();
            match last {
                Some(i) if traffic.acked.lock().unwrap().len() > acked_before => {
                    ask(new_addr, &format!("GET w{i}"))
                        .await
                        .contains(&format!("\r\n{i}\r\n"))
                }
                _ => false,
            }
        }
    })
    .await;
    let writes_on_new = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    traffic.stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    // Which acknowledged writes the new primary holds.
    let acked = traffic.acked.lock().unwrap().clone();
    let mut script = String::new();
    for i in &acked {
        script.push_str(&format!("get w{i}\r\n"));
    }
    script.push_str("quit\r\n");
    let through =
        String::from_utf8(exchange(keyway.memcache_addr.unwrap(), script.as_bytes()).await)
            .unwrap();
    let held = through.matches("VALUE ").count();
    let recovered = traffic
        .recovered
        .lock()
        .unwrap()
        .zip(*traffic.first_error.lock().unwrap())
        .map_or(0, |(ok, err)| ok.duration_since(err).as_millis());
    let report = format!(
        "{name}: acknowledged {}, held by the new primary {held}, errors {}, slowest reply {} ms, \
         sentinels promoted in {} ms, writes on the new primary after {} ms, first error to next success {recovered} ms",
        acked.len(),
        traffic.errors.load(Ordering::Relaxed),
        traffic.slowest_ms.load(Ordering::Relaxed),
        promoted.as_millis(),
        writes_on_new.as_millis(),
    );
    println!("{report}");
    // Never a hang past the request timeout (500 ms, plus scheduling slack).
    assert!(
        traffic.slowest_ms.load(Ordering::Relaxed) < 2000,
        "{report}"
    );
    report_held(name, held, acked.len(), &report);
    keyway.shutdown().await;
    report
}

fn report_held(name: &str, held: usize, acked: usize, report: &str) {
    if name == "SENTINEL FAILOVER" {
        // A coordinated failover waits for the replica to catch up: nothing
        // acknowledged is lost.
        assert_eq!(held, acked, "{report}");
    } else {
        // A killed primary loses what it acknowledged but had not yet sent
        // to its replica (redis replicates asynchronously): a handful at most.
        assert!(held + 50 >= acked, "{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keyway_follows_the_master_the_sentinels_name_through_failovers() {
    let mut topology = topology().await;
    // The sentinels' master answers through Keyway, and is the primary.
    let keyway = start_keyway(&format!(
        "[backends.ha]\nurl = \"{}\"\n[[routes]]\nglob = \"*\"\nbackend = \"ha\"\n",
        sentinel_url(&topology)
    ))
    .await;
    let reply = exchange(keyway.resp_addr.unwrap(), b"SET k v\r\nGET k\r\nQUIT\r\n").await;
    assert_eq!(reply, b"+OK\r\n$1\r\nv\r\n+OK\r\n");
    assert!(ask(topology.servers[0].addr, "GET k")
        .await
        .contains("\r\nv\r\n"));
    keyway.shutdown().await;

    let sentinel = topology.sentinels[0].addr;
    through_failover("SENTINEL FAILOVER", &mut topology, |_| {
        let mut conn = std::net::TcpStream::connect(sentinel).unwrap();
        use std::io::{Read, Write};
        conn.write_all(format!("SENTINEL FAILOVER {MASTER}\r\n").as_bytes())
            .unwrap();
        let mut reply = [0u8; 5];
        conn.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"+OK\r\n");
    })
    .await;

    // Wait until the demoted primary follows the new one, then kill the new one.
    let first = topology.sentinels[0].addr;
    wait_until("the old primary replicating the new one", || async {
        let replicas = ask(first, &format!("SENTINEL replicas {MASTER}")).await;
        replicas.starts_with("*1") && replicas.contains("slave")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let master = master_port(first).await.unwrap();
    through_failover("primary killed", &mut topology, move |topology| {
        let index = topology
            .servers
            .iter()
            .position(|s| s.addr.port() == master)
            .expect("the master is one of ours");
        kill(&mut topology.servers[index]);
    })
    .await;
}

/// Two hosts, each with its own Keyway over the same sentinels (one per
/// Horizon host): a `SENTINEL FAILOVER` under traffic through both. Both
/// follow the new master, nothing either acknowledged is lost, and what one
/// wrote the other reads.
#[tokio::test(flavor = "multi_thread")]
async fn two_keyways_over_one_set_of_sentinels_both_follow_a_failover() {
    let topology = topology().await;
    let config = format!(
        "[backends.ha]\nurl = \"{}\"\nconnect_timeout_ms = 300\nrequest_timeout_ms = 500\n\
         [[routes]]\nglob = \"*\"\nbackend = \"ha\"\n",
        sentinel_url(&topology)
    );
    let (a, b) = (start_keyway(&config).await, start_keyway(&config).await);
    let old = master_port(topology.sentinels[0].addr).await.unwrap();
    let (through_a, through_b) = (Traffic::new(), Traffic::new());
    let writers = [
        tokio::spawn(write_loop_as(
            a.memcache_addr.unwrap(),
            through_a.clone(),
            "a",
        )),
        tokio::spawn(write_loop_as(
            b.memcache_addr.unwrap(),
            through_b.clone(),
            "b",
        )),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sentinel = topology.sentinels[0].addr;
    let started = Instant::now();
    let accepted = ask(sentinel, &format!("SENTINEL FAILOVER {MASTER}")).await;
    assert_eq!(accepted, "+OK\r\n");
    let first = topology.sentinels[1].addr;
    wait_until("a new master named by the sentinels", || async {
        master_port(first).await.is_some_and(|port| port != old)
    })
    .await;
    let promoted = started.elapsed();
    // Both keep acknowledging writes after the promotion.
    let (acked_a, acked_b) = (
        through_a.acked.lock().unwrap().len(),
        through_b.acked.lock().unwrap().len(),
    );
    wait_until("writes through both Keyways after the failover", || async {
        through_a.acked.lock().unwrap().len() > acked_a + 50
            && through_b.acked.lock().unwrap().len() > acked_b + 50
    })
    .await;
    for traffic in [&through_a, &through_b] {
        traffic.stop.store(true, Ordering::Relaxed);
    }
    for writer in writers {
        writer.await.unwrap();
    }
    // Every write acknowledged through either Keyway, read through the other.
    let new = master_port(first).await.unwrap();
    let mut report = format!(
        "two Keyways, SENTINEL FAILOVER: promoted in {} ms",
        promoted.as_millis()
    );
    for (traffic, prefix, reader) in [(&through_a, "a", &b), (&through_b, "b", &a)] {
        let acked = traffic.acked.lock().unwrap().clone();
        let mut script = String::new();
        for i in &acked {
            script.push_str(&format!("get {prefix}{i}\r\n"));
        }
        script.push_str("quit\r\n");
        let read =
            String::from_utf8(exchange(reader.memcache_addr.unwrap(), script.as_bytes()).await)
                .unwrap();
        let held = read.matches("VALUE ").count();
        report.push_str(&format!(
            "; through {prefix}: acknowledged {}, errors {}, slowest reply {} ms, read through the other {held}",
            acked.len(),
            traffic.errors.load(Ordering::Relaxed),
            traffic.slowest_ms.load(Ordering::Relaxed),
        ));
        assert_eq!(held, acked.len(), "{report}");
        assert!(
            traffic.slowest_ms.load(Ordering::Relaxed) < 2000,
            "{report}"
        );
    }
    println!("{report} (new master :{new})");
    a.shutdown().await;
    b.shutdown().await;
}
