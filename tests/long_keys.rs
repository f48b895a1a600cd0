//! Keys too long for memcached (over 250 bytes as its token: 188 or more
//! bytes once base64-encoded, 251 or more as text) on a memcached route,
//! against a real memcached: every RESP operation a Django RedisCache or a
//! redis client sends works on them, as on redis-server; memcached holds
//! them under a digest form, never over its key limit.

mod common;

use common::{exchange, resp_command, show, start_keyway, start_redis};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn long_keys_on_a_memcached_route_answer_as_redis_does() {
    let (pool, pool_config) = common::memcached_pool_of_three();
    let redis = start_redis();
    let keyway = start_keyway(&pool_config).await;
    let long = format!(":1:{}", "k".repeat(400));
    let other = format!(":1:{}", "k".repeat(399) + "j");
    // 200 bytes with a space: base64 would be 268 bytes.
    let spaced = format!("a b{}", "x".repeat(197));
    let mut script = String::new();
    for args in [
        vec!["SET", &long, "v1"],
        vec!["GET", &long],
        vec!["GET", &other],
        vec!["EXISTS", &long, &other],
        vec!["APPEND", &long, "+more"],
        vec!["GET", &long],
        vec!["STRLEN", &long],
        vec!["SET", &other, "10"],
        vec!["INCRBY", &other, "5"],
        vec!["DECRBY", &other, "20"],
        vec!["INCR", &spaced],
        vec!["GET", &spaced],
        vec!["SET", &long, "v2", "GET"],
        vec!["SET", &long, "v3", "NX"],
        vec!["EXPIRE", &long, "100"],
        vec!["TTL", &long],
        vec!["PERSIST", &long],
        vec!["TTL", &long],
        vec!["MGET", &long, &other, &spaced, "missing"],
        vec!["GETDEL", &long],
        vec!["GET", &long],
        vec!["APPEND", &long, "new"],
        vec!["GET", &long],
        vec!["DEL", &long, &other, &spaced],
        vec!["GET", &other],
    ] {
        script.push_str(&resp_command(&args));
    }
    script.push_str("QUIT\r\n");
    let want = exchange(redis.addr, script.as_bytes()).await;
    let got = exchange(keyway.resp_addr.unwrap(), script.as_bytes()).await;
    assert_eq!(show(&got), show(&want));

    // memcached's own view: nothing over its limit, the long key's value
    // behind the header that names it.
    let set = resp_command(&["SET", &long, "kept"]);
    exchange(
        keyway.resp_addr.unwrap(),
        format!("{set}QUIT\r\n").as_bytes(),
    )
    .await;
    let mut dump = String::new();
    for server in &pool {
        dump.push_str(&metadump(server.addr).await);
    }
    let keys: Vec<&str> = dump
        .lines()
        .filter_map(|line| line.strip_prefix("key="))
        .map(|rest| rest.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "one item on one of the three servers: {dump}"
    );
    assert!(keys[0].len() <= 250, "{dump}");
}

/// `lru_crawler metadump all` of one server (memcached leaves the
/// connection open after a dump: read to its END).
async fn metadump(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"lru_crawler metadump all\r\n")
        .await
        .unwrap();
    let mut dump = Vec::new();
    while !dump.ends_with(b"END\r\n") {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the dump ends")
            .unwrap();
        assert!(n > 0, "memcached closed mid-dump");
        dump.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&dump).into_owned()
}
