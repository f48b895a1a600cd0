//! Differential tests: several hundred generated command lines — every
//! command with missing, extra, negative, overflowing, non-numeric and
//! misplaced tokens, wrong case, odd spacing and empty lines — sent to a real
//! memcached and to Keyway's memory route; the reply bytes must be the same
//! (the version string and CAS ids aside). A difference is either fixed or
//! listed in `KNOWN` with its reason (and in docs/protocol-compatibility.md).

mod common;

use common::{after_hello, exchange, show, start_keyway, start_memcached, ONE_MEMORY_ROUTE};

/// Numeric tokens that are not plain small numbers.
const ODD_NUMBERS: &[&str] = &[
    "-1",
    "0",
    "4294967295",
    "4294967296",
    "-2147483649",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999",
    "x",
    "1x",
    "+1",
    "0x10",
    "１",
];

/// Each command's well-formed line, with `N` where a number goes.
const TEMPLATES: &[&str] = &[
    "get k",
    "gets k",
    "gat N k",
    "gats N k",
    "set k N N 2",
    "add k N N 2",
    "replace k N N 2",
    "append k N N 2",
    "prepend k N N 2",
    "cas k N N 2 N",
    "delete k",
    "delete k N",
    "incr k N",
    "decr k N",
    "touch k N",
    "flush_all N",
    "verbosity N",
    "version",
    "quit",
];

fn is_storage(command: &str) -> bool {
    matches!(
        command,
        "set" | "add" | "replace" | "append" | "prepend" | "cas"
    )
}

/// The lines a template yields: as written (numbers 1), each numeric field
/// odd (with and without a trailing `noreply`), each token dropped, one token too many, `noreply` at each place,
/// the command in upper case, and odd spacing.
fn variants(template: &str) -> Vec<String> {
    let tokens: Vec<&str> = template.split(' ').collect();
    let plain: Vec<String> = tokens
        .iter()
        .map(|t| {
            if *t == "N" {
                "1".to_string()
            } else {
                t.to_string()
            }
        })
        .collect();
    let mut lines = vec![plain.join(" ")];
    for (i, token) in tokens.iter().enumerate() {
        if *token == "N" {
            for odd in ODD_NUMBERS {
                let mut line = plain.clone();
                line[i] = odd.to_string();
                lines.push(line.join(" "));
                // Refused under noreply: memcached says nothing at all.
                lines.push(format!("{} noreply", line.join(" ")));
            }
        }
    }
    for i in 0..plain.len() {
        let mut line = plain.clone();
        line.remove(i);
        lines.push(line.join(" "));
    }
    lines.push(format!("{} extra", plain.join(" ")));
    lines.push(format!("{} extra more", plain.join(" ")));
    for i in 1..=plain.len() {
        let mut line = plain.clone();
        line.insert(i, "noreply".into());
        lines.push(line.join(" "));
    }
    lines.push(plain.join(" ").to_uppercase());
    lines.push(format!("  {}", plain.join("   ")));
    lines.push(format!("{} ", plain.join(" ")));
    lines.push(plain.join("\t"));
    lines
}

/// One case: a fresh item `k` holding `1`, the line (with a 2-byte data
/// block after storage commands), then `get k` to show what it did.
fn case(line: &str) -> Vec<u8> {
    let mut bytes = b"flush_all\r\nset k 0 0 1\r\n1\r\n".to_vec();
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    let command = line.split_whitespace().next().unwrap_or("");
    if is_storage(&command.to_ascii_lowercase()) || command == "ms" {
        bytes.extend_from_slice(b"ab\r\n");
    }
    bytes.extend_from_slice(b"get k\r\nquit\r\n");
    bytes
}

/// Replies with what differs by design blanked: the version string and CAS
/// ids (Keyway's are its own).
fn normalized(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.split_inclusive("\r\n")
        .map(|line| {
            if line.starts_with("VERSION ") {
                return "VERSION <version>\r\n".to_string();
            }
            let tokens: Vec<&str> = line.trim_end().split(' ').collect();
            if tokens.first() == Some(&"VALUE") && tokens.len() == 5 {
                return format!(
                    "{} {} {} {} <cas>\r\n",
                    tokens[0], tokens[1], tokens[2], tokens[3]
                );
            }
            if line.starts_with("ME ") {
                // memcached's own bookkeeping (access time, CAS id, class,
                // size); the key and exp must match.
                let kept: Vec<&str> = line
                    .trim_end()
                    .split(' ')
                    .filter(|t| {
                        !["la=", "cas=", "fetch=", "cls=", "size="]
                            .iter()
                            .any(|p| t.starts_with(p))
                    })
                    .collect();
                return format!("{}\r\n", kept.join(" "));
            }
            if ["VA ", "HD", "EN", "NS", "EX", "NF"]
                .iter()
                .any(|code| line.starts_with(code))
            {
                // A meta reply's CAS ids (`c<n>`) are each server's own.
                let tokens: Vec<String> = line
                    .trim_end()
                    .split(' ')
                    .map(|t| match t.strip_prefix('c') {
                        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                            "c<cas>".into()
                        }
                        _ => t.to_string(),
                    })
                    .collect();
                return format!("{}\r\n", tokens.join(" "));
            }
            line.to_string()
        })
        .collect()
}

/// Lines Keyway answers differently on purpose, with why.
const KNOWN: &[(&str, &str)] = &[(
    "stats items extra",
    "item figures per slab class are Keyway's own: it has no slab classes",
)];

#[tokio::test(flavor = "multi_thread")]
async fn memcached_text_lines_get_memcacheds_own_replies() {
    let memcached = start_memcached();
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let keyway_addr = keyway.memcache_addr.unwrap();
    let mut lines: Vec<String> = TEMPLATES.iter().flat_map(|t| variants(t)).collect();
    lines.extend(
        [
            "",
            " ",
            "bogus",
            "GET k",
            "get",
            "gat",
            "gat 10",
            "version foo bar",
            "stats nonsense",
            "stats reset",
            "stats detail dump",
            "stats detail on",
            "stats detail off",
            "stats items extra",
            "cache_memlimit 100",
            "cache_memlimit",
            "cache_memlimit x",
            "shutdown",
            "flush_all noreply extra",
            "flush_all -1",
            "verbosity",
            "quit extra",
            "mn",
        ]
        .map(String::from),
    );
    lines.sort();
    lines.dedup();
    let mut differences = Vec::new();
    for line in &lines {
        let request = case(line);
        let want = normalized(&exchange(memcached.addr, &request).await);
        let got = normalized(&exchange(keyway_addr, &request).await);
        if got != want && !KNOWN.iter().any(|(known, _)| known == line) {
            differences.push(format!(
                "{line:?}\n  memcached: {}\n  keyway:    {}",
                show(want.as_bytes()),
                show(got.as_bytes())
            ));
        }
    }
    println!("{} lines compared", lines.len());
    assert!(
        differences.is_empty(),
        "{} of {} lines answered differently:\n{}",
        differences.len(),
        lines.len(),
        differences.join("\n")
    );
}

/// Meta command lines: each command with its return flags, modes, opaque,
/// base64 keys, `q`, and every refusal (missing tokens, unknown, duplicate
/// and malformed flags, bad modes, long opaques).
const META_LINES: &[&str] = &[
    "mg k",
    "mg k v",
    "mg k v f t s",
    "mg k s v",
    "mg k k",
    "mg k Oab12 k v",
    "mg k q",
    "mg k q v",
    "mg aw== b v k",
    "mg !!! b v",
    "mg k T30 v t",
    "mg k T-1 v",
    "mg k t",
    "mg k c v",
    "mg k h l",
    "mg k f",
    "mg k u v",
    "mg nokey v",
    "mg nokey q v",
    "mg nokey k Oa",
    "mg nokey b",
    "mg",
    "mg k x",
    "mg k v v",
    "mg k T",
    "mg k Tx",
    "mg k O123456789012345678901234567890123",
    "mg k a b c d e f g h i j k l m n o p q r s t",
    "mg k v f t s c k O1 q u h l",
    "ms k 2",
    "ms k 2 T0 F5",
    "ms k 2 F4294967296",
    "ms k 2 Fx",
    "ms k 2 MA",
    "ms k 2 MP",
    "ms k 2 ME",
    "ms k 2 MR",
    "ms nokey 2 MR",
    "ms nokey 2 MA",
    "ms k 2 MS",
    "ms k 2 MX",
    "ms k 2 Mxx",
    "ms k 2 q",
    "ms k 2 k Oa",
    "ms k 2 c",
    "ms k",
    "ms k x",
    "ms k -1",
    "ms k 2 C1",
    "ms k 2 C0",
    "ms k 2 MR C1",
    "ms k 2 b",
    "ms aw== 2 b k",
    "ms k 2 T-1",
    "ms k 2 v t s",
    "ms k 2 x",
    "ms k 2 q q",
    "ms",
    "ms k 2 O123456789012345678901234567890123",
    "md k",
    "md k q",
    "md nokey",
    "md nokey q",
    "md k C1",
    "md k k Oa",
    "md k x",
    "md k v v",
    "md",
    "md aw== b",
    "md k O123456789012345678901234567890123",
    "ma k",
    "ma k v",
    "ma k MD v",
    "ma k M- v",
    "ma k M+ v",
    "ma k D5 v t",
    "ma k D5 MD v",
    "ma nokey",
    "ma nokey v",
    "ma nokey N0 J7 v",
    "ma nokey N0 v",
    "ma k MX",
    "ma k Dx",
    "ma k Jx",
    "ma k q",
    "ma k q v",
    "ma k C1",
    "ma k v c",
    "ma k k Oa",
    "ma k T30 t v",
    "ma",
    "ma k x",
    "ma k D18446744073709551615 v",
    "me k",
    "me nokey",
    "me",
    "me aw== b",
    "mx k",
    "mgg k",
];

/// The meta lines that differ on purpose, with why (docs/protocol-compatibility.md
/// lists the rest: leases, stale items, `me`'s figures).
const META_KNOWN: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread")]
async fn meta_command_lines_get_memcacheds_own_replies() {
    let memcached = start_memcached();
    // Keyway's memory store, and a pool of three memcached behind Keyway.
    let (_pool, pool_config) = common::memcached_pool_of_three();
    let memory = start_keyway(ONE_MEMORY_ROUTE).await;
    let through = start_keyway(&pool_config).await;
    let mut differences = Vec::new();
    let targets = [
        ("memory", memory.memcache_addr.unwrap()),
        ("memcached", through.memcache_addr.unwrap()),
    ];
    for (line, (route, keyway_addr)) in META_LINES
        .iter()
        .flat_map(|line| targets.iter().map(move |target| (line, *target)))
    {
        // The line, then what it left behind.
        let request = [
            case(line),
            b"mg k v f t s\r\nmg aw== b v\r\nquit\r\n".to_vec(),
        ]
        .concat();
        let request = String::from_utf8(request)
            .unwrap()
            .replacen("get k\r\nquit\r\n", "", 1);
        let want = normalized(&exchange(memcached.addr, request.as_bytes()).await);
        let got = normalized(&exchange(keyway_addr, request.as_bytes()).await);
        if got != want && !META_KNOWN.iter().any(|(known, _)| known == line) {
            differences.push(format!(
                "{line:?} ({route} route)\n  memcached: {}\n  keyway:    {}",
                show(want.as_bytes()),
                show(got.as_bytes())
            ));
        }
    }
    println!("{} meta lines compared on each route", META_LINES.len());
    assert!(
        differences.is_empty(),
        "{} of {} meta lines answered differently:\n{}",
        differences.len(),
        META_LINES.len(),
        differences.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn meta_leases_and_stale_items_are_refused_with_the_reason() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let reply = exchange(
        keyway.memcache_addr.unwrap(),
        b"mg k N30 v\r\nmg k R30 v\r\nmd k I\r\nms k 1 I\r\nx\r\nmn\r\nquit\r\n",
    )
    .await;
    let refusal =
        "CLIENT_ERROR meta flags N, R and I (leases, stale items) need a memcached route\r\n";
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        format!("{}MN\r\n", refusal.repeat(4))
    );
}

/// RESP commands with `N` where a number goes, `k`/`s` the two keys each
/// case starts with (`k` = "10", `s` = "hello"), `v` a value.
const RESP_TEMPLATES: &[&str] = &[
    "GET k",
    "SET k v",
    "SET k v EX N",
    "SET k v PX N",
    "SET k v EXAT N",
    "SET k v PXAT N",
    "SET k v NX",
    "SET k v XX",
    "SET k v KEEPTTL",
    "SET k v GET",
    "SET n v NX GET",
    "SETNX k v",
    "SETEX k N v",
    "PSETEX k N v",
    "GETDEL k",
    "GETEX k EX N",
    "GETEX k PX N",
    "GETEX k PERSIST",
    "MGET k s n",
    "MSET k v s v",
    "MSETNX n v m v",
    "DEL k s",
    "UNLINK k n",
    "EXISTS k s n",
    "EXPIRE k N",
    "EXPIRE k N NX",
    "EXPIRE k N GT",
    "PEXPIRE k N",
    "EXPIREAT k N",
    "PEXPIREAT k N",
    "TTL k",
    "PTTL k",
    "PERSIST k",
    "INCR k",
    "DECR k",
    "INCRBY k N",
    "DECRBY k N",
    "INCR s",
    "APPEND k v",
    "STRLEN s",
    "TYPE k",
    "RENAME k n",
    "RENAMENX k s",
    "COPY k n",
    "COPY k s REPLACE",
    "MOVE k N",
    "OBJECT ENCODING k",
    "OBJECT FREQ s",
    "ECHO v",
    "PING",
    "PING v",
    "SELECT N",
    "DBSIZE",
    "EXISTS n",
    "GETEX k EXAT N",
    "SET k v EX N GET",
    "EXPIRE k N XX",
    "EXPIRE k N LT",
    "INCRBY s N",
    "OBJECT REFCOUNT k",
    "OBJECT IDLETIME k",
    "COPY k n DB N",
    "TYPE n",
    "RENAME n k",
    "STRLEN k",
    "FLUSHDB",
    "FLUSHDB ASYNC",
    "GETSET k v",
    "SETRANGE k N v",
    "GETRANGE s N N",
    "MEMORY USAGE k",
    "SWAPDB N N",
    "DUMP k",
    "TOUCH k s",
    "LASTSAVE",
    "ROLE",
];

/// Numbers that are not plain small ones, as RESP clients might send them.
const RESP_ODD_NUMBERS: &[&str] = &[
    "-1",
    "0",
    "x",
    "1.5",
    "+1",
    "",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999",
    "0x10",
    " 1",
];

fn resp_variants(template: &str) -> Vec<Vec<String>> {
    let plain: Vec<String> = template
        .split(' ')
        .map(|t| {
            if t == "N" {
                "100".to_string()
            } else {
                t.to_string()
            }
        })
        .collect();
    let mut lines = vec![plain.clone()];
    for (i, token) in template.split(' ').enumerate() {
        if token == "N" {
            for odd in RESP_ODD_NUMBERS {
                let mut line = plain.clone();
                line[i] = odd.to_string();
                lines.push(line);
            }
        }
    }
    for i in 0..plain.len() {
        let mut line = plain.clone();
        line.remove(i);
        if !line.is_empty() {
            lines.push(line);
        }
    }
    let mut extra = plain.clone();
    extra.push("extra".into());
    lines.push(extra);
    lines.push(plain.iter().map(|t| t.to_lowercase()).collect());
    let mut mixed = plain.clone();
    mixed[0] = mixed[0]
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_lowercase()
            } else {
                c
            }
        })
        .collect();
    lines.push(mixed);
    lines
}

/// Commands Keyway answers differently on purpose, with why
/// (docs/protocol-compatibility.md).
const RESP_KNOWN: &[(&str, &str)] = &[
    (
        "SWAPDB",
        "not served: unknown command (a database spans every route's store)",
    ),
    (
        "DUMP",
        "not served: unknown command (redis's RDB serialization)",
    ),
    (
        "LASTSAVE",
        "each process's start time (Keyway never saves): the two servers start apart",
    ),
    (
        "MEMORY",
        "USAGE is Keyway's estimate (key, value, 48 bytes), not redis's allocator figure",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn resp_command_lines_get_redis_own_replies_in_resp2_and_resp3() {
    let redis = common::start_redis();
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let keyway_addr = keyway.resp_addr.unwrap();
    let mut lines: Vec<Vec<String>> = RESP_TEMPLATES
        .iter()
        .flat_map(|t| resp_variants(t))
        .collect();
    lines.sort();
    lines.dedup();
    let mut differences = Vec::new();
    for (protocol, hello) in [("RESP2", ""), ("RESP3", "HELLO 3\r\n")] {
        for line in &lines {
            let shown = line.join(" ");
            let request = format!(
                "{hello}SELECT 0\r\nFLUSHALL\r\nSET k 10\r\nSET s hello\r\n{}GET k\r\nGET s\r\nGET n\r\nTTL k\r\nSELECT 0\r\nQUIT\r\n",
                common::resp_command(line)
            );
            let want = exchange(redis.addr, request.as_bytes()).await;
            let got = exchange(keyway_addr, request.as_bytes()).await;
            let (want, got) = if hello.is_empty() {
                (&want[..], &got[..])
            } else {
                (after_hello(&want), after_hello(&got))
            };
            let known = RESP_KNOWN
                .iter()
                .any(|(command, _)| line[0].eq_ignore_ascii_case(command));
            if want != got && !known {
                differences.push(format!(
                    "{protocol} {shown:?}\n  redis:  {}\n  keyway: {}",
                    show(want),
                    show(got)
                ));
            }
        }
    }
    println!("{} lines compared in RESP2 and in RESP3", lines.len());
    assert!(
        differences.is_empty(),
        "{} of {} answered differently:\n{}",
        differences.len(),
        lines.len() * 2,
        differences.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn meta_leases_on_a_memcached_route_are_memcacheds_own() {
    let memcached = start_memcached();
    let (_pool, pool_config) = common::memcached_pool_of_three();
    let through = start_keyway(&pool_config).await;
    // A lease won on a miss (W), seen taken by the next reader (Z), a stale
    // item after md I (X), and q hiding only the nominal replies.
    let script = b"mg lease N30 v t\r\nmg lease N30 v\r\nms lease 3 T60\r\nnew\r\n\
                   md lease I T30\r\nmg lease v c\r\nmg lease q v\r\nmg missing q v\r\n\
                   ms q 1 q\r\nx\r\nms q 1 q MR\r\ny\r\nmd nothere q\r\nma q q\r\nmn\r\nquit\r\n";
    let want = normalized(&exchange(memcached.addr, script).await);
    let got = normalized(&exchange(through.memcache_addr.unwrap(), script).await);
    assert_eq!(show(got.as_bytes()), show(want.as_bytes()));
    assert!(want.contains(" W\r\n") && want.contains(" Z"), "{want}");
}
