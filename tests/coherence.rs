//! Several Keyway processes (one per "host") with a memory cache in front of
//! one shared durable store — PostgreSQL, MariaDB, and a SQLite file — as
//! Horizon hosts behind a load balancer run it. A write or delete
//! acknowledged by any of them must not be contradicted by any other for
//! longer than the bound (`max_staleness_ms`, 100 ms by default), and never
//! after it: under traffic, with the database connections cut, and with a
//! Keyway killed and restarted in the middle.
//!
//! Staleness is measured from the client side: a read sent at `t` that
//! returns version `v` while version `v + 1` had been acknowledged at
//! `a < t` is stale by `t - a`. Every process shares the machine's monotonic
//! clock, so the figures compare across processes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::free_port;

const KEYWAY: &str = env!("CARGO_BIN_EXE_keyway");
const BOUND: Duration = Duration::from_millis(100);

/// A Keyway process serving RESP on `port`, killed when dropped.
struct Host {
    child: Child,
    port: u16,
    config: PathBuf,
}

impl Host {
    fn start(dir: &std::path::Path, name: &str, durable: &str, table: &str) -> Host {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text(port, durable, table)).unwrap();
        Host::spawn(port, config)
    }

    fn spawn(port: u16, config: PathBuf) -> Host {
        let child = Command::new(KEYWAY)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("keyway runs");
        let host = Host {
            child,
            port,
            config,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(mut client) = Client::connect(port) {
                if client.cmd(&[b"PING"]) == Reply::Simple("PONG".into()) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "keyway on {port} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        host
    }

    /// kill -9, then the same configuration again on the same port.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let fresh = Host::spawn(self.port, self.config.clone());
        let old = std::mem::replace(self, fresh);
        std::mem::forget(old); // its process is already gone
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_text(port: u16, durable: &str, table: &str) -> String {
    format!(
        r#"
[listen]
resp = "127.0.0.1:{port}"

[backends.hot]
url = "memory://"
capacity = "16MiB"

[backends.db]
url = "{durable}"
table = "{table}"
connections = 4
request_timeout_ms = 2000

[policies.sessions]
kind = "write-through"
cache = "hot"
durable = "db"

[[routes]]
glob = "*"
policy = "sessions"
"#
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Nil,
    Bulk(Vec<u8>),
    Simple(String),
    Int(i64),
    Error(String),
}

/// A blocking RESP2 client, as small as these tests need.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        self.try_cmd(args)
            .unwrap_or_else(|e| Reply::Error(format!("io: {e}")))
    }

    fn try_cmd(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&out)?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        let (kind, rest) = line.split_at(1);
        Ok(match kind {
            "+" => Reply::Simple(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" if rest == "-1" => Reply::Nil,
            "$" => {
                let mut value = vec![0; rest.parse::<usize>().unwrap() + 2];
                self.reader.read_exact(&mut value)?;
                value.truncate(value.len() - 2);
                Reply::Bulk(value)
            }
            _ => panic!("unexpected reply line {line:?}"),
        })
    }
}

/// A client that reconnects after a failure (a host restarted).
struct Sticky {
    port: u16,
    client: Option<Client>,
}

impl Sticky {
    fn new(port: u16) -> Self {
        Sticky { port, client: None }
    }

    fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        if self.client.is_none() {
            self.client = Client::connect(self.port).ok();
        }
        let Some(client) = self.client.as_mut() else {
            std::thread::sleep(Duration::from_millis(20));
            return Reply::Error("connect failed".into());
        };
        match client.try_cmd(args) {
            Ok(reply) => reply,
            Err(e) => {
                self.client = None;
                Reply::Error(format!("io: {e}"))
            }
        }
    }
}

fn table_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("coh_{test}_{}_{nanos}", std::process::id())
}

/// The three stores, each as (label, durable URL) for a fresh table.
fn stores(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("postgres", common::postgres_url()),
        ("mariadb", common::mariadb_url()),
        (
            "sqlite",
            format!("sqlite://{}", dir.join("shared.sqlite3").display()),
        ),
    ]
}

/// `n` Keyways over one table, each ready: it has created (or found) the
/// table and its change log and answers a write. Three processes creating
/// one SQLite file's schema at once, under a loaded disk, can hold each
/// other's first write past its timeout; that start-up is not what these
/// tests measure.
fn hosts(dir: &std::path::Path, durable: &str, table: &str, n: usize) -> Vec<Host> {
    let hosts: Vec<Host> = (0..n)
        .map(|i| Host::start(dir, &format!("host{i}"), durable, table))
        .collect();
    for host in &hosts {
        let mut client = Client::connect(host.port).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.cmd(&[b"SET", b"warm-up", b"1"]) != Reply::Simple("OK".into()) {
            assert!(
                Instant::now() < deadline,
                "keyway on {} never stored a key",
                host.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    hosts
}

/// Reads `key` on `client` until `done` holds for the reply; how long the
/// old value could still be read: when the first read that saw the new one
/// was sent (every read sent before it answered the old value). A read that
/// is merely slow to answer, on two loaded cores, is not a stale one.
fn until(client: &mut Client, key: &[u8], done: impl Fn(&Reply) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let sent = started.elapsed();
        if done(&client.cmd(&[b"GET", key])) {
            return sent;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never converged"
        );
    }
}

/// After the bound has passed, `count` reads on every client agree with `expected`.
fn holds(clients: &mut [Client], key: &[u8], expected: &Reply, count: usize) {
    for _ in 0..count {
        for client in clients.iter_mut() {
            assert_eq!(&client.cmd(&[b"GET", key]), expected);
        }
    }
}

#[test]
fn a_logout_or_a_change_on_one_host_is_seen_by_every_host_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    for (store, durable) in stores(dir.path()) {
        let table = table_name("logout");
        let hosts = hosts(dir.path(), &durable, &table, 3);
        let mut clients: Vec<Client> = hosts
            .iter()
            .map(|h| Client::connect(h.port).unwrap())
            .collect();
        let mut seen = Vec::new();
        for round in 0..20 {
            // A new session each round, as Django makes after a logout (an
            // ended session's key is not written again: docs/operating.md "An ended
            // session stays ended").
            let key = format!(":1:django.contrib.sessions.cache{round:0>32}");
            let key = key.as_bytes();
            let value = format!("session-{round}");
            let (writer, readers) = (round % 3, [(round + 1) % 3, (round + 2) % 3]);
            assert_eq!(
                clients[writer].cmd(&[b"SET", key, value.as_bytes()]),
                Reply::Simple("OK".into())
            );
            // Every host has it cached now (a read fills the cache).
            for &r in &readers {
                let took = until(&mut clients[r], key, |reply| {
                    *reply == Reply::Bulk(value.clone().into_bytes())
                });
                seen.push(took);
            }
            // The logout, through another host.
            let logout = readers[0];
            assert_eq!(clients[logout].cmd(&[b"DEL", key]), Reply::Int(1));
            for r in [writer, readers[1]] {
                seen.push(until(&mut clients[r], key, |reply| *reply == Reply::Nil));
            }
            std::thread::sleep(BOUND);
            holds(&mut clients, key, &Reply::Nil, 5);
        }
        seen.sort();
        let max = *seen.last().unwrap();
        let p50 = seen[seen.len() / 2];
        let p99 = seen[seen.len() * 99 / 100];
        println!(
            "{store}: change and logout seen by the other hosts by reads sent p50 {p50:?}, p99 {p99:?}, max {max:?} after the acknowledgment ({} observations)",
            seen.len()
        );
        assert!(
            max < BOUND,
            "{store}: a host served the old value for {max:?}"
        );
    }
}

#[test]
fn concurrent_writers_on_different_hosts_converge_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    for (store, durable) in stores(dir.path()) {
        let table = table_name("converge");
        let hosts = hosts(dir.path(), &durable, &table, 3);
        let key: &[u8] = b":1:django.contrib.sessions.cacheconvergeconvergeconvergeconv";
        let ports: Vec<u16> = hosts.iter().map(|h| h.port).collect();
        std::thread::scope(|scope| {
            for (i, &port) in ports.iter().enumerate().take(2) {
                let third = ports[2];
                scope.spawn(move || {
                    let mut client = Client::connect(port).unwrap();
                    let mut reader = Client::connect(third).unwrap();
                    for n in 0..150 {
                        let value = format!("host{i}-{n}");
                        assert_eq!(
                            client.cmd(&[b"SET", key, value.as_bytes()]),
                            Reply::Simple("OK".into())
                        );
                        client.cmd(&[b"GET", key]);
                        reader.cmd(&[b"GET", key]);
                    }
                });
            }
        });
        std::thread::sleep(BOUND);
        let mut clients: Vec<Client> = hosts
            .iter()
            .map(|h| Client::connect(h.port).unwrap())
            .collect();
        let truth = clients[0].cmd(&[b"GET", key]);
        assert!(matches!(truth, Reply::Bulk(_)), "{store}: {truth:?}");
        holds(&mut clients, key, &truth, 20);
        let Reply::Bulk(truth) = truth else {
            unreachable!()
        };
        println!(
            "{store}: every host answers {:?}",
            String::from_utf8_lossy(&truth)
        );
    }
}

/// What a traffic run saw.
#[derive(Default)]
struct Observed {
    reads: u64,
    errors: u64,
    /// Reads that returned a version older than one acknowledged before
    /// they were sent, and by how long they lagged it.
    stale: Vec<Duration>,
}

/// Keys written by one writer each, in increasing versions, through the
/// hosts in turn; readers on every host. `disrupt` runs beside them.
fn traffic(
    hosts: &mut [Host],
    seconds: u64,
    disrupt: impl FnOnce(&mut [Host], &AtomicBool) + Send,
) -> Observed {
    const KEYS: usize = 6;
    let ports: Vec<u16> = hosts.iter().map(|h| h.port).collect();
    let stop = AtomicBool::new(false);
    // Per key: the instant each version was acknowledged.
    let acks: Vec<Mutex<Vec<Instant>>> = (0..KEYS).map(|_| Mutex::new(Vec::new())).collect();
    let observed = Mutex::new(Observed::default());
    let errors = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for k in 0..KEYS {
            let (ports, stop, acks, errors) = (&ports, &stop, &acks, &errors);
            scope.spawn(move || {
                let key = format!("session-key-{k}");
                let mut clients: Vec<Sticky> = ports.iter().map(|&p| Sticky::new(p)).collect();
                let mut version = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let value = version.to_string();
                    let host = (version + k) % clients.len();
                    match clients[host].cmd(&[b"SET", key.as_bytes(), value.as_bytes()]) {
                        Reply::Simple(_) => {
                            acks[k].lock().unwrap().push(Instant::now());
                            version += 1;
                        }
                        // Unknown whether it committed: write the next
                        // version, which only an acknowledgement counts.
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            acks[k].lock().unwrap().push(far_future());
                            version += 1;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(3));
                }
            });
        }
        for (h, &port) in ports.iter().enumerate() {
            for r in 0..2 {
                let (stop, acks, observed) = (&stop, &acks, &observed);
                scope.spawn(move || {
                    let mut client = Sticky::new(port);
                    let mut mine = Observed::default();
                    let mut n = h * 7 + r;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let k = n % KEYS;
                        let key = format!("session-key-{k}");
                        let sent = Instant::now();
                        let version = match client.cmd(&[b"GET", key.as_bytes()]) {
                            Reply::Bulk(v) => {
                                String::from_utf8(v).unwrap().parse::<usize>().unwrap()
                            }
                            Reply::Nil => continue,
                            _ => {
                                mine.errors += 1;
                                continue;
                            }
                        };
                        mine.reads += 1;
                        // The next version, if acknowledged before the read was sent.
                        let newer = acks[k].lock().unwrap().get(version + 1).copied();
                        if let Some(acked) = newer.filter(|&a| a < sent) {
                            mine.stale.push(sent - acked);
                        }
                    }
                    let mut all = observed.lock().unwrap();
                    all.reads += mine.reads;
                    all.errors += mine.errors;
                    all.stale.extend(mine.stale);
                });
            }
        }
        let stop = &stop;
        scope.spawn(move || disrupt(hosts, stop));
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let mut observed = observed.into_inner().unwrap();
    observed.errors += errors.load(Ordering::Relaxed);
    observed.stale.sort();
    observed
}

/// A time no read is sent after: what an unacknowledged write counts as.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn report(store: &str, what: &str, observed: &Observed) {
    let stale = &observed.stale;
    let pick = |q: usize| {
        stale
            .get(stale.len() * q / 100)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{store} {what}: {} reads, {} errors; {} reads lagged an acknowledged write: p50 {:?}, p99 {:?}, max {:?}; stale reads (lagging {BOUND:?} or more): {}",
        observed.reads,
        observed.errors,
        stale.len(),
        pick(50),
        pick(99),
        stale.last().copied().unwrap_or_default(),
        stale.iter().filter(|s| **s >= BOUND).count()
    );
    assert!(observed.reads > 100, "{store} {what}: too few reads");
    assert!(
        stale.iter().all(|s| *s < BOUND),
        "{store} {what}: a read was staler than {BOUND:?}"
    );
}

#[test]
fn under_traffic_no_host_serves_a_value_older_than_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    for (store, durable) in stores(dir.path()) {
        let table = table_name("traffic");
        let mut hosts = hosts(dir.path(), &durable, &table, 3);
        let observed = traffic(&mut hosts, 4, |_, _| {});
        report(store, "steady traffic", &observed);
    }
}

#[test]
fn a_host_killed_and_restarted_under_traffic_serves_nothing_stale() {
    let dir = tempfile::tempdir().unwrap();
    for (store, durable) in stores(dir.path()) {
        let table = table_name("restart");
        let mut hosts = hosts(dir.path(), &durable, &table, 3);
        let observed = traffic(&mut hosts, 5, |hosts, _| {
            std::thread::sleep(Duration::from_millis(1500));
            hosts[2].restart();
        });
        report(store, "host kill -9 and restart", &observed);
    }
}

/// Cuts every connection of `database`'s Keyways (poller and pools alike)
/// every 400 ms while traffic runs.
fn cut_repeatedly(stop: &AtomicBool, cut: impl Fn()) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(400));
        cut();
    }
}

#[test]
fn cutting_the_database_connections_under_traffic_serves_nothing_stale() {
    let dir = tempfile::tempdir().unwrap();
    // PostgreSQL: a private server, so that cutting every connection but
    // the cutter's own disturbs no other test.
    let pg_port = free_port();
    let _pg = common::start_private_postgres(pg_port);
    let pg = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres");
    let mut hosts = self::hosts(dir.path(), &pg, &table_name("cut"), 3);
    let cuts = Arc::new(AtomicU64::new(0));
    let counted = cuts.clone();
    let observed = traffic(&mut hosts, 5, move |_, stop| {
        cut_repeatedly(stop, || {
            let status = Command::new("psql")
                .stderr(Stdio::null())
                .args(["-h", "127.0.0.1", "-p", &pg_port.to_string(), "-U", "postgres"])
                .args(["-qAtc", "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            counted.fetch_add(1, Ordering::Relaxed);
        })
    });
    println!(
        "postgres: every Keyway connection cut {} times",
        cuts.load(Ordering::Relaxed)
    );
    report("postgres", "connections cut", &observed);
    drop(hosts);

    // MariaDB: a database of this test's own, whose connections are cut.
    let base = common::mariadb_url();
    let (server, _) = base.rsplit_once('/').unwrap();
    let port = server.rsplit_once(':').unwrap().1.to_string();
    let mysql = |sql: &str| {
        let output = common::mariadb_cli(&base, None, sql);
        assert!(output.status.success(), "{sql}");
    };
    mysql("CREATE DATABASE IF NOT EXISTS coherence_cut");
    let mut hosts = self::hosts(
        dir.path(),
        &format!("{server}/coherence_cut"),
        &table_name("cut"),
        3,
    );
    let observed = traffic(&mut hosts, 5, |_, stop| {
        cut_repeatedly(stop, || {
            // Each connection to the test's database, killed by id.
            let output = Command::new("mariadb")
                .args(["-h", "127.0.0.1", "-P", &port, "-u", "root", "-N", "-e"])
                .arg("SELECT id FROM information_schema.processlist WHERE db = 'coherence_cut'")
                .output()
                .unwrap();
            for id in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                let _ = Command::new("mariadb")
                    .args(["-h", "127.0.0.1", "-P", &port, "-u", "root", "-e"])
                    .arg(format!("KILL {id}"))
                    .stderr(Stdio::null())
                    .status();
            }
        })
    });
    report("mariadb", "connections cut", &observed);
}
