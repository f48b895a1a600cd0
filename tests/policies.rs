//! Routing policies against real servers (memcached, SQLite): write-through,
//! migrate and `keyway migrate`, failover, replicate and shadow, with members
//! killed and restarted under traffic. What each member holds is checked on
//! the member itself: memcached over its own socket, SQLite through a second
//! Keyway with a plain route to the file.

mod common;

use std::path::Path;

use common::{exchange, free_port, start_keyway, start_memcached, start_memcached_at, External};
use keyway::server::Server;

/// One memcached text exchange on a fresh connection (`quit` appended).
async fn memcache(addr: std::net::SocketAddr, request: &str) -> String {
    let reply = exchange(addr, format!("{request}quit\r\n").as_bytes()).await;
    String::from_utf8(reply).unwrap()
}

/// Sends many pipelined sets and reads until all `count` are answered. No
/// `quit` at the end: memcached answering a long pipeline's `quit` can reset
/// the connection before the client has read every reply.
async fn store_all(addr: std::net::SocketAddr, sets: &str, count: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(sets.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let read_all = async {
        while reply.windows(8).filter(|w| w == b"STORED\r\n").count() < count {
            let mut chunk = [0u8; 16 * 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {}", String::from_utf8_lossy(&reply));
            reply.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read_all)
        .await
        .expect("every set answered");
}

/// The remaining TTL memcached reports for `key` (`mg key t`), or None on a miss.
async fn memcached_ttl(memcached: &External, key: &str) -> Option<i64> {
    let reply = memcache(memcached.addr, &format!("mg {key} t\r\n")).await;
    let ttl = reply.strip_prefix("HD t")?.trim_end();
    Some(ttl.parse().unwrap())
}

/// A Keyway with one plain route to the SQLite file: what the durable member holds.
async fn sqlite_view(dir: &Path) -> Server {
    start_keyway(&format!(
        "[backends.db]\nurl = \"sqlite://{}/items.sqlite3\"\n[[routes]]\nglob = \"*\"\nbackend = \"db\"\n",
        dir.display()
    ))
    .await
}

/// A memcached backend `mc` (short timeouts, so a dead one errs fast), a
/// SQLite backend `db`, and `policy` (named "p") as the catch-all route.
fn memcached_and_sqlite(memcached: &External, dir: &Path, policy: &str) -> String {
    format!(
        "[backends.mc]\nurl = \"memcached://{memcached}\"\nrequest_timeout_ms = 500\nconnect_timeout_ms = 300\n\
         [backends.db]\nurl = \"sqlite://{dir}/items.sqlite3\"\n\
         [policies.p]\n{policy}\n[[routes]]\nglob = \"*\"\npolicy = \"p\"\n",
        memcached = memcached.addr,
        dir = dir.display()
    )
}

fn write_through_config(memcached: &External, dir: &Path) -> String {
    memcached_and_sqlite(
        memcached,
        dir,
        "kind = \"write-through\"\ncache = \"mc\"\ndurable = \"db\"",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn write_through_writes_both_reads_the_cache_and_refills_it_with_the_remaining_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let memcached = start_memcached();
    let keyway = start_keyway(&write_through_config(&memcached, dir.path())).await;
    let kw = keyway.memcache_addr.unwrap();
    let durable = sqlite_view(dir.path()).await;
    let db = durable.memcache_addr.unwrap();

    // A set reaches both members, flags and TTL included.
    assert_eq!(
        memcache(kw, "set s 7 100 5\r\nhello\r\n").await,
        "STORED\r\n"
    );
    let hit = "VALUE s 7 5\r\nhello\r\nEND\r\n";
    assert_eq!(memcache(memcached.addr, "get s\r\n").await, hit);
    assert_eq!(memcache(db, "get s\r\n").await, hit);
    assert!(matches!(
        memcached_ttl(&memcached, "s").await,
        Some(98..=100)
    ));

    // The cache loses its copy (eviction): the read comes from the durable
    // member and puts the copy back with the TTL that remains.
    assert_eq!(
        memcache(memcached.addr, "delete s\r\n").await,
        "DELETED\r\n"
    );
    assert_eq!(memcache(kw, "get s\r\n").await, hit);
    assert!(matches!(
        memcached_ttl(&memcached, "s").await,
        Some(95..=100)
    ));

    // Writes that depend on the current item run on the durable member and
    // drop the cache's copy; the next read refills it with the result.
    assert_eq!(memcache(kw, "append s 0 0 1\r\n!\r\n").await, "STORED\r\n");
    assert_eq!(memcache(memcached.addr, "get s\r\n").await, "END\r\n");
    let appended = "VALUE s 7 6\r\nhello!\r\nEND\r\n";
    assert_eq!(memcache(kw, "get s\r\n").await, appended);
    assert_eq!(memcache(memcached.addr, "get s\r\n").await, appended);

    // cas with the id a cache hit gave.
    let gets = memcache(kw, "gets s\r\n").await;
    let cas: u64 = gets
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        memcache(kw, &format!("cas s 1 0 2 {cas}\r\nok\r\n")).await,
        "STORED\r\n"
    );
    assert_eq!(
        memcache(db, "get s\r\n").await,
        "VALUE s 1 2\r\nok\r\nEND\r\n"
    );
    assert_eq!(
        memcache(kw, &format!("cas s 1 0 2 {cas}\r\nno\r\n")).await,
        "EXISTS\r\n"
    );

    // A delete removes both.
    assert_eq!(memcache(kw, "delete s\r\n").await, "DELETED\r\n");
    assert_eq!(memcache(memcached.addr, "get s\r\n").await, "END\r\n");
    assert_eq!(memcache(db, "get s\r\n").await, "END\r\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn write_through_keeps_serving_from_the_durable_member_while_the_cache_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let memcached = start_memcached_at(port);
    let keyway = start_keyway(&write_through_config(&memcached, dir.path())).await;
    let kw = keyway.memcache_addr.unwrap();
    assert_eq!(memcache(kw, "set a 0 0 1\r\n1\r\n").await, "STORED\r\n");
    assert_eq!(memcache(kw, "set b 0 0 1\r\n2\r\n").await, "STORED\r\n");
    drop(memcached);

    assert_eq!(
        memcache(kw, "get a\r\n").await,
        "VALUE a 0 1\r\n1\r\nEND\r\n"
    );
    assert_eq!(memcache(kw, "set a 0 0 1\r\n3\r\n").await, "STORED\r\n");
    assert_eq!(memcache(kw, "delete b\r\n").await, "DELETED\r\n");
    assert_eq!(
        memcache(kw, "get a b\r\n").await,
        "VALUE a 0 1\r\n3\r\nEND\r\n"
    );

    // Back, empty: reads refill it from the truth.
    let memcached = start_memcached_at(port);
    let mut refilled = false;
    for _ in 0..50 {
        assert_eq!(
            memcache(kw, "get a b\r\n").await,
            "VALUE a 0 1\r\n3\r\nEND\r\n"
        );
        if memcache(memcached.addr, "get a\r\n").await == "VALUE a 0 1\r\n3\r\nEND\r\n" {
            refilled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refilled, "the cache was not refilled after it came back");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_copies_what_reads_find_in_the_old_store_and_deletes_from_both() {
    let dir = tempfile::tempdir().unwrap();
    let old = start_memcached();
    // What the site stored before the move: 50 keys with flags and a TTL.
    let mut sets = String::new();
    for i in 0..50 {
        sets.push_str(&format!("set k{i} {i} 300 3\r\nv{i:02}\r\n"));
    }
    store_all(old.addr, &sets, 50).await;

    let config = format!(
        r#"
[backends.old]
url = "memcached://{old}"
[backends.db]
url = "sqlite://{dir}/items.sqlite3"
[policies.moving]
kind = "migrate"
from = "old"
to = "db"
[[routes]]
glob = "*"
policy = "moving"
"#,
        old = old.addr,
        dir = dir.path().display()
    );
    let keyway = start_keyway(&config).await;
    let kw = keyway.memcache_addr.unwrap();
    let durable = sqlite_view(dir.path()).await;
    let db = durable.memcache_addr.unwrap();

    // Every key reads back through the route, and is then in the new store
    // with its flags; over RESP its TTL is the one that remained.
    for i in 0..50 {
        let want = format!("VALUE k{i} {i} 3\r\nv{i:02}\r\nEND\r\n");
        assert_eq!(memcache(kw, &format!("get k{i}\r\n")).await, want);
        assert_eq!(memcache(db, &format!("get k{i}\r\n")).await, want);
    }
    let ttl = exchange(durable.resp_addr.unwrap(), b"TTL k7\r\nQUIT\r\n").await;
    let ttl: i64 = String::from_utf8(ttl).unwrap()[1..]
        .split("\r\n")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((295..=300).contains(&ttl), "{ttl}");

    // New writes go to the new store only; deletes reach both.
    assert_eq!(memcache(kw, "set fresh 0 0 1\r\nx\r\n").await, "STORED\r\n");
    assert_eq!(memcache(old.addr, "get fresh\r\n").await, "END\r\n");
    assert_eq!(
        memcache(db, "get fresh\r\n").await,
        "VALUE fresh 0 1\r\nx\r\nEND\r\n"
    );
    assert_eq!(memcache(kw, "delete k3\r\n").await, "DELETED\r\n");
    assert_eq!(memcache(old.addr, "get k3\r\n").await, "END\r\n");
    assert_eq!(memcache(kw, "get k3\r\n").await, "END\r\n");

    // An incr on a key not yet copied works on the copied value.
    assert_eq!(
        memcache(old.addr, "set n 0 0 2\r\n41\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(memcache(kw, "incr n 1\r\n").await, "42\r\n");
    assert_eq!(
        memcache(db, "get n\r\n").await,
        "VALUE n 0 2\r\n42\r\nEND\r\n"
    );

    // With the old store gone, what was copied is still there.
    drop(old);
    assert_eq!(
        memcache(kw, "get k7\r\n").await,
        "VALUE k7 7 3\r\nv07\r\nEND\r\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_moves_to_the_next_member_marks_the_failed_one_down_and_brings_it_back() {
    let port = free_port();
    let primary = start_memcached_at(port);
    let fallback = start_memcached();
    let config = format!(
        r#"
[backends.primary]
url = "memcached://{primary}"
connect_timeout_ms = 300
request_timeout_ms = 500
[backends.fallback]
url = "memcached://{fallback}"
[policies.pair]
kind = "failover"
members = ["primary", "fallback"]
failures_to_mark_down = 2
probe_interval_ms = 100
fallback_ttl_seconds = 30
[[routes]]
glob = "*"
policy = "pair"
"#,
        primary = primary.addr,
        fallback = fallback.addr
    );
    let keyway = start_keyway(&config).await;
    let kw = keyway.memcache_addr.unwrap();

    assert_eq!(memcache(kw, "set a 0 0 1\r\n1\r\n").await, "STORED\r\n");
    assert_eq!(
        memcache(primary.addr, "get a\r\n").await,
        "VALUE a 0 1\r\n1\r\nEND\r\n"
    );
    assert_eq!(memcache(fallback.addr, "get a\r\n").await, "END\r\n");

    // The primary dies: requests go on, answered by the fallback, each
    // within the primary's timeouts; once marked down it is not waited for.
    drop(primary);
    for i in 0..6 {
        let started = std::time::Instant::now();
        let reply = memcache(kw, &format!("set b{i} 0 0 1\r\n{i}\r\n")).await;
        assert_eq!(reply, "STORED\r\n");
        assert!(started.elapsed() < std::time::Duration::from_millis(1200));
        if i >= 2 {
            assert!(
                started.elapsed() < std::time::Duration::from_millis(100),
                "{i}: {:?}",
                started.elapsed()
            );
        }
    }
    assert_eq!(
        policy_info(&keyway, "pair").await,
        "kind=failover,members_up=1,members_down=1"
    );
    // Sets on the fallback get its shorter TTL.
    assert!(matches!(
        memcached_ttl(&fallback, "b5").await,
        Some(28..=30)
    ));
    assert_eq!(
        memcache(kw, "get b5 a\r\n").await,
        "VALUE b5 0 1\r\n5\r\nEND\r\n"
    );

    // Back on the same port: the probe finds it and it takes requests again.
    let primary = start_memcached_at(port);
    let mut back = false;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(memcache(kw, "set c 0 0 1\r\nc\r\n").await, "STORED\r\n");
        if memcache(primary.addr, "get c\r\n").await == "VALUE c 0 1\r\nc\r\nEND\r\n" {
            back = true;
            break;
        }
    }
    assert!(back, "the primary was never used again after it came back");
    // A delete reaches every member that is up.
    assert_eq!(
        memcache(fallback.addr, "set c 0 0 1\r\nc\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(memcache(kw, "delete c\r\n").await, "DELETED\r\n");
    assert_eq!(memcache(fallback.addr, "get c\r\n").await, "END\r\n");
    assert_eq!(memcache(primary.addr, "get c\r\n").await, "END\r\n");
}

fn replicate_config(a: &External, dir: &Path, ack: &str) -> String {
    let policy = format!("kind = \"replicate\"\nmembers = [\"mc\", \"db\"]\nack = \"{ack}\"");
    memcached_and_sqlite(a, dir, &policy)
}

#[tokio::test(flavor = "multi_thread")]
async fn replicate_writes_every_member_and_reads_the_first_that_answers() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_memcached();
    let all = start_keyway(&replicate_config(&a, dir.path(), "all")).await;
    let first = start_keyway(&replicate_config(&a, dir.path(), "first")).await;
    let durable = sqlite_view(dir.path()).await;
    let db = durable.memcache_addr.unwrap();
    let kw = all.memcache_addr.unwrap();

    assert_eq!(memcache(kw, "set r 3 0 2\r\nhi\r\n").await, "STORED\r\n");
    let hit = "VALUE r 3 2\r\nhi\r\nEND\r\n";
    assert_eq!(memcache(a.addr, "get r\r\n").await, hit);
    assert_eq!(memcache(db, "get r\r\n").await, hit);
    assert_eq!(
        memcache(kw, "incr r 1\r\n").await,
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
    assert_eq!(memcache(kw, "delete r\r\n").await, "DELETED\r\n");
    assert_eq!(memcache(a.addr, "get r\r\n").await, "END\r\n");
    assert_eq!(memcache(db, "get r\r\n").await, "END\r\n");

    // One member down: ack = "all" refuses to acknowledge a write not every
    // member has; ack = "first" acknowledges it; reads come from the other.
    assert_eq!(memcache(kw, "set s 0 0 1\r\n1\r\n").await, "STORED\r\n");
    drop(a);
    let refused = memcache(kw, "set s 0 0 1\r\n2\r\n").await;
    assert!(
        refused.starts_with("SERVER_ERROR backend memcached"),
        "{refused}"
    );
    assert_eq!(
        memcache(first.memcache_addr.unwrap(), "set t 0 0 1\r\n3\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(
        memcache(db, "get t\r\n").await,
        "VALUE t 0 1\r\n3\r\nEND\r\n"
    );
    assert_eq!(
        memcache(kw, "get t\r\n").await,
        "VALUE t 0 1\r\n3\r\nEND\r\n"
    );
}

/// INFO keyway's line for policy `name`.
async fn policy_info(keyway: &Server, name: &str) -> String {
    let reply = exchange(keyway.resp_addr.unwrap(), b"INFO keyway\r\nQUIT\r\n").await;
    let reply = String::from_utf8(reply).unwrap();
    reply
        .lines()
        .find_map(|line| line.strip_prefix(&format!("policy:{name},")))
        .unwrap_or_else(|| panic!("no policy line for {name} in {reply}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn shadow_serves_from_the_primary_mirrors_to_the_shadow_and_counts_mismatches() {
    let shadow = start_memcached();
    let config = format!(
        r#"
[backends.primary]
url = "memory://"
[backends.shadow]
url = "memcached://{shadow}"
connect_timeout_ms = 300
request_timeout_ms = 500
[policies.trial]
kind = "shadow"
primary = "primary"
shadow = "shadow"
[[routes]]
glob = "*"
policy = "trial"
"#,
        shadow = shadow.addr
    );
    let keyway = start_keyway(&config).await;
    let kw = keyway.memcache_addr.unwrap();
    assert_eq!(memcache(kw, "set k 1 0 1\r\na\r\n").await, "STORED\r\n");
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(200));
    settle().await;
    assert_eq!(
        memcache(shadow.addr, "get k\r\n").await,
        "VALUE k 1 1\r\na\r\nEND\r\n"
    );
    assert_eq!(
        memcache(kw, "get k\r\n").await,
        "VALUE k 1 1\r\na\r\nEND\r\n"
    );
    settle().await;
    assert_eq!(
        policy_info(&keyway, "trial").await,
        "kind=shadow,mirrored=2,mismatches=0,errors=0"
    );

    // The shadow diverges: the client still gets the primary's answer, and
    // the difference is counted.
    assert_eq!(
        memcache(shadow.addr, "set k 1 0 1\r\nz\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(
        memcache(kw, "get k\r\n").await,
        "VALUE k 1 1\r\na\r\nEND\r\n"
    );
    settle().await;
    assert_eq!(
        policy_info(&keyway, "trial").await,
        "kind=shadow,mirrored=3,mismatches=1,errors=0"
    );

    // The shadow dies: the primary's clients notice nothing.
    drop(shadow);
    for i in 0..5 {
        let started = std::time::Instant::now();
        assert_eq!(
            memcache(kw, &format!("set n{i} 0 0 1\r\n{i}\r\n")).await,
            "STORED\r\n"
        );
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(
        policy_info(&keyway, "trial").await,
        "kind=shadow,mirrored=8,mismatches=1,errors=5"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keyway_migrate_copies_every_live_key_of_a_memcached_pool_and_can_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let old = start_memcached();
    let mut sets = String::new();
    for i in 0..1200 {
        sets.push_str(&format!("set user:{i} {i} 600 4\r\n{i:04}\r\n"));
    }
    sets.push_str("set short 0 1 1\r\nx\r\n");
    store_all(old.addr, &sets, 1201).await;
    // Keys memcached holds under another name: a RESP key with a space, in db 3.
    let through = start_keyway(&format!(
        "[backends.old]\nurl = \"memcached://{}\"\n[[routes]]\nglob = \"*\"\nbackend = \"old\"\n",
        old.addr
    ))
    .await;
    // And one too long for memcached, which holds it in digest form.
    let long = "L".repeat(300);
    let reply = exchange(
        through.resp_addr.unwrap(),
        format!("SELECT 3\r\nSET \"a b\" spaced\r\nSET {long} whole\r\nQUIT\r\n").as_bytes(),
    )
    .await;
    assert_eq!(reply, b"+OK\r\n+OK\r\n+OK\r\n+OK\r\n");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await; // "short" expires

    let config = dir.path().join("keyway.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\nresp = \"127.0.0.1:0\"\n[runtime]\ndata_dir = \"{dir}\"\n\
             [backends.old]\nurl = \"memcached://{old}\"\n[backends.db]\nurl = \"sqlite://items.sqlite3\"\n\
             [policies.moving]\nkind = \"migrate\"\nfrom = \"old\"\nto = \"db\"\n\
             [[routes]]\nglob = \"*\"\npolicy = \"moving\"\n",
            dir = dir.path().display(),
            old = old.addr
        ),
    )
    .unwrap();
    let migrate = || common::keyway_migrate(&config, "moving");
    let first = migrate();
    assert!(
        first.starts_with("old -> db: listed 1202, copied 1202, already there 0,"),
        "{first}"
    );
    // Again: nothing left to copy.
    let again = migrate();
    assert!(again.contains(", copied 0, "), "{again}");

    let durable = sqlite_view(dir.path()).await;
    let db = durable.memcache_addr.unwrap();
    assert_eq!(
        memcache(db, "get user:0 user:1199 short\r\n").await,
        "VALUE user:0 0 4\r\n0000\r\nVALUE user:1199 1199 4\r\n1199\r\nEND\r\n"
    );
    let reply = exchange(
        durable.resp_addr.unwrap(),
        format!("SELECT 3\r\nGET \"a b\"\r\nGET {long}\r\nSELECT 0\r\nTTL user:5\r\nQUIT\r\n")
            .as_bytes(),
    )
    .await;
    let reply = String::from_utf8(reply).unwrap();
    assert!(
        reply.starts_with("+OK\r\n$6\r\nspaced\r\n$5\r\nwhole\r\n+OK\r\n:"),
        "{reply}"
    );
    let ttl: i64 = reply.split("\r\n").nth(6).unwrap()[1..].parse().unwrap();
    assert!((590..=600).contains(&ttl), "{ttl}");
}

/// A write loop's controls: stop it, and see how many replies it has had.
#[derive(Default)]
struct Traffic {
    stop: std::sync::atomic::AtomicBool,
    replies: std::sync::atomic::AtomicUsize,
}

impl Traffic {
    /// Waits until the loop has had `more` replies since the call: phases of
    /// a test span a number of requests, however fast the machine's disk is.
    async fn replies(&self, more: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let target = self.replies.load(Relaxed) + more;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.replies.load(Relaxed) < target {
            assert!(
                std::time::Instant::now() < deadline,
                "the write loop stalled"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Sets `prefix{i}` for i = 0.. on one connection until stopped, each on a
/// fresh request, recording which were acknowledged; every reply must come
/// within `bound` (no hang). Returns the acknowledged keys and the errors.
async fn write_loop(
    addr: std::net::SocketAddr,
    prefix: &'static str,
    traffic: std::sync::Arc<Traffic>,
    bound: std::time::Duration,
) -> (Vec<String>, usize) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut acked = Vec::new();
    let mut errors = 0;
    let mut stream = tokio::io::BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
    let mut i = 0;
    while !traffic.stop.load(std::sync::atomic::Ordering::Relaxed) {
        let key = format!("{prefix}{i}");
        i += 1;
        let started = std::time::Instant::now();
        let request = format!("set {key} 0 0 1\r\nv\r\n");
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        tokio::time::timeout(bound * 2, stream.read_line(&mut line))
            .await
            .expect("a reply, not a hang")
            .unwrap();
        assert!(started.elapsed() < bound, "{key}: {:?}", started.elapsed());
        traffic
            .replies
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if line == "STORED\r\n" {
            acked.push(key);
        } else {
            assert!(line.starts_with("SERVER_ERROR"), "{line}");
            errors += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    (acked, errors)
}

/// How many of `keys` read back through `addr`.
async fn readable(addr: std::net::SocketAddr, keys: &[String]) -> usize {
    let mut found = 0;
    for chunk in keys.chunks(100) {
        let reply = memcache(addr, &format!("get {}\r\n", chunk.join(" "))).await;
        found += reply.matches("VALUE ").count();
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn write_through_loses_no_acknowledged_write_while_its_cache_dies_and_returns() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let memcached = start_memcached_at(port);
    let keyway = start_keyway(&write_through_config(&memcached, dir.path())).await;
    let kw = keyway.memcache_addr.unwrap();
    let control = std::sync::Arc::new(Traffic::default());
    let bound = std::time::Duration::from_millis(1500);
    let traffic = tokio::spawn(write_loop(kw, "wt", control.clone(), bound));
    control.replies(20).await;
    drop(memcached);
    control.replies(20).await;
    let memcached = start_memcached_at(port);
    control.replies(20).await;
    control.stop();
    let (acked, errors) = traffic.await.unwrap();
    println!(
        "write-through under traffic: {} acknowledged, {errors} errors",
        acked.len()
    );
    assert!(acked.len() >= 60, "{}", acked.len());
    assert_eq!(errors, 0, "the durable member was up: no write should fail");
    assert_eq!(readable(kw, &acked).await, acked.len());
    let durable = sqlite_view(dir.path()).await;
    assert_eq!(
        readable(durable.memcache_addr.unwrap(), &acked).await,
        acked.len()
    );
    drop(memcached);
}

#[tokio::test(flavor = "multi_thread")]
async fn replicate_acknowledges_only_what_every_member_has_while_one_dies() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_memcached();
    let keyway = start_keyway(&replicate_config(&a, dir.path(), "all")).await;
    let kw = keyway.memcache_addr.unwrap();
    let control = std::sync::Arc::new(Traffic::default());
    let bound = std::time::Duration::from_millis(1500);
    let traffic = tokio::spawn(write_loop(kw, "rep", control.clone(), bound));
    control.replies(25).await;
    let survivors = memcache(a.addr, "stats\r\n").await; // a is up and has traffic
    assert!(survivors.contains("STAT curr_items"));
    drop(a);
    control.replies(20).await;
    control.stop();
    let (acked, errors) = traffic.await.unwrap();
    println!(
        "replicate under traffic: {} acknowledged, {errors} refused",
        acked.len()
    );
    assert!(
        acked.len() >= 25 && errors >= 10,
        "{} {errors}",
        acked.len()
    );
    // Every acknowledged write is on the member still up.
    let durable = sqlite_view(dir.path()).await;
    assert_eq!(
        readable(durable.memcache_addr.unwrap(), &acked).await,
        acked.len()
    );
    assert_eq!(readable(kw, &acked).await, acked.len());
}
