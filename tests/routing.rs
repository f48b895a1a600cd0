//! Keys routed to different backends: multi-key commands are split per
//! backend and merged back in request order, on both protocols.

mod common;

use common::{exchange, keyway_config, show, start_keyway};

const TWO_STORES: &str = r#"
[backends.sessions]
url = "memory://"
capacity = "8MiB"

[backends.rest]
url = "memory://"
capacity = "8MiB"

[[routes]]
prefix = "s:"
backend = "sessions"

[[routes]]
glob = "*"
backend = "rest"
"#;

const ONLY_SESSIONS: &str = r#"
[backends.sessions]
url = "memory://"

[[routes]]
prefix = ":1:django.contrib.sessions."
backend = "sessions"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn resp_multi_key_commands_merge_in_order() {
    let keyway = start_keyway(TWO_STORES).await;
    let addr = keyway.resp_addr.unwrap();
    let reply = exchange(
        addr,
        b"MSET s:1 a r:1 b s:2 c r:2 d\r\nMGET r:2 s:1 nope s:2 r:1\r\nEXISTS s:1 r:1 s:9 r:2\r\n\
          MSETNX s:3 x r:3 y\r\nMSETNX s:3 x s:4 y\r\nDEL r:1 s:1 r:9\r\nDBSIZE\r\nKEYS *\r\nQUIT\r\n",
    )
    .await;
    let text = String::from_utf8(reply).unwrap();
    let want_prefix = "+OK\r\n*5\r\n$1\r\nd\r\n$1\r\na\r\n$-1\r\n$1\r\nc\r\n$1\r\nb\r\n:3\r\n\
                       -ERR MSETNX keys must all route to the same backend\r\n:1\r\n:2\r\n:4\r\n*4\r\n";
    assert!(text.starts_with(want_prefix), "{}", show(text.as_bytes()));
    let mut keys: Vec<&str> = text[want_prefix.len()..]
        .split("\r\n")
        .filter(|l| l.contains(':') && !l.starts_with('$'))
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["r:2", "s:2", "s:3", "s:4"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn memcache_multiget_merges_in_order() {
    let keyway = start_keyway(TWO_STORES).await;
    let reply = exchange(
        keyway.memcache_addr.unwrap(),
        b"set s:1 1 0 1\r\na\r\nset r:1 2 0 1\r\nb\r\nget r:1 s:1 x r:1\r\nflush_all\r\nget r:1 s:1\r\nquit\r\n",
    )
    .await;
    assert_eq!(
        show(&reply),
        show(b"STORED\r\nSTORED\r\nVALUE r:1 2 1\r\nb\r\nVALUE s:1 1 1\r\na\r\nVALUE r:1 2 1\r\nb\r\nEND\r\nOK\r\nEND\r\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_without_a_route_gets_an_error_and_the_connection_lives() {
    let keyway = start_keyway(ONLY_SESSIONS).await;
    let reply = exchange(
        keyway.memcache_addr.unwrap(),
        b"get other\r\nversion\r\nquit\r\n",
    )
    .await;
    let text = String::from_utf8(reply).unwrap();
    assert!(
        text.starts_with("SERVER_ERROR no route matches key \"other\""),
        "{text}"
    );
    assert!(text.contains("VERSION "), "{text}");
    let reply = exchange(keyway.resp_addr.unwrap(), b"GET other\r\nPING\r\nQUIT\r\n").await;
    let text = String::from_utf8(reply).unwrap();
    assert!(
        text.starts_with("-ERR no route matches key \"other\""),
        "{text}"
    );
    assert!(text.ends_with("+PONG\r\n+OK\r\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn django_matchers_cover_every_version_and_routes_bound_ttls() {
    let memcached = common::start_memcached();
    let keyway = start_keyway(&format!(
        r#"
[backends.sessions]
url = "memory://"
[backends.pool]
url = "memcached://{pool}"
[[routes]]
django = "django.contrib.sessions."
max_ttl_seconds = 3600
backend = "sessions"
[[routes]]
django = "throttle:"
key_prefix = "horizon"
min_ttl_seconds = 30
backend = "pool"
[[routes]]
glob = "*"
backend = "pool"
"#,
        pool = memcached.addr
    ))
    .await;
    let mc = keyway.memcache_addr.unwrap();
    let request = "set :1:django.contrib.sessions.cachea 0 0 1\r\na\r\n\
                   set :12:django.contrib.sessions.cacheb 0 86400 1\r\nb\r\n\
                   set horizon:3:throttle:x 0 5 1\r\nx\r\n\
                   set horizon:3:other 0 5 1\r\ny\r\nquit\r\n";
    assert_eq!(
        exchange(mc, request.as_bytes()).await,
        b"STORED\r\n".repeat(4)
    );
    // Sessions of any version are in the memory store, with TTLs capped at
    // an hour (even "never"); the throttle key got at least 30 s, in the pool.
    let reply = exchange(
        keyway.resp_addr.unwrap(),
        b"TTL :1:django.contrib.sessions.cachea\r\nTTL :12:django.contrib.sessions.cacheb\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(show(&reply), show(b":3600\r\n:3600\r\n+OK\r\n"));
    let direct = exchange(memcached.addr, b"mg horizon:3:throttle:x t\r\nmg horizon:3:other t\r\nmg :1:django.contrib.sessions.cachea\r\nquit\r\n").await;
    let direct = String::from_utf8(direct).unwrap();
    let mut lines = direct.lines();
    let ttl = |line: Option<&str>| -> i64 {
        line.unwrap().strip_prefix("HD t").unwrap().parse().unwrap()
    };
    assert!((29..=30).contains(&ttl(lines.next())), "{direct}");
    assert!((4..=5).contains(&ttl(lines.next())), "{direct}");
    assert_eq!(lines.next(), Some("EN"), "{direct}");
}

/// A reload swaps routes atomically and keeps every backend whose settings
/// did not change, with what it holds; a backend whose settings changed is
/// built anew.
#[tokio::test(flavor = "multi_thread")]
async fn reload_keeps_unchanged_backends_and_their_items() {
    let keyway = start_keyway(TWO_STORES).await;
    let addr = keyway.resp_addr.unwrap();
    let set = b"SET s:1 v\r\nSET r:1 w\r\nQUIT\r\n";
    assert_eq!(text(exchange(addr, set).await), "+OK\r\n+OK\r\n+OK\r\n");
    let get = b"MGET s:1 r:1\r\nQUIT\r\n";

    // Routes change (r: now goes to sessions too); both backends are unchanged.
    let moved = TWO_STORES.replace(
        "prefix = \"s:\"\nbackend = \"sessions\"",
        "regex = \"^[sr]:\"\nbackend = \"sessions\"",
    );
    assert_ne!(moved, TWO_STORES);
    keyway.reload(keyway_config(&moved)).await.unwrap();
    assert_eq!(
        text(exchange(addr, get).await),
        "*2\r\n$1\r\nv\r\n$-1\r\n+OK\r\n",
        "s:1 still in the kept sessions store; r:1 now routed there, where it is not"
    );

    // The sessions store's settings change: it is a new, empty store.
    let resized = moved.replace(
        "capacity = \"8MiB\"\n\n[backends.rest]",
        "capacity = \"16MiB\"\n\n[backends.rest]",
    );
    assert_ne!(resized, moved);
    keyway.reload(keyway_config(&resized)).await.unwrap();
    assert_eq!(
        text(exchange(addr, get).await),
        "*2\r\n$-1\r\n$-1\r\n+OK\r\n"
    );
    let figures = keyway.current();
    assert_eq!(figures.stats.reloads_succeeded.get(), 2);
}

fn text(reply: Vec<u8>) -> String {
    String::from_utf8(reply).unwrap()
}

/// Routes limited to one listener: memcached-protocol and RESP clients see
/// keyspaces of their own (a value a memcached client pickled under its
/// flags never reaches a redis client), while a route without `listener`
/// serves both; a flush through one listener leaves the other's keys.
#[tokio::test(flavor = "multi_thread")]
async fn routes_can_keep_the_listeners_keyspaces_apart() {
    let keyway = start_keyway(
        "[backends.mc]\nurl = \"memory://\"\n[backends.rs]\nurl = \"memory://\"\n\
         [backends.both]\nurl = \"memory://\"\n\
         [[routes]]\nprefix = \"shared:\"\nbackend = \"both\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"mc\"\nlistener = \"memcache\"\n\
         [[routes]]\nglob = \"*\"\nbackend = \"rs\"\nlistener = \"resp\"\n",
    )
    .await;
    let (mc, resp) = (keyway.memcache_addr.unwrap(), keyway.resp_addr.unwrap());
    let reply = exchange(
        mc,
        b"set session 1 0 6\r\npickle\r\nset shared:k 0 0 1\r\nm\r\nquit\r\n",
    )
    .await;
    assert_eq!(show(&reply), show(b"STORED\r\nSTORED\r\n"));
    let reply = exchange(
        resp,
        b"GET session\r\nSET session json\r\nGET shared:k\r\nDBSIZE\r\nFLUSHALL\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        show(&reply),
        show(b"$-1\r\n+OK\r\n$1\r\nm\r\n:2\r\n+OK\r\n+OK\r\n")
    );
    // RESP's FLUSHALL emptied its own store and the shared one, not the
    // memcached clients' store.
    let reply = exchange(mc, b"get session shared:k\r\nquit\r\n").await;
    assert_eq!(
        show(&reply),
        show(b"VALUE session 1 6\r\npickle\r\nEND\r\n")
    );
}
