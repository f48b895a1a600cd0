//! Shared test helpers: Keyway in-process on port 0, real memcached and
//! redis-server started on free loopback ports, and raw-socket exchanges.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyway::config::Config;
use keyway::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const ONE_MEMORY_ROUTE: &str = r#"
[backends.memory]
url = "memory://"
capacity = "64MiB"

[[routes]]
glob = "*"
backend = "memory"
"#;

/// Starts Keyway with both listeners on free loopback ports and the given
/// backends/routes (TOML without a [listen] table).
pub async fn start_keyway(body: &str) -> Server {
    Server::start(&keyway_config(body))
        .await
        .expect("keyway starts")
}

/// The configuration `start_keyway` runs: `body` under a [listen] table
/// naming port 0 for both listeners (a reload with it keeps them).
pub fn keyway_config(body: &str) -> Config {
    let text = format!("[listen]\nmemcache = \"127.0.0.1:0\"\nresp = \"127.0.0.1:0\"\n{body}");
    Config::from_toml(&text).expect("test config is valid")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real server process, killed when dropped.
pub struct External {
    child: Child,
    pub addr: SocketAddr,
    /// A working directory of the server's own, removed with it.
    dir: Option<tempfile::TempDir>,
}

impl Drop for External {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(binary: &str, args: &[String], port: u16, package: &str) -> External {
    spawn_logging(binary, args, port, package, Stdio::null())
}

fn spawn_logging(
    binary: &str,
    args: &[String],
    port: u16,
    package: &str,
    stderr: Stdio,
) -> External {
    try_spawn(binary, args, port, package, stderr).unwrap_or_else(|| {
        panic!("{binary} exited right after start: 127.0.0.1:{port} was taken by another test")
    })
}

/// The server listening on `port`; `None` if it exited right after start
/// because another test took the port (something else answered there).
fn try_spawn(
    binary: &str,
    args: &[String],
    port: u16,
    package: &str,
    stderr: Stdio,
) -> Option<External> {
    let mut child = Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {binary} ({e}); install it with: apt-get install -y {package}")
        });
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{binary} did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Something answered; it must be this server, not another test's
    // listener that took the free port first (then this one exits).
    std::thread::sleep(Duration::from_millis(30));
    if let Ok(Some(_)) = child.try_wait() {
        return None;
    }
    Some(External {
        child,
        addr,
        dir: None,
    })
}

/// Runs `binary` with `args(port)` on a free port, trying again on another
/// port when one turns out taken between choosing it and binding it (tests
/// run in parallel and bind ports of their own).
fn spawn_on_free_port(binary: &str, args: impl Fn(u16) -> Vec<String>, package: &str) -> External {
    for _ in 0..3 {
        let port = free_port();
        if let Some(server) = try_spawn(binary, &args(port), port, package, Stdio::null()) {
            return server;
        }
    }
    let port = free_port();
    spawn(binary, &args(port), port, package)
}

pub fn start_memcached() -> External {
    spawn_on_free_port("memcached", memcached_args, "memcached")
}

pub fn start_memcached_at(port: u16) -> External {
    spawn("memcached", &memcached_args(port), port, "memcached")
}

/// Three memcached servers and the `[backends.pool]` and catch-all route
/// that put them behind Keyway as one pool, as deployments run memcached.
pub fn memcached_pool_of_three() -> (Vec<External>, String) {
    let servers: Vec<External> = (0..3).map(|_| start_memcached()).collect();
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let config = format!(
        "[backends.pool]\nurl = \"memcached://{}\"\n[[routes]]\nglob = \"*\"\nbackend = \"pool\"\n",
        addrs.join(",")
    );
    (servers, config)
}

/// memcached on a free port with `extra` arguments (`-Z -o ssl_...`).
pub fn start_memcached_with(extra: &[&str]) -> External {
    let args = |port| {
        let mut args = memcached_args(port);
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    spawn_on_free_port("memcached", args, "memcached")
}

/// memcached with `-vv`: every command line it receives goes to `log`.
pub fn start_memcached_logging(log: &Path) -> External {
    let port = free_port();
    let mut args = memcached_args(port);
    args.push("-vv".into());
    let log = std::fs::File::create(log).expect("log file");
    spawn_logging("memcached", &args, port, "memcached", log.into())
}

fn memcached_args(port: u16) -> Vec<String> {
    [
        "-l",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "0",
        "-m",
        "64",
        "-u",
        "nobody",
    ]
    .map(String::from)
    .to_vec()
}

/// redis-sentinel on `port` with the configuration file `conf` (which it
/// rewrites as it learns the topology).
pub fn start_redis_sentinel(conf: &Path, port: u16) -> External {
    spawn(
        "redis-sentinel",
        &[conf.display().to_string()],
        port,
        "redis-sentinel",
    )
}

/// Stops a server at once (SIGKILL), as a crash would.
pub fn kill(server: &mut External) {
    let _ = server.child.kill();
    let _ = server.child.wait();
}

/// Stops a server without closing anything (SIGSTOP): its connections stay
/// open and nothing is answered, as with a hung server. [`thaw`] resumes it.
pub fn freeze(server: &External) {
    signal(server, "-STOP");
}

pub fn thaw(server: &External) {
    signal(server, "-CONT");
}

fn signal(server: &External, which: &str) {
    let status = Command::new("kill")
        .args([which, &server.child.id().to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success(), "kill {which} failed");
}

pub fn start_redis() -> External {
    start_redis_at(free_port())
}

pub fn start_redis_at(port: u16) -> External {
    start_redis_on(port, &[])
}

/// redis-server on a free port with `extra` arguments (`--requirepass x`...).
pub fn start_redis_with(extra: &[&str]) -> External {
    start_redis_on(free_port(), extra)
}

/// redis-server speaking only TLS on a free port, with this certificate,
/// key and CA (PEM); clients need no certificate.
pub fn start_redis_tls(cert: &Path, key: &Path, ca: &Path) -> External {
    let port = free_port();
    let port_text = port.to_string();
    let path = |p: &Path| p.to_str().expect("a UTF-8 path").to_string();
    let (cert, key, ca) = (path(cert), path(key), path(ca));
    // The later `--port 0` overrides the plain port (redis reads its
    // arguments as config lines, in order).
    let tls = [
        "--port",
        "0",
        "--tls-port",
        &port_text,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ];
    start_redis_on(port, &tls)
}

pub fn start_redis_on(port: u16, extra: &[&str]) -> External {
    let port_text = port.to_string();
    // A directory of its own: a replica saves the RDB its master sends, and
    // a redis started where one lies would load its keys and replication
    // offset (a shared working directory once made ROLE differ).
    let workdir = tempfile::tempdir().expect("a directory for redis");
    let dir = workdir.path().display().to_string();
    let base = [
        "--port",
        &port_text,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir,
    ];
    let args: Vec<String> = base.iter().chain(extra).map(|a| a.to_string()).collect();
    let mut server = spawn("redis-server", &args, port, "redis-server");
    server.dir = Some(workdir);
    server
}

/// A real Redis Cluster on loopback: `primaries` primaries (at least 3, as
/// `redis-cli --cluster create` wants) with `replicas` replicas each, every
/// slot assigned, every node agreeing (`cluster_state:ok`).
pub struct RedisCluster {
    pub nodes: Vec<External>,
}

impl RedisCluster {
    /// `host:port,host:port...` of every node, for a redis-cluster:// URL.
    pub fn seeds(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(|n| n.addr.to_string()).collect();
        addrs.join(",")
    }

    /// redis-cli against one node, its stdout.
    pub fn cli(&self, node: usize, args: &[&str]) -> String {
        redis_cli(self.nodes[node].addr, args)
    }

    /// Waits until every live node says `cluster_state:ok` and names the same primaries.
    pub fn wait_ok(&self, live: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let states: Vec<String> = live
                .iter()
                .map(|&n| self.cli(n, &["cluster", "info"]))
                .collect();
            let slots: Vec<String> = live
                .iter()
                .map(|&n| {
                    let mut lines: Vec<String> = self
                        .cli(n, &["cluster", "nodes"])
                        .lines()
                        .filter(|l| l.contains("master") && !l.contains("fail"))
                        .map(|l| {
                            let f: Vec<&str> = l.split(' ').collect();
                            format!("{} {}", f[1], f[8..].join(" "))
                        })
                        .collect();
                    lines.sort();
                    lines.join("\n")
                })
                .collect();
            if states.iter().all(|s| s.contains("cluster_state:ok"))
                && slots.windows(2).all(|w| w[0] == w[1])
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle: {states:?} {slots:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// redis-cli against `addr`, its stdout.
pub fn redis_cli(addr: SocketAddr, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli (apt-get install -y redis-tools)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn start_redis_cluster(primaries: usize, replicas: usize) -> RedisCluster {
    let nodes: Vec<External> = (0..primaries * (1 + replicas))
        .map(|_| {
            // The bus port named, not redis's port + 10000 (past 65535 for
            // some free ports).
            let bus = free_port().to_string();
            start_redis_on(
                free_port(),
                &[
                    "--cluster-port",
                    &bus,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    // A replica syncs at once (not after redis 7.0's 5 s wait
                    // for others): one that never synced cannot take over.
                    "--repl-diskless-sync-delay",
                    "0",
                ],
            )
        })
        .collect();
    let mut create = Command::new("redis-cli");
    create.args(["--cluster", "create"]);
    for node in &nodes {
        create.arg(node.addr.to_string());
    }
    let output = create
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .output()
        .expect("redis-cli (apt-get install -y redis-tools)");
    assert!(
        output.status.success(),
        "redis-cli --cluster create: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let cluster = RedisCluster { nodes };
    let all: Vec<usize> = (0..cluster.nodes.len()).collect();
    cluster.wait_ok(&all);
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in &all {
        loop {
            let info = cluster.cli(*node, &["info", "replication"]);
            if info.contains("role:master") || info.contains("master_link_status:up") {
                break;
            }
            assert!(Instant::now() < deadline, "a replica did not sync: {info}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    cluster
}

/// Sends `request` on a new connection and reads until the server closes it
/// (the request should end with `quit`/`QUIT`).
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .expect("server closed the connection in time")
        .unwrap();
    reply
}

/// Sends `request` and reads exactly `len` reply bytes (for connections that stay open).
pub async fn send_and_read(stream: &mut TcpStream, request: &[u8], len: usize) -> Vec<u8> {
    stream.write_all(request).await.unwrap();
    let mut reply = vec![0; len];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut reply))
        .await
        .expect("reply in time")
        .unwrap();
    reply
}

/// What follows a HELLO reply (which carries the server's version and
/// client id), to compare the rest with redis's.
pub fn after_hello(reply: &[u8]) -> &[u8] {
    let start = reply
        .windows(8)
        .position(|w| w == b"modules\r")
        .expect("HELLO map");
    let rest = &reply[start..];
    let end = rest
        .windows(4)
        .position(|w| w == b"*0\r\n")
        .expect("empty modules")
        + 4;
    &rest[end..]
}

pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace('\r', "\\r")
        .replace('\n', "\\n\n")
}

/// twemproxy (Debian `nutcracker`) in front of `servers` ("host:port:weight"),
/// with md5 ketama distribution.
pub fn start_nutcracker(servers: &[String]) -> (External, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let list: String = servers.iter().map(|s| format!("   - {s}\n")).collect();
    let config = format!(
        "pool:\n  listen: 127.0.0.1:{port}\n  hash: md5\n  distribution: ketama\n  auto_eject_hosts: false\n  servers:\n{list}"
    );
    let path = dir.path().join("nutcracker.yml");
    std::fs::write(&path, config).unwrap();
    let args = [
        "-c".to_string(),
        path.display().to_string(),
        "-s".to_string(),
        free_port().to_string(),
        "-a".to_string(),
        "127.0.0.1".to_string(),
    ];
    // Debian installs it in /usr/sbin, which is not always on PATH.
    let binary = if Path::new("/usr/sbin/nutcracker").exists() {
        "/usr/sbin/nutcracker"
    } else {
        "nutcracker"
    };
    (spawn(binary, &args, port, "nutcracker"), dir)
}

/// A PostgreSQL URL for tests: `KEYWAY_TEST_POSTGRES_URL`, or a server this
/// test process starts once (tests/servers/postgres.sh; it stops when the
/// process exits). Each test uses its own table.
pub fn postgres_url() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("KEYWAY_TEST_POSTGRES_URL") {
            return url;
        }
        let port = free_port();
        start_script("postgres.sh", port);
        wait_for_postgres(port);
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    })
    .clone()
}

/// Runs `sql` with Debian's `mariadb` client on the server `url` names
/// (`mysql://root@127.0.0.1:PORT/DB`), in database `database` if given.
pub fn mariadb_cli(url: &str, database: Option<&str>, sql: &str) -> std::process::Output {
    let server = url.rsplit_once('@').map_or(url, |(_, server)| server);
    let port = server
        .split(['/', '?'])
        .next()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1;
    let mut command = Command::new("mariadb");
    command.args(["-h", "127.0.0.1", "-P", port, "-u", "root", "-N", "-B"]);
    command.args(database).args(["-e", sql]);
    command.output().expect("the mariadb client runs")
}

/// A command as a RESP array of bulk strings, as redis clients send it.
pub fn resp_command<S: AsRef<str>>(args: &[S]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for arg in args {
        let arg = arg.as_ref();
        out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    out
}

/// A MariaDB/MySQL URL for tests: `KEYWAY_TEST_MYSQL_URL`, or a server this
/// test process starts once (tests/servers/mariadb.sh).
pub fn mariadb_url() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("KEYWAY_TEST_MYSQL_URL") {
            return url;
        }
        let port = free_port();
        start_script("mariadb.sh", port);
        wait_for_mariadb(port);
        format!("mysql://root@127.0.0.1:{port}/keyway")
    })
    .clone()
}

/// A MariaDB of the caller's own on `port` serving TLS with this certificate
/// and key (PEM); it stops within about a second once the guard is dropped.
pub fn start_private_mariadb_tls(port: u16, cert: &Path, key: &Path) -> External {
    let owner = Command::new("sleep")
        .arg("3600")
        .spawn()
        .expect("sleep runs");
    start_script_env(
        "mariadb.sh",
        port,
        owner.id(),
        &[("MARIADB_SSL_CERT", cert), ("MARIADB_SSL_KEY", key)],
    );
    wait_for_mariadb(port);
    External {
        child: owner,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        dir: None,
    }
}

fn wait_for_mariadb(port: u16) {
    wait_until(&format!("MariaDB on {port}"), || {
        Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", &port.to_string(), "-u", "root"])
            .args(["-e", "USE keyway"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
}

/// A PostgreSQL of the caller's own on `port` (a new, empty cluster), which
/// stops within about a second once the returned guard is dropped.
pub fn start_private_postgres(port: u16) -> External {
    start_private_postgres_with(port, &[])
}

/// A private PostgreSQL that also serves TLS with this certificate and key (PEM).
pub fn start_private_postgres_tls(port: u16, cert: &Path, key: &Path) -> External {
    start_private_postgres_with(
        port,
        &[("POSTGRES_SSL_CERT", cert), ("POSTGRES_SSL_KEY", key)],
    )
}

fn start_private_postgres_with(port: u16, env: &[(&str, &Path)]) -> External {
    // The script's server lives as long as its owner process: this one.
    let owner = Command::new("sleep")
        .arg("3600")
        .spawn()
        .expect("sleep runs");
    start_script_env("postgres.sh", port, owner.id(), env);
    wait_for_postgres(port);
    External {
        child: owner,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        dir: None,
    }
}

fn start_script(script: &str, port: u16) {
    start_script_owned(script, port, std::process::id());
}

fn start_script_owned(script: &str, port: u16, owner: u32) {
    start_script_env(script, port, owner, &[]);
}

fn start_script_env(script: &str, port: u16, owner: u32, env: &[(&str, &Path)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers")
        .join(script);
    let output = Command::new(&path)
        .args([port.to_string(), owner.to_string()])
        .envs(env.iter().copied())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        output.status.success(),
        "{script} failed; its logs are in the /tmp/keyway-test-* directory it printed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

fn wait_for_postgres(port: u16) {
    wait_until(&format!("PostgreSQL on {port}"), || {
        Command::new("pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    });
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `keyway --config <config> migrate --policy <policy>` to its end and
/// returns what it printed; panics with its error output if it failed.
#[allow(dead_code)] // not every test binary migrates
pub fn keyway_migrate(config: &Path, policy: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "migrate",
            "--policy",
            policy,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "keyway migrate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
