//! RESP commands forwarded to a redis route as they came: the same request
//! bytes through Keyway (whose routes lead to a real redis and to memory)
//! and straight to a real redis-server give the same reply bytes, in RESP2
//! and RESP3, for data types Keyway does not implement itself, scripts and
//! transactions; and what cannot be forwarded says so.

mod common;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{exchange, show, start_keyway, start_redis, External};
use keyway::server::Server;

/// Scripts run both ways; every key routes to the redis backend.
const SCRIPTS: &[&str] = &[
    "HSET h f1 v1 f2 v2\r\nHGETALL h\r\nHGET h f1\r\nHINCRBYFLOAT h n 1.5\r\nHMGET h f1 nope\r\nHDEL h f1\r\nHLEN h\r\nHKEYS h\r\n",
    "RPUSH l a b c\r\nLRANGE l 0 -1\r\nLPOP l\r\nLLEN l\r\nLINDEX l 0\r\nLMOVE l l2 LEFT RIGHT\r\nLRANGE l2 0 -1\r\n",
    "SADD s x y z\r\nSISMEMBER s x\r\nSCARD s\r\nSREM s y\r\nSMISMEMBER s x y\r\nSINTERCARD 1 s\r\n",
    "ZADD z 1 a 2 b 3.5 c\r\nZRANGE z 0 -1 WITHSCORES\r\nZSCORE z c\r\nZINCRBY z 2 a\r\nZRANK z a\r\nZPOPMIN z\r\nZUNIONSTORE d 1 z\r\nZCARD d\r\n",
    "SET str hello\r\nGETRANGE str 0 1\r\nSETRANGE str 0 J\r\nGET str\r\nINCRBYFLOAT f 2.5\r\nGETSET str x\r\nHSET str f v\r\nOBJECT ENCODING str\r\n",
    "PFADD hll a b c\r\nPFCOUNT hll\r\nSETBIT bits 7 1\r\nBITCOUNT bits\r\nGETBIT bits 7\r\nGEOADD g 13.36 38.11 pa\r\nGEOHASH g pa\r\n",
    "EVAL \"return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}\" 1 ctr x\r\nEVAL \"return redis.call('GET', KEYS[1])\" 1 ctr\r\nEVAL \"return 1.5\" 1 ctr\r\n",
    "MULTI\r\nHSET h a 1\r\nINCR c\r\nHGETALL h\r\nEXEC\r\nMULTI\r\nINCR c\r\nHSET\r\nEXEC\r\nGET c\r\n",
    "MULTI\r\nZADD z 1 a\r\nZREM b\r\nHGET h\r\nEXEC\r\nZCARD z\r\nMULTI\r\nZADD z 1 a\r\nZREM z a\r\nEXEC\r\n",
    "SET k v\r\nGET k\r\nMGET k nope\r\nSET k v2 GET\r\nDEL k nope\r\nEXPIRE k 100\r\nEXISTS k\r\nTTL nope\r\nTYPE l\r\nHSET k a\r\nGET a b\r\n",
];

fn request(script: &str, prefix: &str) -> Vec<u8> {
    format!("{prefix}FLUSHALL\r\n{script}QUIT\r\n").into_bytes()
}

/// Everything to one redis, except keys under `mem:`.
async fn keyway_before(redis: &External) -> Server {
    start_keyway(&format!(
        "[backends.redis]\nurl = \"redis://{}\"\n\
         [backends.memory]\nurl = \"memory://\"\ncapacity = \"8MiB\"\n\
         [[routes]]\nprefix = \"mem:\"\nbackend = \"memory\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"redis\"\nprotected = false\n",
        redis.addr
    ))
    .await
}

/// The bytes after the HELLO reply (which names the server, so differs).
fn after_hello(reply: &[u8]) -> Vec<u8> {
    let mut buf = bytes::BytesMut::from(reply);
    keyway_protocol::resp::decode_backend_reply(
        &mut buf,
        usize::MAX,
        keyway_protocol::resp::Version::Resp3,
    )
    .unwrap()
    .expect("a HELLO reply");
    buf.to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_replies_match_real_redis_byte_for_byte() {
    let direct = start_redis();
    let behind = start_redis();
    let keyway = keyway_before(&behind).await;
    for prefix in ["", "HELLO 3\r\n"] {
        for script in SCRIPTS {
            let request = request(script, prefix);
            let want = exchange(direct.addr, &request).await;
            let got = exchange(keyway.resp_addr.unwrap(), &request).await;
            let (got, want) = if prefix.is_empty() {
                (got, want)
            } else {
                (after_hello(&got), after_hello(&want))
            };
            assert_eq!(show(&got), show(&want), "{prefix}script:\n{script}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_cannot_be_forwarded_says_so() {
    let behind = start_redis();
    let keyway = keyway_before(&behind).await;
    let reply = exchange(
        keyway.resp_addr.unwrap(),
        b"SUNIONSTORE a mem:s\r\nHSET a f v\r\nMGET a mem:b\r\nBLPOP mem:q 0\r\nMULTI\r\nSUBSCRIBE ch\r\nDISCARD\r\n\
          MULTI\r\nSUNIONSTORE mem:d a\r\nHSET a g w\r\nEXEC\r\nHGETALL a\r\nHSET mem:h f v\r\nQUIT\r\n",
    )
    .await;
    let text = String::from_utf8(reply).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    // Keys on two routes (a redis one and a memory one): no one server has both.
    assert!(
        lines[0].starts_with(
            "-ERR 'SUNIONSTORE' works only on keys that all route to one redis backend or one \
             memory backend"
        ),
        "{text}"
    );
    assert_eq!(lines[1], ":1", "{text}");
    // MGET spanning redis and memory is split by Keyway, as for any backends.
    assert_eq!(&lines[2..5], ["*2", "$-1", "$-1"], "{text}");
    assert!(
        text.contains("-ERR 'BLPOP' is not available through Keyway"),
        "{text}"
    );
    assert!(
        text.contains("-ERR 'SUBSCRIBE' is not available through Keyway here"),
        "{text}"
    );
    // In a transaction, such a command is refused when queued, so EXEC
    // aborts, as redis does for an unknown command.
    assert!(
        text.contains("+OK\r\n-ERR 'SUNIONSTORE' works only on keys that all route to one redis backend or one memory backend"),
        "{text}"
    );
    assert!(text.contains("\r\n+QUEUED\r\n-EXECABORT"), "{text}");
    // A hash on the memory route is the memory store's own.
    assert!(
        text.ends_with("*2\r\n$1\r\nf\r\n$1\r\nv\r\n:1\r\n+OK\r\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn databases_scripts_and_flags_on_a_redis_route() {
    let behind = start_redis();
    let keyway = keyway_before(&behind).await;
    let resp = keyway.resp_addr.unwrap();
    // SELECT 1 on Keyway is database 1 on redis.
    let reply = exchange(
        resp,
        b"SELECT 1\r\nHSET h f v\r\nSELECT 0\r\nHGET h f\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(show(&reply), show(b"+OK\r\n:1\r\n+OK\r\n$-1\r\n+OK\r\n"));
    let reply = exchange(behind.addr, b"SELECT 1\r\nHGET h f\r\nQUIT\r\n").await;
    assert_eq!(show(&reply), show(b"+OK\r\n$1\r\nv\r\n+OK\r\n"));

    // A user script: SCRIPT LOAD reaches redis, EVALSHA is forwarded.
    let reply = exchange(resp, b"SCRIPT LOAD \"return KEYS[1]\"\r\nQUIT\r\n").await;
    let text = String::from_utf8(reply).unwrap();
    let sha = text.split("\r\n").nth(1).unwrap().to_string();
    let reply = exchange(
        resp,
        format!("EVALSHA {sha} 1 mykey\r\nQUIT\r\n").as_bytes(),
    )
    .await;
    assert_eq!(show(&reply), show(b"$5\r\nmykey\r\n+OK\r\n"));

    // Flags from memcached survive; RESP sees the plain value, redis the header.
    let reply = exchange(
        keyway.memcache_addr.unwrap(),
        b"set fl 42 0 2\r\nhi\r\nget fl\r\nquit\r\n",
    )
    .await;
    assert_eq!(
        show(&reply),
        show(b"STORED\r\nVALUE fl 42 2\r\nhi\r\nEND\r\n")
    );
    let reply = exchange(resp, b"GET fl\r\nMGET fl fl\r\nQUIT\r\n").await;
    assert_eq!(
        show(&reply),
        show(b"$2\r\nhi\r\n*2\r\n$2\r\nhi\r\n$2\r\nhi\r\n+OK\r\n")
    );
    let reply = exchange(behind.addr, b"GET fl\r\nQUIT\r\n").await;
    assert_eq!(show(&reply), show(b"$10\r\n\0kwf\0\0\0*hi\r\n+OK\r\n"));
}

/// SORT and GEORADIUS (with their STORE keys), and what names no key
/// (RANDOMKEY, LATENCY, SLOWLOG, FUNCTION, EVAL with no key, SORT by
/// pattern): forwarded where every route goes to one redis, with redis's own
/// replies; refused with the reason where routes lead elsewhere too.
#[tokio::test(flavor = "multi_thread")]
async fn sort_georadius_and_keyless_commands_reach_a_sole_redis() {
    const KEYLESS: &[&str] = &[
        "RPUSH l 3 1 2\r\nSORT l\r\nSORT l DESC LIMIT 0 2\r\nSORT l STORE dst\r\nLRANGE dst 0 -1\r\nSORT_RO l\r\n",
        "SET w_1 9\r\nSET w_2 1\r\nSET w_3 5\r\nSORT l BY w_*\r\nSORT l BY nosort GET #\r\n",
        "GEOADD g 13.361389 38.115556 pa 15.087269 37.502669 ca\r\nGEORADIUS g 15 37 200 km ASC\r\n\
         GEORADIUSBYMEMBER g pa 300 km ASC STORE near\r\nZRANGE near 0 -1\r\n",
        "SET only k\r\nRANDOMKEY\r\nEVAL \"return 7\" 0\r\nEVAL \"return redis.call('GET', 'only')\" 0\r\n\
         LATENCY LATEST\r\nSLOWLOG LEN\r\nFUNCTION LIST\r\n",
        "SCRIPT LOAD \"return 1\"\r\nSCRIPT EXISTS e0e1f9fabfc9d4800c877a703b823ac0578ff8db 0000000000000000000000000000000000000000\r\n\
         SCRIPT FLUSH\r\nSCRIPT EXISTS e0e1f9fabfc9d4800c877a703b823ac0578ff8db\r\nSCRIPT KILL\r\n",
        "COMMAND COUNT\r\nCOMMAND GETKEYS SORT l STORE d\r\nCOMMAND INFO get zadd\r\n",
        "SET a 1\r\nRPUSH l x\r\nSCAN 0 TYPE list\r\nSCAN 0 TYPE string\r\nKEYS l*\r\nDBSIZE\r\nMEMORY DOCTOR\r\nMEMORY USAGE a\r\n",
        "XADD s1 1-1 f v\r\nXADD s2 1-1 g w\r\nXREAD COUNT 5 STREAMS s1 s2 0 0\r\nXGROUP CREATE s1 grp 0\r\n\
         XREADGROUP GROUP grp c1 COUNT 1 STREAMS s1 >\r\nXREAD STREAMS s1\r\n",
    ];
    let direct = start_redis();
    let behind = start_redis();
    let keyway = start_keyway(&format!(
        "[backends.redis]\nurl = \"redis://{}\"\n[[routes]]\nglob = \"*\"\nbackend = \"redis\"\nprotected = false\n",
        behind.addr
    ))
    .await;
    for script in KEYLESS {
        let request = request(script, "");
        let want = exchange(direct.addr, &request).await;
        let got = exchange(keyway.resp_addr.unwrap(), &request).await;
        assert_eq!(show(&got), show(&want), "script:\n{script}");
    }

    // A RESP3 client's COMMAND INFO: redis's reply holds a set of arrays,
    // framed by Keyway's own RESP3 framer; the shared connection goes on.
    let reply = exchange(
        keyway.resp_addr.unwrap(),
        b"HELLO 3\r\nCOMMAND INFO get\r\nSET k v\r\nGET k\r\nQUIT\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&reply);
    assert!(!text.contains("malformed"), "{text}");
    assert!(text.contains("~"), "redis's RESP3 sets: {text}");
    assert!(text.ends_with("+OK\r\n$1\r\nv\r\n+OK\r\n"), "{text}");

    // CONFIG GET: redis's parameters, and Keyway's own for what it decides.
    let reply = exchange(
        keyway.resp_addr.unwrap(),
        b"CONFIG GET slowlog-log-slower-than\r\nCONFIG GET maxclients port\r\nCONFIG GET *\r\nQUIT\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with("*2\r\n$23\r\nslowlog-log-slower-than\r\n$5\r\n10000\r\n"),
        "{text}"
    );
    let port = keyway.resp_addr.unwrap().port().to_string();
    assert!(
        text.contains(&format!("$4\r\nport\r\n${}\r\n{port}\r\n", port.len())),
        "{text}"
    );
    assert_eq!(
        text.matches("$4\r\nport\r\n").count(),
        2,
        "once per GET: {text}"
    );
    assert!(text.contains("hash-max-listpack-entries"), "{text}");

    // Routes to redis and to memory: what names no key cannot be placed.
    let mixed = keyway_before(&behind).await;
    let reply = exchange(
        mixed.resp_addr.unwrap(),
        b"RPUSH l 1\r\nSORT l\r\nSORT l BY w_*\r\nRANDOMKEY\r\nEVAL \"return 7\" 0\r\nACL WHOAMI\r\nBGSAVE\r\n\
          XREAD BLOCK 10 STREAMS mem:s 0\r\nQUIT\r\n",
    )
    .await;
    let text = String::from_utf8(reply).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(&lines[..3], [":1", "*1", "$1"], "{text}");
    for (command, why) in [
        ("SORT", "names no key Keyway can route by"),
        ("RANDOMKEY", "names no key Keyway can route by"),
        ("EVAL", "names no key Keyway can route by"),
        ("ACL", "[[auth.users]] in its configuration file"),
        ("BGSAVE", "administers the redis server itself"),
        ("XREAD", "needs a redis connection of its own"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("'{command}'")) && l.contains(why)),
            "{command}: {text}"
        );
    }
    assert!(!text.contains("unknown command"), "{text}");
}

/// WATCH and blocking pops run on a redis connection of the client's own:
/// a watched key changed by another client aborts EXEC, as on redis-server;
/// a pop waits for another client's push, or its timeout.
#[tokio::test(flavor = "multi_thread")]
async fn watch_and_blocking_pops_get_a_connection_of_their_own() {
    let behind = start_redis();
    let keyway = keyway_before(&behind).await;
    let addr = keyway.resp_addr.unwrap();
    let watcher = async |other_writes: bool| {
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut other = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut replies = String::new();
        replies += &call(&mut client, "SET w 1").await;
        replies += &call(&mut client, "WATCH w").await;
        if other_writes {
            call(&mut other, "SET w 2").await;
        }
        replies += &call(&mut client, "MULTI").await;
        replies += &call(&mut client, "INCR w").await;
        replies += &call(&mut client, "EXEC").await;
        replies += &call(&mut client, "GET w").await;
        replies
    };
    assert_eq!(
        watcher(true).await,
        "+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n$1\r\n2\r\n"
    );
    assert_eq!(
        watcher(false).await,
        "+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:2\r\n$1\r\n2\r\n"
    );
    // An empty transaction is aborted too when a watched key changed.
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut other = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(call(&mut client, "WATCH w").await, "+OK\r\n");
    call(&mut other, "SET w 5").await;
    assert_eq!(call(&mut client, "MULTI\r\nEXEC").await, "+OK\r\n*-1\r\n");
    // A pop served by a push from another client.
    let mut popper = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut pusher = tokio::net::TcpStream::connect(addr).await.unwrap();
    popper.write_all(b"BLPOP q 5\r\n").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(call(&mut pusher, "RPUSH q x").await, ":1\r\n");
    let mut buf = vec![0; 64];
    let n = popper.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
    // Its timeout, then the connection serves on.
    let started = std::time::Instant::now();
    assert_eq!(call(&mut popper, "BRPOP q 0.3").await, "*-1\r\n");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    assert_eq!(call(&mut popper, "PING").await, "+PONG\r\n");
    // XREAD ... BLOCK waits the same way.
    assert_eq!(
        call(&mut popper, "XREAD BLOCK 200 STREAMS s $").await,
        "*-1\r\n"
    );
    popper
        .write_all(b"XREAD BLOCK 5000 STREAMS s $\r\n")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(call(&mut pusher, "XADD s 1-1 f v").await, "$3\r\n1-1\r\n");
    let n = popper.read(&mut buf).await.unwrap();
    assert!(buf[..n].windows(3).any(|w| w == b"1-1"), "{:?}", &buf[..n]);
    assert_eq!(
        call(&mut popper, "MULTI\r\nWATCH q").await,
        "+OK\r\n-ERR WATCH inside MULTI is not allowed\r\n"
    );
}

async fn call(stream: &mut tokio::net::TcpStream, line: &str) -> String {
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let mut got = Vec::new();
    // Every reply to `line`'s commands (one per line).
    let wanted = line.split("\r\n").count();
    while got.iter().filter(|&&b| b == b'\n').count() < wanted {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a reply")
            .unwrap();
        assert!(n > 0, "closed");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

/// Every key to `redis`, with room for one connection of a client's own.
async fn keyway_with_one_pinned_connection(redis: &External) -> Server {
    start_keyway(&format!(
        "[limits]\nmax_pinned_connections = 1\n\
         [backends.redis]\nurl = \"redis://{}\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"redis\"\nprotected = false\n",
        redis.addr
    ))
    .await
}

/// limits.max_pinned_connections: past it, a blocking pop is refused with
/// an error naming the limit, and the slot comes back when the pop ends.
#[tokio::test(flavor = "multi_thread")]
async fn connections_of_a_clients_own_are_bounded() {
    let behind = start_redis();
    let keyway = keyway_with_one_pinned_connection(&behind).await;
    let addr = keyway.resp_addr.unwrap();
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    first.write_all(b"BLPOP q 0.5\r\n").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let refused = call(&mut second, "BLPOP q 0.1").await;
    assert!(
        refused.starts_with("-ERR 1 clients already hold a redis connection of their own")
            && refused.contains("limits.max_pinned_connections"),
        "{refused}"
    );
    let mut buf = vec![0; 64];
    let n = first.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"*-1\r\n");
    assert_eq!(call(&mut second, "BLPOP q 0.1").await, "*-1\r\n");
}

/// Django session keys on a redis route (`keep_ended`, the default): reads
/// go to redis as they came (GET of a hash is redis's WRONGTYPE, which the
/// operation path, reading by MGET, would answer nil); a write after a
/// logout is refused, checked and written in one script on redis.
#[tokio::test(flavor = "multi_thread")]
async fn session_reads_go_as_they_came_and_writes_are_checked_in_one_script() {
    let behind = start_redis();
    let keyway = keyway_before(&behind).await;
    let resp = keyway.resp_addr.unwrap();
    let session = ":1:django.contrib.sessions.cacheabcdefghijklmnopqrstuvwxyz012345";
    let hash = ":1:django.contrib.sessions.cacheqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq";
    exchange(
        behind.addr,
        format!("HSET {hash} f v\r\nQUIT\r\n").as_bytes(),
    )
    .await;
    let reply = exchange(resp, format!("GET {hash}\r\nQUIT\r\n").as_bytes()).await;
    assert_eq!(
        show(&reply),
        show(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n+OK\r\n")
    );

    let reply = exchange(
        resp,
        format!("SET {session} one EX 100\r\nGET {session}\r\nDEL {session}\r\nSET {session} late EX 100\r\nGET {session}\r\nQUIT\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(
        show(&reply),
        show(b"+OK\r\n$3\r\none\r\n:1\r\n$-1\r\n$-1\r\n+OK\r\n")
    );
    // The marker is on redis, and the writes ran as one script each.
    let reply = exchange(
        behind.addr,
        format!("EXISTS {session}:keyway-ended\r\nINFO commandstats\r\nQUIT\r\n").as_bytes(),
    )
    .await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with(":1\r\n"), "{text}");
    let evalsha = text
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse::<u64>().ok());
    assert_eq!(evalsha, Some(2), "{text}");
}

/// A client that leaves during `BLPOP k 0` gives back its redis connection
/// at once (redis sees it close, and the slot under
/// limits.max_pinned_connections is free); one that pipelines after the pop
/// gets every reply.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_gone_during_a_blocking_pop_frees_its_connection() {
    let behind = start_redis();
    let keyway = keyway_with_one_pinned_connection(&behind).await;
    let addr = keyway.resp_addr.unwrap();
    let mut leaving = tokio::net::TcpStream::connect(addr).await.unwrap();
    leaving.write_all(b"BLPOP q 0\r\n").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drop(leaving);
    let mut pipelined = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut pusher = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut freed = false;
    for _ in 0..50 {
        let list = common::redis_cli(behind.addr, &["CLIENT", "LIST"]);
        if !list.contains("cmd=blpop") {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(freed, "redis still holds the gone client's BLPOP");
    pipelined
        .write_all(b"BLPOP q 0\r\nPING\r\nECHO after\r\n")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(call(&mut pusher, "RPUSH q x").await, ":1\r\n");
    let mut got = Vec::new();
    let mut buf = vec![0; 256];
    while !got.ends_with(b"after\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), pipelined.read(&mut buf))
            .await
            .expect("replies")
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        "*2\r\n$1\r\nq\r\n$1\r\nx\r\n+PONG\r\n$5\r\nafter\r\n"
    );
}

/// A redis that stops answering (SIGSTOP: its connections stay open) does
/// not leave a client of a connection of its own waiting forever: WATCH on
/// the held connection, EXEC of the watched transaction and a SUBSCRIBE
/// that opens one each get an error within the backend's
/// `request_timeout_ms`, as forwarded commands do; the connection is
/// dropped (a late reply would answer the wrong request), and the next EXEC
/// of the client whose WATCH it held aborts. A blocking pop
/// waits as long as it asked: its reply comes when redis answers it.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_that_stops_answering_times_out_own_connections() {
    use std::time::{Duration, Instant};
    let behind = start_redis();
    let keyway = start_keyway(&format!(
        "[backends.redis]\nurl = \"redis://{}\"\nrequest_timeout_ms = 300\n\
         [[routes]]\nglob = \"*\"\nbackend = \"redis\"\nprotected = false\n",
        behind.addr
    ))
    .await;
    let addr = keyway.resp_addr.unwrap();
    let mut watcher = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut transaction = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut subscriber = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut popper = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(call(&mut watcher, "WATCH a").await, "+OK\r\n");
    assert_eq!(
        call(&mut transaction, "WATCH b\r\nMULTI\r\nINCR b").await,
        "+OK\r\n+OK\r\n+QUEUED\r\n"
    );
    popper.write_all(b"BLPOP q 2\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    common::freeze(&behind);
    let frozen = Instant::now();
    let watch = call(&mut watcher, "WATCH c").await;
    let exec = call(&mut transaction, "EXEC").await;
    let subscribe = call(&mut subscriber, "SUBSCRIBE news").await;
    let waited = frozen.elapsed();
    for reply in [&watch, &exec, &subscribe] {
        assert!(
            reply.starts_with("-ERR") && reply.contains("request_timeout_ms"),
            "{reply}"
        );
    }
    // Three timeouts of 300 ms, one after the other.
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    let mut buf = vec![0; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), popper.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the blocking pop was answered while redis was stopped"
    );
    common::thaw(&behind);

    // redis answers the pop (its 2 s are up), and the clients go on.
    let n = tokio::time::timeout(Duration::from_secs(5), popper.read(&mut buf))
        .await
        .expect("the pop's reply once redis runs again")
        .unwrap();
    assert_eq!(&buf[..n], b"*-1\r\n");
    // The watch on `a` went with the dropped connection: the transaction
    // aborts as if `a` had changed (WATCH again does not bring it back),
    // and the next one, unwatched, runs.
    assert_eq!(call(&mut watcher, "WATCH a").await, "+OK\r\n");
    assert_eq!(
        call(&mut watcher, "MULTI\r\nINCR a\r\nEXEC").await,
        "+OK\r\n+QUEUED\r\n*-1\r\n"
    );
    assert_eq!(
        call(&mut watcher, "MULTI\r\nINCR a\r\nEXEC").await,
        "+OK\r\n+QUEUED\r\n*1\r\n:1\r\n"
    );
    assert_eq!(
        call(&mut subscriber, "SUBSCRIBE news").await,
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    );
}
