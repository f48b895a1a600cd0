//! The memcached frontend against a real memcached: the same request bytes
//! must give the same reply bytes, and Keyway-specific behaviour is checked
//! byte for byte.

mod common;

use common::{exchange, send_and_read, show, start_keyway, start_memcached, ONE_MEMORY_ROUTE};

/// Scripts whose replies carry nothing run-specific (no CAS ids, times or pids).
const SCRIPTS: &[&[u8]] = &[
    b"set k 16 0 8\r\na\r\nEND\r\n\r\nget k\r\nget missing k missing\r\n",
    b"add k 0 0 1\r\na\r\nadd k 0 0 1\r\nb\r\nget k\r\nreplace nope 0 0 1\r\nx\r\nreplace k 2 0 1\r\nc\r\nget k\r\n",
    b"set k 0 0 1\r\na\r\nappend k 9 0 2\r\nbc\r\nprepend k 9 0 1\r\nz\r\nget k\r\nappend nope 0 0 1\r\nx\r\n",
    b"set n 0 0 2\r\n10\r\ndecr n 1\r\nget n\r\nincr n 18446744073709551615\r\ndecr n 100\r\nincr nope 1\r\n",
    b"set s 0 0 3\r\nabc\r\nincr s 1\r\nincr s -1\r\nincr s x\r\n",
    b"set k 0 0 1\r\na\r\ndelete k\r\ndelete k\r\ndelete k 0\r\ndelete k 5\r\ndelete k noreply\r\nget k\r\n",
    b"set k 0 0 1 noreply\r\na\r\nadd k 0 0 1 noreply\r\nb\r\nincr k 1 noreply\r\ntouch k 10 noreply\r\nget k\r\n",
    b"set k 0 0 1\r\nab\r\nset k 0 0 1 noreply\r\nab\r\nget k\r\n",
    b"set k 0 0 -1\r\nx\r\nset k\r\nset k -1 0 1\r\nx\r\nbogus\r\n\r\nget\r\n",
    b"set k 0 -1 1\r\na\r\nget k\r\nset k 0 4294967295 1\r\na\r\nget k\r\nset k 0 1 1\r\na\r\nget k\r\n",
    b"set k 0 0 1\r\na\r\ntouch k 100\r\ntouch nope 1\r\ntouch k x\r\ngat 100 k nope\r\ngat x k\r\n",
    b"set k 0 0 1\r\na\r\nflush_all\r\nget k\r\nflush_all 0\r\nflush_all noreply\r\nflush_all x\r\nverbosity 1\r\nverbosity\r\n",
    b"cas nope 0 0 1 1\r\na\r\nset k 0 0 1\r\na\r\ncas k 0 0 1 999999\r\nb\r\nget k\r\n",
    b"stats nonsense\r\n",
];

#[tokio::test(flavor = "multi_thread")]
async fn replies_match_real_memcached_byte_for_byte() {
    let memcached = start_memcached();
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let keyway_addr = keyway.memcache_addr.unwrap();
    for script in SCRIPTS {
        let mut request = b"flush_all\r\n".to_vec();
        request.extend_from_slice(script);
        request.extend_from_slice(b"quit\r\n");
        let want = exchange(memcached.addr, &request).await;
        let got = exchange(keyway_addr, &request).await;
        assert_eq!(show(&got), show(&want), "script:\n{}", show(script));
    }
}

/// A Keyway whose one route is a pool of `servers`.
async fn keyway_on_pool(servers: &[&common::External]) -> keyway::server::Server {
    let list: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    start_keyway(&format!(
        "[backends.pool]\nurl = \"memcached://{}\"\n[[routes]]\nglob = \"*\"\nbackend = \"pool\"\n",
        list.join(",")
    ))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_through_a_memcached_pool_match_real_memcached_byte_for_byte() {
    let reference = start_memcached();
    let (a, b) = (start_memcached(), start_memcached());
    let keyway = keyway_on_pool(&[&a, &b]).await;
    // Multi-key gets whose keys live on both servers: hits come back merged
    // in request order (repeats included), as one memcached lists them.
    let mut sets = Vec::new();
    for i in 0..20 {
        sets.extend_from_slice(format!("set key{i} {i} 0 2\r\nv{}\r\n", i % 10).as_bytes());
    }
    let keys: Vec<String> = (0..24).rev().map(|i| format!("key{i}")).collect();
    let multi = [
        sets.clone(),
        format!(
            "get {}\r\nget key3 key3 key4 missing key3\r\n",
            keys.join(" ")
        )
        .into_bytes(),
        format!(
            "gat 100 {}\r\ngat -1 key1 key2 key19\r\nget key1 key2 key19\r\n",
            keys.join(" ")
        )
        .into_bytes(),
    ];
    let scripts = SCRIPTS.iter().map(|s| s.to_vec()).chain(multi);
    for script in scripts {
        let mut request = b"flush_all\r\n".to_vec();
        request.extend_from_slice(&script);
        request.extend_from_slice(b"quit\r\n");
        let want = exchange(reference.addr, &request).await;
        let got = exchange(keyway.memcache_addr.unwrap(), &request).await;
        assert_eq!(show(&got), show(&want), "script:\n{}", show(&script));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn memcached_clients_requests_reach_the_pool_as_they_came() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("memcached.log");
    let memcached = common::start_memcached_logging(&log);
    let keyway = keyway_on_pool(&[&memcached]).await;
    let request =
        b"set k 5 0 3\r\nabc\r\nget k\r\ngets k j\r\ntouch k 10\r\nappend k 0 0 1\r\nd\r\n\
        delete k\r\nset n 0 0 1 noreply\r\n1\r\nincr n 41\r\ngat 60 n\r\nquit\r\n";
    let reply = exchange(keyway.memcache_addr.unwrap(), request).await;
    assert!(
        reply.ends_with(b"VALUE n 0 2\r\n42\r\nEND\r\n"),
        "{}",
        show(&reply)
    );
    // Keyway's own operations would arrive as meta commands (mg, ms, ...).
    let seen = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = seen
        .lines()
        .filter_map(|line| line.split_once(' ').filter(|(fd, _)| fd.starts_with('<')))
        .map(|(_, command)| command)
        .filter(|line| !line.contains("connection") && !line.contains("listening"))
        .collect();
    assert_eq!(
        lines,
        [
            "set k 5 0 3",
            "get k",
            "gets k j",
            "touch k 10",
            "append k 0 0 1",
            "delete k",
            // noreply is Keyway's to honour: memcached is asked for the reply.
            "set n 0 0 1 ",
            "incr n 41",
            "gat 60 n",
        ],
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn too_large_values_are_refused_and_the_old_value_dropped() {
    let memcached = start_memcached();
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let mut request = b"flush_all\r\nset k 0 0 1\r\na\r\nset k 0 0 1048576\r\n".to_vec();
    request.extend_from_slice(&vec![b'x'; 1048576]);
    request.extend_from_slice(b"\r\nget k\r\nset j 0 0 1048000\r\n");
    request.extend_from_slice(&vec![b'y'; 1048000]);
    request.extend_from_slice(b"\r\nquit\r\n");
    let want = exchange(memcached.addr, &request).await;
    let got = exchange(keyway.memcache_addr.unwrap(), &request).await;
    assert_eq!(show(&got), show(&want));
    assert_eq!(
        got,
        b"OK\r\nSTORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\nSTORED\r\n".to_vec()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gets_and_cas_round_trip() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let addr = keyway.memcache_addr.unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        send_and_read(&mut stream, b"set k 7 0 1\r\na\r\n", 8).await,
        b"STORED\r\n"
    );
    stream.writable().await.unwrap();
    let reply = exchange(addr, b"gets k\r\nquit\r\n").await;
    let text = String::from_utf8(reply).unwrap();
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("VALUE k 7 1 "), "{header}");
    let cas: u64 = header.rsplit(' ').next().unwrap().parse().unwrap();
    let swap = format!("cas k 3 0 1 {cas}\r\nb\r\ncas k 3 0 1 {cas}\r\nc\r\ngets k\r\nquit\r\n");
    let reply = String::from_utf8(exchange(addr, swap.as_bytes()).await).unwrap();
    assert!(
        reply.starts_with("STORED\r\nEXISTS\r\nVALUE k 3 1 "),
        "{reply}"
    );
    assert!(reply.ends_with("\r\nb\r\nEND\r\n"), "{reply}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_split_at_every_byte_are_answered_in_order() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let addr = keyway.memcache_addr.unwrap();
    let request: &[u8] = b"set a 0 0 5\r\nhe\r\nl\r\nget a b a\r\ndelete a\r\nget a\r\n";
    let want: &[u8] =
        b"STORED\r\nVALUE a 0 5\r\nhe\r\nl\r\nVALUE a 0 5\r\nhe\r\nl\r\nEND\r\nDELETED\r\nEND\r\n";
    for split in 1..request.len() {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        stream.write_all(&request[..split]).await.unwrap();
        stream.flush().await.unwrap();
        tokio::task::yield_now().await;
        let got = send_and_read(&mut stream, &request[split..], want.len()).await;
        assert_eq!(show(&got), show(want), "split at {split}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_without_newline_past_the_limit_closes_the_connection() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let reply = exchange(keyway.memcache_addr.unwrap(), &[b'x'; 5000]).await;
    assert_eq!(reply, b"CLIENT_ERROR line too long\r\n");
    // The process and other connections live on.
    let reply = exchange(keyway.memcache_addr.unwrap(), b"version\r\nquit\r\n").await;
    assert!(reply.starts_with(b"VERSION 1.6.18"));
}

#[tokio::test(flavor = "multi_thread")]
async fn multiget_over_two_kilobytes_works() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let keys: Vec<String> = (0..400).map(|i| format!(":1:key-number-{i:05}")).collect();
    let mut request = Vec::new();
    for key in &keys {
        request.extend_from_slice(format!("set {key} 0 0 1\r\nv\r\n").as_bytes());
    }
    request.extend_from_slice(format!("get {}\r\nquit\r\n", keys.join(" ")).as_bytes());
    let reply = String::from_utf8(exchange(keyway.memcache_addr.unwrap(), &request).await).unwrap();
    assert_eq!(reply.matches("VALUE ").count(), 400);
    assert!(reply.ends_with("END\r\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_reply_framer_reads_real_memcached_output() {
    use bytes::BytesMut;
    use keyway_protocol::memcache::{decode_response, Response};
    let memcached = start_memcached();
    let request = b"set k 16 0 8\r\na\r\nEND\r\n\r\nset n 0 0 1\r\n5\r\nget k nope n\r\ngets k\r\nincr n 2\r\n\
                    touch k 100\r\nmg k t f v\r\nmg nope v\r\nms m 2 T0\r\nhi\r\ndelete nope\r\nbogus\r\nversion\r\nquit\r\n";
    let reply = exchange(memcached.addr, request).await;
    let mut buf = BytesMut::from(&reply[..]);
    let mut got = Vec::new();
    while let Some(response) = decode_response(&mut buf, 1 << 20).unwrap() {
        got.push(response);
    }
    assert!(buf.is_empty(), "undecoded: {}", show(&buf));
    let kinds: Vec<String> = got
        .iter()
        .map(|r| match r {
            Response::Value {
                key,
                flags,
                data,
                cas,
            } => {
                format!(
                    "VALUE {} {flags} {} {}",
                    String::from_utf8_lossy(key),
                    data.len(),
                    cas.is_some()
                )
            }
            Response::Meta { code, flags, data } => format!(
                "{} {:?} {:?}",
                String::from_utf8_lossy(code),
                flags
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect::<Vec<_>>(),
                data.as_ref().map(|d| d.len())
            ),
            Response::Version(_) => "VERSION".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Stored",
            "Stored",
            "VALUE k 16 8 false",
            "VALUE n 0 1 false",
            "End",
            "VALUE k 16 8 true",
            "End",
            "Number(7)",
            "Touched",
            "VA [\"t100\", \"f16\"] Some(8)",
            "EN [] None",
            "HD [] None",
            "NotFound",
            "Error",
            "VERSION",
        ]
    );
}
