//! Keys routed to different backends: multi-key commands are split per
//! backend and merged back in request order, on both protocols.

mod common;

use common::{exchange, show, start_keyway};

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
