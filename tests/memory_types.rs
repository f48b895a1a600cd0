//! redis's collections on the memory route, compared with a real
//! redis-server: every line of [`SCRIPT`] is sent to both, under RESP2 and
//! again under RESP3, and the replies must be the same bytes (the members
//! of sets in sorted order, and random picks by their count, since redis
//! itself does not promise those).

mod common;

use bytes::{Bytes, BytesMut};
use common::{start_keyway, start_redis, ONE_MEMORY_ROUTE};
use keyway_protocol::resp::{frame_backend_reply, parse_backend_reply, Reply, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Commands run in order against an empty keyspace (arguments split on spaces).
const SCRIPT: &[&str] = &[
    "RANDOMKEY",
    // hashes
    "HSET h f1 v1 f2 v2 f3 v3",
    "HSET h f1 w1 f4 v4",
    "HSET h f1",
    "HGET h f1",
    "HGET h nope",
    "HGET nohash f",
    "HMGET h f1 nope f2",
    "HGETALL h",
    "HKEYS h",
    "HVALS h",
    "HLEN h",
    "HEXISTS h f2",
    "HEXISTS h nope",
    "HSTRLEN h f1",
    "HSETNX h f1 x",
    "HSETNX h f9 x",
    "HMSET h a 1 b 2",
    "HDEL h f2 nope a",
    "HGETALL h",
    "HINCRBY h b 5",
    "HINCRBY h b x",
    "HINCRBY h f1 1",
    "HINCRBY h big 9223372036854775807",
    "HINCRBY h big 1",
    "HINCRBYFLOAT h fl 1.5",
    "HINCRBYFLOAT h fl 2.25",
    "HINCRBYFLOAT h f1 1",
    "HINCRBYFLOAT h fl x",
    "HSCAN h 0",
    "HSCAN h 0 MATCH f*",
    "HSCAN h 0 COUNT 0",
    "HRANDFIELD nohash",
    "HRANDFIELD nohash 3",
    "HDEL h f1 f3 f4 f9 b big fl",
    "EXISTS h",
    "TYPE h",
    // lists
    "RPUSH l a b c",
    "LPUSH l z y",
    "LPUSHX nolist a",
    "RPUSHX l d",
    "LRANGE l 0 -1",
    "LRANGE l -2 100",
    "LRANGE l 5 1",
    "LLEN l",
    "LINDEX l 0",
    "LINDEX l -1",
    "LINDEX l 99",
    "LINDEX l x",
    "LSET l 1 Y",
    "LSET l 99 Y",
    "LSET nolist 0 Y",
    "LINSERT l BEFORE a A",
    "LINSERT l AFTER d D",
    "LINSERT l AFTER nope D",
    "LINSERT l MIDDLE a D",
    "LINSERT nolist AFTER a D",
    "RPUSH l a a",
    "LPOS l a",
    "LPOS l a RANK 2",
    "LPOS l a RANK -1",
    "LPOS l a COUNT 0",
    "LPOS l a COUNT 2 MAXLEN 5",
    "LPOS l a RANK 0",
    "LPOS l nope",
    "LREM l 1 a",
    "LREM l -1 a",
    "LRANGE l 0 -1",
    "LREM l 0 a",
    "LPOP l",
    "RPOP l",
    "LPOP l 2",
    "LPOP l 0",
    "LPOP l -1",
    "LPOP nolist",
    "LPOP nolist 2",
    "RPUSH src 1 2 3",
    "LMOVE src dst LEFT RIGHT",
    "LMOVE src dst RIGHT LEFT",
    "LMOVE src src LEFT RIGHT",
    "LMOVE src dst UP LEFT",
    "RPOPLPUSH src dst",
    "LRANGE dst 0 -1",
    "RPOPLPUSH nolist dst",
    "LMPOP 2 nolist dst LEFT",
    "LMPOP 1 dst RIGHT COUNT 5",
    "LMPOP 1 dst RIGHT",
    "LMPOP 0 dst RIGHT",
    "LMPOP 1 dst MIDDLE",
    "LMPOP 1 l LEFT COUNT 0",
    "LTRIM l 1 -2",
    "LRANGE l 0 -1",
    "LTRIM l 5 1",
    "EXISTS l",
    // sets
    "SADD s 3 1 2",
    "SADD s 2 4",
    "SCARD s",
    "SISMEMBER s 1",
    "SISMEMBER s 9",
    "SMISMEMBER s 1 9 2",
    "SMEMBERS s",
    "SREM s 1 9",
    "SADD t 2 5 x",
    "SDIFF s t",
    "SINTER s t",
    "SUNION s t nos",
    "SINTER s nos",
    "SDIFFSTORE d s t",
    "SMEMBERS d",
    "SINTERSTORE d s nos",
    "EXISTS d",
    "SUNIONSTORE d s t",
    "SCARD d",
    "SINTERCARD 2 s t",
    "SINTERCARD 2 s t LIMIT 1",
    "SINTERCARD 0 s",
    "SINTERCARD 1 s LIMIT -1",
    "SMOVE s t 3",
    "SMOVE s t 99",
    "SMOVE s s 4",
    "SMEMBERS t",
    "OBJECT ENCODING s",
    "OBJECT ENCODING t",
    "SSCAN s 0",
    "SPOP nos",
    "SPOP nos 2",
    "SPOP s 0",
    "SPOP s -1",
    "SRANDMEMBER nos",
    "SRANDMEMBER nos 5",
    "SRANDMEMBER s 0",
    // sorted sets
    "ZADD z 1 a 2 b 3 c",
    "ZADD z 1.5 d 2 b",
    "ZADD z CH 5 a 2 b",
    "ZADD z NX 9 a 9 e",
    "ZADD z XX 10 a 10 f",
    "ZADD z GT 1 a",
    "ZADD z LT 1 a",
    "ZADD z INCR 1 c",
    "ZADD z NX INCR 1 c",
    "ZADD z NX XX 1 a",
    "ZADD z GT LT 1 a",
    "ZADD z INCR 1 a 2 b",
    "ZADD z 1",
    "ZADD z x a",
    "ZADD z 1.1 g 1e21 h 0.1 i",
    "ZSCORE z a",
    "ZSCORE z g",
    "ZSCORE z h",
    "ZSCORE z nope",
    "ZMSCORE z a nope i",
    "ZINCRBY z 0.2 i",
    "ZINCRBY z x i",
    "ZCARD z",
    "ZRANK z a",
    "ZREVRANK z a",
    "ZRANK z nope",
    "ZRANGE z 0 -1",
    "ZRANGE z 0 -1 WITHSCORES",
    "ZRANGE z 1 2 REV",
    "ZRANGE z 2 5 BYSCORE",
    "ZRANGE z (2 +inf BYSCORE LIMIT 1 2 WITHSCORES",
    "ZRANGE z +inf -inf BYSCORE REV",
    "ZRANGE z 0 1 LIMIT 0 1",
    "ZRANGE z a b BYLEX WITHSCORES",
    "ZRANGE z 0 1 WITHSCORES WITHSCORES",
    "ZRANGE z x 1",
    "ZRANGEBYSCORE z -inf 3 WITHSCORES",
    "ZRANGEBYSCORE z (1 (3",
    "ZRANGEBYSCORE z x 1",
    "ZRANGEBYSCORE z 1 3 LIMIT -1 2",
    "ZREVRANGEBYSCORE z 3 -inf",
    "ZREVRANGE z 0 1 WITHSCORES",
    "ZCOUNT z 2 3",
    "ZCOUNT z (2 (3",
    "ZREMRANGEBYSCORE z 1e20 +inf",
    "ZPOPMIN z",
    "ZPOPMAX z 2",
    "ZPOPMIN z -1",
    "ZPOPMIN noz",
    "ZPOPMIN noz 2",
    "ZADD lex 0 a 0 b 0 c 0 d 0 e",
    "ZRANGEBYLEX lex - +",
    "ZRANGEBYLEX lex [b (d",
    "ZRANGEBYLEX lex (b + LIMIT 1 2",
    "ZREVRANGEBYLEX lex + [c",
    "ZRANGEBYLEX lex b d",
    "ZRANGE lex [c - BYLEX REV",
    "ZLEXCOUNT lex [b [d",
    "ZREMRANGEBYLEX lex - (b",
    "ZREMRANGEBYRANK lex 0 0",
    "ZRANGE lex 0 -1",
    "ZADD z2 1 a 2 b 3 x",
    "ZUNION 2 z z2 WITHSCORES",
    "ZUNION 2 z z2 WEIGHTS 2 3 AGGREGATE MAX WITHSCORES",
    "ZINTER 2 z z2 WITHSCORES",
    "ZINTER 2 z s WITHSCORES",
    "ZDIFF 2 z2 z WITHSCORES",
    "ZUNIONSTORE zd 2 z z2",
    "ZRANGE zd 0 -1 WITHSCORES",
    "ZINTERSTORE zd 2 z2 lex AGGREGATE MIN",
    "EXISTS zd",
    "ZDIFFSTORE zd 1 z2",
    "ZINTERCARD 2 z z2",
    "ZINTERCARD 2 z z2 LIMIT 1",
    "ZUNION 0 z",
    "ZUNIONSTORE zd 0 z",
    "ZUNION 2 z",
    "ZUNION 1 z WEIGHTS x",
    "ZUNION 1 z AGGREGATE foo",
    "ZRANGESTORE zd z2 0 1",
    "ZRANGESTORE zd z2 (1 +inf BYSCORE",
    "ZRANGE zd 0 -1 WITHSCORES",
    "ZMPOP 2 noz z2 MIN COUNT 2",
    "ZMPOP 1 z2 MAX",
    "ZMPOP 1 noz MAX",
    "ZMPOP 1 z2 FOO",
    "ZSCAN z 0",
    "ZRANDMEMBER noz",
    "ZRANDMEMBER noz 3",
    "OBJECT ENCODING z",
    // SORT
    "RPUSH sl 3 1 2 10",
    "SORT sl",
    "SORT sl DESC",
    "SORT sl ALPHA",
    "SORT sl LIMIT 1 2",
    "SORT sl LIMIT 5 2",
    "SORT sl LIMIT -1 -1",
    "MSET w_1 30 w_2 20 w_3 10 o_1 one o_2 two",
    "HSET hw_1 f 9",
    "HSET hw_2 f 8",
    "SORT sl BY w_*",
    "SORT sl BY w_* DESC GET # GET o_*",
    "SORT sl BY nosort",
    "SORT sl BY hw_*->f GET hw_*->f",
    "SORT sl BY w_* ALPHA",
    "SORT_RO sl BY w_* GET o_*",
    "SORT_RO sl STORE x",
    "SORT sl BY w_* GET o_* STORE sorted",
    "LRANGE sorted 0 -1",
    "SADD ss b a c",
    "SORT ss ALPHA",
    "SORT ss",
    "SORT nosl",
    "ZADD sz 1 z 2 y 3 x",
    "SORT sz BY nosort LIMIT 0 2",
    "SORT sz ALPHA DESC",
    "SORT w_1",
    "SORT sl FOO",
    "SORT sl LIMIT 1",
    // bits of strings
    "SETBIT bits 7 1",
    "SETBIT bits 100 1",
    "SETBIT bits 7 0",
    "SETBIT bits 7 1",
    "SETBIT bits 3 2",
    "SETBIT bits -1 1",
    "GETBIT bits 7",
    "GETBIT bits 8",
    "GETBIT bits 99999",
    "GETBIT bits x",
    "BITCOUNT bits",
    "BITCOUNT bits 0 0",
    "BITCOUNT bits 1 -1",
    "BITCOUNT bits 0 7 BIT",
    "BITCOUNT bits -5 -1 BIT",
    "BITCOUNT bits 0",
    "BITCOUNT bits 0 1 WORD",
    "BITCOUNT nobits",
    "SET str2 foobar",
    "BITCOUNT str2 1 1",
    "SUBSTR str2 1 3",
    "RANDOMKEY",
    "BITCOUNT str2 5 30 BIT",
    "BITPOS bits 1",
    "BITPOS bits 0",
    "BITPOS bits 1 1",
    "BITPOS bits 1 2 -1",
    "BITPOS bits 1 0 15 BIT",
    "BITPOS bits 0 0 0",
    "BITPOS str2 0 1 1",
    "BITPOS nobits 0",
    "BITPOS nobits 1",
    "BITPOS bits 2",
    "BITOP AND dest bits str2",
    "GET dest",
    "BITOP OR dest bits str2",
    "GET dest",
    "BITOP XOR dest bits str2 nobits",
    "GET dest",
    "BITOP NOT dest str2",
    "GET dest",
    "BITOP NOT dest bits str2",
    "BITOP FOO dest bits",
    "BITOP AND dest nobits",
    "EXISTS dest",
    "SADD bitset a",
    "GETBIT bitset 0",
    "SETBIT bitset 0 1",
    "BITCOUNT bitset",
    "BITOP AND dest bitset",
    "EXPIREAT bits 4102444800",
    "EXPIRETIME bits",
    "PEXPIRETIME bits",
    "EXPIREAT bitset 4102444800",
    "EXPIRETIME bitset",
    "EXPIRETIME str2",
    "EXPIRETIME nope",
    // any key
    "SET str v",
    "INCRBYFLOAT fl 1.1",
    "INCRBYFLOAT fl 2e20",
    "INCRBYFLOAT str 1",
    "INCRBYFLOAT fl x",
    "TYPE z",
    "TYPE s",
    "TYPE str",
    "TYPE nope",
    "GET z",
    "MGET z str",
    "SET z v GET",
    "APPEND z x",
    "INCR z",
    "STRLEN z",
    "GETDEL z",
    "LPUSH str a",
    "HGET str f",
    "SADD z a",
    "ZADD s 1 a",
    "SET z v NX",
    "EXPIRE z2 100",
    "TTL z2",
    "PERSIST z2",
    "TTL z2",
    "RENAME z2 z3",
    "ZRANGE z3 0 -1",
    "RENAME nope z4",
    "RENAMENX z3 s",
    "RENAMENX z3 z4",
    "COPY z4 z5",
    "COPY z4 s",
    "COPY z4 s REPLACE",
    "TYPE s",
    "COPY z4 z4",
    "EXISTS z4 str nope z4",
    "TOUCH z4 nope",
    "ZRANGE z5 0 -1 WITHSCORES",
    "MGET z5",
    "MOVE z5 3",
    "EXISTS z5",
    "MOVE z5 3",
    "COPY z4 z5",
    "MOVE z5 3",
    "MOVE z5 0",
    "MOVE z5 99",
    "SELECT 3",
    "ZRANGE z5 0 -1 WITHSCORES",
    "MOVE z5 0",
    "SELECT 0",
    "SCAN 0 COUNT 1000",
    "SCAN 0 COUNT 1000 TYPE zset",
    "SCAN 0 COUNT 1000 TYPE string",
    "SCAN 0 COUNT 1000 MATCH s* TYPE set",
    "SCAN 0 COUNT 1000 TYPE nosuchtype",
    "DEL z4 z5 s t",
    "EXISTS z4 z5",
    "SET z v XX",
    "TYPE z",
];

/// Commands whose reply order (sets) or content (random picks) redis
/// does not fix: compared sorted, or by size.
fn normalize(line: &str, reply: Reply) -> Reply {
    let command = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
    let sorted = |items: Vec<Reply>| {
        let mut items = items;
        items.sort_by_key(|r| format!("{r:?}"));
        items
    };
    match (command.as_str(), reply) {
        ("SMEMBERS" | "SDIFF" | "SINTER" | "SUNION", Reply::Array(items) | Reply::Set(items)) => {
            Reply::Set(sorted(items))
        }
        ("SPOP" | "SRANDMEMBER" | "HRANDFIELD" | "ZRANDMEMBER", Reply::Array(items)) => {
            Reply::Integer(items.len() as i64)
        }
        ("SPOP" | "SRANDMEMBER", Reply::Set(items)) => Reply::Integer(items.len() as i64),
        ("RANDOMKEY", Reply::Bulk(_)) => Reply::Integer(1),
        ("SCAN", Reply::Array(mut page)) if page.len() == 2 => {
            if let Reply::Array(keys) = page.pop().unwrap() {
                page.push(Reply::Array(sorted(keys)));
            }
            Reply::Array(page)
        }
        (_, reply) => reply,
    }
}

struct Client {
    stream: TcpStream,
    buffer: BytesMut,
    version: Version,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            buffer: BytesMut::new(),
            version: Version::Resp2,
        }
    }

    async fn call(&mut self, args: &[&str]) -> Bytes {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.stream.write_all(request.as_bytes()).await.unwrap();
        loop {
            if let Some(frame) =
                frame_backend_reply(&mut self.buffer, 1 << 24, self.version).unwrap()
            {
                return frame;
            }
            let read = self.stream.read_buf(&mut self.buffer).await.unwrap();
            assert!(read > 0, "connection closed after {args:?}");
        }
    }
}

async fn run_script(redis: &mut Client, keyway: &mut Client) -> Vec<String> {
    let mut differences = Vec::new();
    for client in [&mut *redis, &mut *keyway] {
        client.call(&["FLUSHALL"]).await;
    }
    for line in SCRIPT {
        let args: Vec<&str> = line.split(' ').collect();
        let want = redis.call(&args).await;
        let got = keyway.call(&args).await;
        if want == got {
            continue;
        }
        let parse = |raw: &Bytes| normalize(line, parse_backend_reply(raw, redis.version).unwrap());
        if parse(&want) != parse(&got) {
            differences.push(format!(
                "{:?} {line}\n  redis:  {}\n  keyway: {}",
                redis.version,
                String::from_utf8_lossy(&want).escape_debug(),
                String::from_utf8_lossy(&got).escape_debug()
            ));
        }
    }
    differences
}

#[tokio::test(flavor = "multi_thread")]
async fn collections_on_the_memory_route_answer_as_redis_does() {
    let redis_server = start_redis();
    let keyway_server = start_keyway(ONE_MEMORY_ROUTE).await;
    let mut redis = Client::connect(redis_server.addr).await;
    let mut keyway = Client::connect(keyway_server.resp_addr.unwrap()).await;
    let mut differences = run_script(&mut redis, &mut keyway).await;
    for client in [&mut redis, &mut keyway] {
        client.version = Version::Resp3;
        client.call(&["HELLO", "3"]).await;
    }
    differences.extend(run_script(&mut redis, &mut keyway).await);
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// A memory route beside a SQL one: collections live on the first, in a
/// transaction too; the SQL route holds strings and refuses them saying
/// where they can live; a collection counts against the capacity, and one
/// that would outgrow what the store holds for a key is refused whole.
#[tokio::test(flavor = "multi_thread")]
async fn collections_live_on_memory_routes_and_count_against_the_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let keyway = start_keyway(&format!(
        "[backends.memory]\nurl = \"memory://\"\ncapacity = \"8MiB\"\n\
         [backends.sql]\nurl = \"sqlite://{}/items.sqlite3\"\n\
         [[routes]]\nprefix = \"sql:\"\nbackend = \"sql\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"memory\"\n",
        dir.path().display()
    ))
    .await;
    let mut client = Client::connect(keyway.resp_addr.unwrap()).await;
    let text = |raw: Bytes| String::from_utf8_lossy(&raw).into_owned();
    let refused = text(client.call(&["HSET", "sql:h", "f", "v"]).await);
    assert!(
        refused.starts_with(
            "-ERR 'HSET' works only on keys that all route to one redis backend or one memory \
             backend (redis's hashes, lists, sets and sorted sets live there; SQL"
        ),
        "{refused}"
    );
    assert_eq!(text(client.call(&["MULTI"]).await), "+OK\r\n");
    for command in [
        &["HSET", "h", "f", "v"][..],
        &["LPUSH", "l", "a"],
        &["HGET", "h", "f"],
    ] {
        assert_eq!(text(client.call(command).await), "+QUEUED\r\n");
    }
    assert_eq!(
        text(client.call(&["EXEC"]).await),
        "*3\r\n:1\r\n:1\r\n$1\r\nv\r\n"
    );
    // A handful of keys over a SQL store and a sharded memory store comes
    // back whole from one SCAN, as from redis; TYPE asks each route.
    client.call(&["SET", "sql:s", "v"]).await;
    client.call(&["SET", "m", "v"]).await;
    let page = text(client.call(&["SCAN", "0"]).await);
    assert!(page.starts_with("*2\r\n$1\r\n0\r\n*4\r\n"), "{page}");
    let hashes = text(client.call(&["SCAN", "0", "TYPE", "hash"]).await);
    assert_eq!(hashes, "*2\r\n$1\r\n0\r\n*1\r\n$1\r\nh\r\n");
    let strings = text(client.call(&["SCAN", "0", "TYPE", "string"]).await);
    assert!(
        strings.contains("sql:s") && strings.contains("\r\nm\r\n"),
        "{strings}"
    );

    // 2 MiB in one hash: MEMORY USAGE and the store's own figure count it.
    let value = "x".repeat(100 * 1024);
    for field in 0..20 {
        let field = field.to_string();
        client.call(&["HSET", "big", &field, &value]).await;
    }
    let usage = text(client.call(&["MEMORY", "USAGE", "big"]).await);
    let usage: u64 = usage.trim_start_matches(':').trim().parse().unwrap();
    assert!(usage > 20 * 100 * 1024, "{usage}");
    let current = keyway.current();
    let (_, memory) = current
        .resp_router
        .backends()
        .find(|(_, b)| b.kind() == "memory")
        .unwrap();
    let bytes = memory.usage().bytes;
    assert!(bytes > 20 * 100 * 1024, "{bytes} {:?}", memory.usage());
    // Past what the store holds for one key (half of a shard: 4 MiB here),
    // the write is refused and the hash stays as it was.
    let mut answer = String::new();
    for field in 20..60 {
        let field = field.to_string();
        answer = text(client.call(&["HSET", "big", &field, &value]).await);
        if answer.starts_with("-OOM") {
            break;
        }
    }
    assert!(answer.starts_with("-OOM"), "{answer}");
    let len = text(client.call(&["HLEN", "big"]).await);
    let len: usize = len.trim_start_matches(':').trim().parse().unwrap();
    assert!((20..60).contains(&len), "{len}");
}
