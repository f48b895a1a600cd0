//! `stats cachedump` and `lru_crawler metadump` (what memcached's tools and
//! pymemcache's suite read): against a real memcached, on Keyway's memory
//! route (one class per memory backend) and forwarded to a memcached pool.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{exchange, start_keyway, start_memcached, start_memcached_with, ONE_MEMORY_ROUTE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one dump command alone (memcached takes no other command on the
/// connection while it dumps) and reads its reply up to `END`.
async fn dump_of(addr: SocketAddr, command: &str) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .await
        .unwrap();
    let mut reply = Vec::new();
    while !reply.ends_with(b"END\r\n") {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the dump ends in time")
            .unwrap();
        assert!(n > 0, "closed before END: {reply:?}");
        reply.extend_from_slice(&chunk[..n]);
    }
    reply
}

const FILL: &[u8] =
    b"set alpha 0 0 5\r\nhello\r\nset beta 3 0 2\r\nhi\r\nset gamma 0 1000 1\r\nx\r\n";

fn lines(reply: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(reply)
        .split(['\r', '\n'])
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn cachedump_lists_items_as_memcached_does_on_memory_and_on_a_pool() {
    // Without the LRU maintainer memcached keeps new items where cachedump
    // looks (its segmented LRU would show them only once they turn cold).
    let memcached = start_memcached_with(&["-o", "no_lru_maintainer"]);
    let memory = start_keyway(ONE_MEMORY_ROUTE).await;
    let script = [
        FILL,
        b"stats cachedump 1 0\r\nstats cachedump 1 1\r\nstats cachedump 2 0\r\n",
    ]
    .concat();
    let want = exchange(memcached.addr, &[&script[..], b"quit\r\n"].concat()).await;
    let got = exchange(
        memory.memcache_addr.unwrap(),
        &[&script[..], b"quit\r\n"].concat(),
    )
    .await;
    let (want, got) = (lines(&want), lines(&got));
    // gamma's expiry is an absolute time: the same to the second or two.
    let exptime = |lines: &[String]| -> i64 {
        let line = lines.iter().find(|l| l.starts_with("ITEM gamma")).unwrap();
        line.split("; ")
            .nth(1)
            .unwrap()
            .trim_end_matches(" s]")
            .parse()
            .unwrap()
    };
    assert!(
        (exptime(&want) - exptime(&got)).abs() <= 2,
        "{want:?} {got:?}"
    );
    let without = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| !l.starts_with("ITEM gamma"))
            .collect()
    };
    let want = without(want);
    assert_eq!(without(got), want);
    assert!(
        want.contains(&"ITEM alpha [5 b; 0 s]".to_string()),
        "{want:?}"
    );
    // A limit of 1 shows one item: 3 + 1 ITEM lines, and three ENDs.
    assert_eq!(want.iter().filter(|l| *l == "END").count(), 3);

    for bad in [
        "stats cachedump 1\r\n",
        "stats cachedump x 1\r\n",
        "stats cachedump 64 1\r\n",
    ] {
        let want = exchange(memcached.addr, format!("{bad}quit\r\n").as_bytes()).await;
        let got = exchange(
            memory.memcache_addr.unwrap(),
            format!("{bad}quit\r\n").as_bytes(),
        )
        .await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{bad}"
        );
    }

    // Through Keyway to the same memcached: memcached's own lines.
    let pool = start_keyway(&format!(
        "[backends.pool]\nurl = \"memcached://{}\"\n[[routes]]\nglob = \"*\"\nbackend = \"pool\"\n",
        memcached.addr
    ))
    .await;
    let direct = exchange(memcached.addr, b"stats cachedump 1 0\r\nquit\r\n").await;
    let through = exchange(
        pool.memcache_addr.unwrap(),
        b"stats cachedump 1 0\r\nquit\r\n",
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&through),
        String::from_utf8_lossy(&direct)
    );
    assert!(String::from_utf8_lossy(&through).contains("ITEM alpha [5 b; 0 s]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn metadump_lists_every_item_on_memory_and_forwards_to_a_pool() {
    let memory = start_keyway(ONE_MEMORY_ROUTE).await;
    let reply = exchange(
        memory.memcache_addr.unwrap(),
        &[FILL, b"set sp%ce 0 0 1\r\ny\r\nlru_crawler metadump all\r\nlru_crawler metadump 9,x\r\nlru_crawler bogus\r\nquit\r\n"].concat(),
    )
    .await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("key=alpha exp=-1 la="), "{text}");
    assert!(text.contains("key=sp%25ce exp=-1"), "{text}");
    assert!(text.contains(" fetch=no cls=1 size="), "{text}");
    assert!(
        text.ends_with("END\r\nBADCLASS invalid class id\r\nERROR\r\n"),
        "{text}"
    );
    assert_eq!(text.matches("key=").count(), 4);

    let memcached = start_memcached();
    exchange(memcached.addr, &[FILL, b"quit\r\n"].concat()).await;
    let pool = start_keyway(&format!(
        "[backends.pool]\nurl = \"memcached://{}\"\n[[routes]]\nglob = \"*\"\nbackend = \"pool\"\n",
        memcached.addr
    ))
    .await;
    let direct = dump_of(memcached.addr, "lru_crawler metadump all").await;
    let through = dump_of(pool.memcache_addr.unwrap(), "lru_crawler metadump all").await;
    assert_eq!(lines(&through), lines(&direct));
    assert_eq!(String::from_utf8_lossy(&through).matches("key=").count(), 3);
}
