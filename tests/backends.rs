//! Keyway in front of every kind of real backend at once: values and
//! memcached flags crossing protocols through each one, flushes that pass
//! protected (durable) routes over, and SQL data surviving a restart.

mod common;

use common::{
    exchange, mariadb_url, postgres_url, show, start_keyway, start_memcached, start_redis,
};

/// One route per backend kind, by key prefix, with SQL routes unprotected.
fn every_backend(dir: &std::path::Path, memcached: &str, redis: &str, table: &str) -> String {
    format!(
        r#"
[backends.memory]
url = "memory://"
capacity = "8MiB"

[backends.memcached]
url = "memcached://{memcached}"

[backends.redis]
url = "redis://{redis}"

[backends.sqlite]
url = "sqlite://{dir}/items.sqlite3"

[backends.postgres]
url = "{postgres}"
table = "{table}"

[backends.mariadb]
url = "{mariadb}"
table = "{table}"

[[routes]]
prefix = "mem:"
backend = "memory"

[[routes]]
prefix = "mc:"
backend = "memcached"

[[routes]]
prefix = "rds:"
backend = "redis"

[[routes]]
prefix = "lite:"
backend = "sqlite"
protected = false

[[routes]]
prefix = "pg:"
backend = "postgres"
protected = false

[[routes]]
prefix = "my:"
backend = "mariadb"
protected = false
"#,
        dir = dir.display(),
        postgres = postgres_url(),
        mariadb = mariadb_url(),
    )
}

const PREFIXES: [&str; 6] = ["mem:", "mc:", "rds:", "lite:", "pg:", "my:"];

#[tokio::test(flavor = "multi_thread")]
async fn flags_and_values_cross_protocols_through_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let memcached = start_memcached();
    let redis = start_redis();
    let table = format!("crossing_{}", std::process::id());
    let config = every_backend(
        dir.path(),
        &memcached.addr.to_string(),
        &redis.addr.to_string(),
        &table,
    );
    let keyway = start_keyway(&config).await;
    for prefix in PREFIXES {
        // memcached in, memcached out: flags kept.
        let request = format!(
            "set {prefix}f 4294967295 0 5\r\nhello\r\nset {prefix}g 12345 0 0\r\n\r\n\
             get {prefix}f {prefix}g\r\nquit\r\n"
        );
        let reply = exchange(keyway.memcache_addr.unwrap(), request.as_bytes()).await;
        let want = format!(
            "STORED\r\nSTORED\r\nVALUE {prefix}f 4294967295 5\r\nhello\r\n\
             VALUE {prefix}g 12345 0\r\n\r\nEND\r\n"
        );
        assert_eq!(show(&reply), show(want.as_bytes()), "{prefix}");

        // memcached in, RESP out; RESP in, memcached out (flags 0).
        let request = format!("GET {prefix}f\r\nSET {prefix}r abc\r\nQUIT\r\n");
        let reply = exchange(keyway.resp_addr.unwrap(), request.as_bytes()).await;
        assert_eq!(
            show(&reply),
            show(b"$5\r\nhello\r\n+OK\r\n+OK\r\n"),
            "{prefix}"
        );
        let request = format!("get {prefix}r\r\nquit\r\n");
        let reply = exchange(keyway.memcache_addr.unwrap(), request.as_bytes()).await;
        let want = format!("VALUE {prefix}r 0 3\r\nabc\r\nEND\r\n");
        assert_eq!(show(&reply), show(want.as_bytes()), "{prefix}");
    }
}

const PROTECTED_BY_DEFAULT: &str = r#"
[backends.sessions]
url = "sqlite://{dir}/sessions.sqlite3"

[backends.shielded]
url = "memory://"
capacity = "8MiB"

[backends.cache]
url = "memory://"
capacity = "8MiB"

[[routes]]
prefix = "s:"
backend = "sessions"

[[routes]]
prefix = "keep:"
backend = "shielded"
protected = true

[[routes]]
glob = "*"
backend = "cache"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn flushes_pass_over_protected_routes() {
    let dir = tempfile::tempdir().unwrap();
    let config = PROTECTED_BY_DEFAULT.replace("{dir}", &dir.path().display().to_string());
    let keyway = start_keyway(&config).await;
    let reply = exchange(
        keyway.resp_addr.unwrap(),
        b"MSET s:1 a keep:1 b other c\r\nFLUSHALL\r\nMGET s:1 keep:1 other\r\n\
          SET other c\r\nFLUSHDB\r\nMGET s:1 keep:1 other\r\nQUIT\r\n",
    )
    .await;
    let after = "*3\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n";
    assert_eq!(
        show(&reply),
        show(format!("+OK\r\n+OK\r\n{after}+OK\r\n+OK\r\n{after}+OK\r\n").as_bytes())
    );
    let reply = exchange(
        keyway.memcache_addr.unwrap(),
        b"set other 0 0 1\r\nc\r\nflush_all\r\nget s:1 keep:1 other\r\nquit\r\n",
    )
    .await;
    assert_eq!(
        show(&reply),
        show(b"STORED\r\nOK\r\nVALUE s:1 0 1\r\na\r\nVALUE keep:1 0 1\r\nb\r\nEND\r\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_items_survive_a_restart_with_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let config = PROTECTED_BY_DEFAULT.replace("{dir}", &dir.path().display().to_string());
    let keyway = start_keyway(&config).await;
    let reply = exchange(
        keyway.resp_addr.unwrap(),
        b"SET s:kept v EX 1000\r\nSET s:gone v PX 1\r\nSET other v\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(show(&reply), show(b"+OK\r\n+OK\r\n+OK\r\n+OK\r\n"));
    keyway.shutdown().await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let keyway = start_keyway(&config).await;
    let reply = exchange(
        keyway.resp_addr.unwrap(),
        b"MGET s:kept s:gone other\r\nTTL s:kept\r\nQUIT\r\n",
    )
    .await;
    let text = String::from_utf8(reply).unwrap();
    assert!(
        text.starts_with("*3\r\n$1\r\nv\r\n$-1\r\n$-1\r\n:"),
        "{}",
        show(text.as_bytes())
    );
    let ttl: u64 = text.split("\r\n").nth(5).unwrap()[1..].parse().unwrap();
    assert!((990..=1000).contains(&ttl), "{ttl}");
}
