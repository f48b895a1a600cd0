//! Authentication against the real servers: RESP against a redis-server
//! started with `--requirepass` (NOAUTH for everything but AUTH, HELLO and
//! QUIT; WRONGPASS for a wrong password), memcached text against a memcached
//! started with `-Y` (every command refused until a `set` carries
//! `<user> <password>`); before and after, the same requests give the same
//! reply bytes.

mod common;

use std::time::Duration;

use common::{
    exchange, show, start_keyway, start_memcached_with, start_redis_with, ONE_MEMORY_ROUTE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AUTH: &str = r#"
[auth]
memcache = "ascii"

[[auth.users]]
name = "default"
password = "s3cret"

[[auth.users]]
name = "app"
password_env = "KEYWAY_TEST_APP_PASSWORD"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn before_auth_only_auth_hello_and_quit_answer_as_on_redis() {
    // Read when Keyway loads its users; no other test uses this variable.
    std::env::set_var("KEYWAY_TEST_APP_PASSWORD", "app-pass");
    let redis = start_redis_with(&["--requirepass", "s3cret"]);
    let keyway = start_keyway(&format!("{ONE_MEMORY_ROUTE}{AUTH}")).await;
    let script = "PING\r\nGET k\r\nSET k v\r\nMULTI\r\nSELECT 1\r\nCLIENT SETNAME x\r\nHELLO 3\r\nHELLO 2 SETNAME x\r\n\
                  HELLO 3 FOO\r\nHELLO 3 SETNAME \"a b\"\r\nHELLO 3 AUTH default wrong SETNAME x\r\n\
                  HELLO 3 AUTH default s3cret FOO\r\nGET k\r\nHELLO 4\r\nHELLO x\r\n\
                  AUTH wrong\r\nAUTH default wrong\r\nAUTH nobody s3cret\r\nAUTH a b c\r\nGET k\r\n\
                  AUTH s3cret\r\nPING\r\nSET k v\r\nGET k\r\nAUTH wrong\r\nGET k\r\nRESET\r\nGET k\r\n\
                  AUTH s3cret\r\nDEL k\r\nQUIT\r\n";
    let want = exchange(redis.addr, script.as_bytes()).await;
    let got = exchange(keyway.resp_addr.unwrap(), script.as_bytes()).await;
    assert_eq!(show(&got), show(&want));
    assert!(show(&got).starts_with("-NOAUTH Authentication required."));

    // QUIT needs no password.
    let quit = exchange(keyway.resp_addr.unwrap(), b"QUIT\r\n").await;
    assert_eq!(quit, b"+OK\r\n");

    // A named user, by HELLO ... AUTH, with its password from the environment.
    let hello = exchange(
        keyway.resp_addr.unwrap(),
        b"HELLO 3 AUTH app app-pass\r\nSET k v\r\nGET k\r\nQUIT\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&hello);
    assert!(text.starts_with("%7\r\n"), "{text}");
    assert!(text.ends_with("+OK\r\n$1\r\nv\r\n+OK\r\n"), "{text}");
    let wrong = exchange(
        keyway.resp_addr.unwrap(),
        b"HELLO 3 AUTH app s3cret\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        show(&wrong),
        show(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n")
    );
    // Wrong passwords are counted (never logged).
    assert_eq!(keyway.current().stats.auth_failures.get(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_come_from_files_and_a_reload_rotates_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("default.pass");
    std::fs::write(&file, "first\n").unwrap();
    let auth = |file: &std::path::Path| {
        format!(
            "{ONE_MEMORY_ROUTE}\n[auth]\nmemcache = \"open\"\n[[auth.users]]\nname = \"default\"\npassword_file = {:?}\n",
            file.display().to_string()
        )
    };
    let keyway = start_keyway(&auth(&file)).await;
    let addr = keyway.resp_addr.unwrap();
    assert_eq!(
        show(&exchange(addr, b"AUTH first\r\nPING\r\nQUIT\r\n").await),
        show(b"+OK\r\n+PONG\r\n+OK\r\n")
    );
    std::fs::write(&file, "rotated-pass\n").unwrap();
    keyway
        .reload(common::keyway_config(&auth(&file)))
        .await
        .unwrap();
    let replies = exchange(addr, b"AUTH first\r\nAUTH rotated-pass\r\nPING\r\nQUIT\r\n").await;
    assert_eq!(
        show(&replies),
        show(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n+PONG\r\n+OK\r\n")
    );
    // /config and Debug never show a password.
    let shown = keyway.current().config.redacted_toml();
    assert!(!shown.contains("rotated-pass"), "{shown}");
}

/// Sends each step on one connection and collects what comes back before
/// the next: memcached 1.6.18 keeps only the last reply of unauthenticated
/// lines that arrive together, so each step is its own write.
async fn steps(addr: std::net::SocketAddr, steps: &[&[u8]]) -> Vec<String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut replies = Vec::new();
    for step in steps {
        stream.write_all(step).await.unwrap();
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        // Until the reply ends a line and nothing more comes for 100 ms.
        loop {
            let wait = if reply.ends_with(b"\r\n") { 100 } else { 2000 };
            match tokio::time::timeout(Duration::from_millis(wait), stream.read(&mut chunk)).await {
                Ok(Ok(0)) => {
                    reply.extend_from_slice(b"<closed>");
                    break;
                }
                Ok(Ok(n)) => reply.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => break,
            }
        }
        replies.push(format!("{} -> {}", show(step), show(&reply)));
    }
    replies
}

#[tokio::test(flavor = "multi_thread")]
async fn memcached_ascii_authentication_answers_as_memcached_with_an_auth_file() {
    std::env::set_var("KEYWAY_TEST_APP_PASSWORD", "app-pass");
    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("memcached.auth");
    std::fs::write(&auth_file, "default:s3cret\napp:app-pass\n").unwrap();
    // memcached runs as nobody and must read the file.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&auth_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let memcached = start_memcached_with(&["-Y", auth_file.to_str().unwrap()]);
    let keyway = start_keyway(&format!("{ONE_MEMORY_ROUTE}{AUTH}")).await;
    let keyway_addr = keyway.memcache_addr.unwrap();

    let sessions: &[&[&[u8]]] = &[
        // Everything is refused, then a wrong password, then the right one.
        &[
            b"get k\r\n",
            b"version\r\n",
            b"stats\r\n",
            b"mn\r\n",
            b"bogus\r\n",
            b"\r\n",
            b"SET x 0 0 14\r\n",
            b"add x 0 0 14\r\n",
            b"set x 0 0 -1\r\n",
            b"set x 0 0 14abc\r\n",
            b"set x 0 0 5\r\nalice\r\n",
            b"set x 0 0 12\r\ndefault:pass\r\n",
            b"set x 0 0 12\r\ndefault wron\r\n",
            b"set x 0 0 8\r\n",
            // Ten bytes not ending in \r\n. (Were more lines in the same
            // read, memcached 1.6.18 would keep only the last reply; Keyway
            // answers each: docs/protocol-compatibility.md.)
            b"default ",
            b"s3",
            b"get k\r\n",
            b"set x 0 0 14 noreply\r\ndefault s3cret\r\n",
            b"get k\r\n",
            b"set k 0 0 1\r\nv\r\n",
            b"get k\r\n",
            b"set y 0 0 14\r\ndefault s3cret\r\n",
            b"get y\r\n",
            b"quit\r\n",
        ],
        // Spaces around the token, a named user, a bad block ending.
        &[
            b"set k 0 0 12\r\napp app-passXX",
            b"set k 0 0 15\r\n app  app-pass \r\n",
            b"delete k\r\n",
            b"quit\r\n",
        ],
        &[b"quit\r\n"],
    ];
    for session in sessions {
        let want = steps(memcached.addr, session).await;
        let got = steps(keyway_addr, session).await;
        assert_eq!(got, want);
    }
    // A block over 16 KiB: memcached 1.6.18 would wait for it; Keyway (as
    // newer memcached) refuses it at once.
    let long = steps(keyway_addr, &[b"set x 0 0 70000\r\n", b"get k\r\n"]).await;
    assert!(
        long[0].ends_with("CLIENT_ERROR auth token too long\\r\\n\n"),
        "{long:?}"
    );
    assert!(
        long[1].ends_with("CLIENT_ERROR unauthenticated\\r\\n\n"),
        "{long:?}"
    );
    // Junk with no newline: memcached closes after 2 KiB.
    let junk = vec![b'x'; 3000];
    let closed = steps(keyway_addr, &[&junk]).await;
    assert!(closed[0].ends_with("<closed>"), "{closed:?}");
    let stats = String::from_utf8(
        exchange(
            keyway_addr,
            b"set x 0 0 14\r\ndefault s3cret\r\nstats\r\nquit\r\n",
        )
        .await,
    )
    .unwrap();
    assert!(stats.contains("STAT auth_cmds "), "{stats}");
    assert!(stats.contains("STAT auth_errors "), "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_without_a_memcached_decision_are_refused_at_load() {
    let text = format!(
        "[listen]\nmemcache = \"127.0.0.1:0\"\n{ONE_MEMORY_ROUTE}\n[[auth.users]]\nname = \"default\"\npassword = \"p\"\n"
    );
    let error = keyway::config::Config::from_toml(&text)
        .unwrap_err()
        .to_string();
    assert!(error.contains("auth.memcache"), "{error}");
    assert!(error.contains("\"ascii\""), "{error}");
    // A Unix socket alone is guarded by its file mode.
    let socket_only = format!(
        "[listen]\nmemcache_socket = \"/tmp/k.sock\"\n{ONE_MEMORY_ROUTE}\n[[auth.users]]\nname = \"default\"\npassword = \"p\"\n"
    );
    keyway::config::Config::from_toml(&socket_only).expect("a socket needs no decision");
    // Open on purpose.
    let open = text.replace(
        "[[auth.users]]",
        "[auth]\nmemcache = \"open\"\n[[auth.users]]",
    );
    keyway::config::Config::from_toml(&open).expect("declared open");
}

#[tokio::test(flavor = "multi_thread")]
async fn permissions_refuse_what_a_redis_acl_refuses_with_its_words() {
    // The reference: a redis-server with the same users made by ACL SETUSER
    // (DEBUG enabled, so that the ACL is what refuses it).
    let redis = start_redis_with(&["--enable-debug-command", "yes"]);
    for user in [
        &[
            "horizon",
            "on",
            ">h-pass",
            "+@all",
            "-@dangerous",
            "-@scripting",
            "~*",
        ][..],
        &[
            "reader",
            "on",
            ">r-pass",
            "+@read",
            "+@connection",
            "~sess:*",
        ],
        &[
            "publisher",
            "on",
            ">p-pass",
            "+@all",
            "~*",
            "resetchannels",
            "&news*",
            "&exact",
        ],
    ] {
        let mut args = vec!["ACL", "SETUSER"];
        args.extend_from_slice(user);
        assert_eq!(common::redis_cli(redis.addr, &args).trim(), "OK");
    }
    // Keyway over another redis, so that what it would forward (EVAL,
    // RESTORE, MIGRATE, DEBUG...) would reach a real one.
    let backend = start_redis_with(&[]);
    let keyway = start_keyway(&format!(
        "[auth]\nmemcache = \"ascii\"\n\
         [[auth.users]]\nname = \"horizon\"\npassword = \"h-pass\"\n\
         permissions = \"+@all -@dangerous -@scripting\"\n\
         [[auth.users]]\nname = \"reader\"\npassword = \"r-pass\"\n\
         permissions = \"+@read +@connection ~sess:*\"\n\
         [[auth.users]]\nname = \"publisher\"\npassword = \"p-pass\"\n\
         permissions = \"+@all resetchannels &news* &exact\"\n\
         [backends.redis]\nurl = \"redis://{}\"\n[[routes]]\nglob = \"*\"\nbackend = \"redis\"\n",
        backend.addr
    ))
    .await;
    let horizon = "AUTH horizon h-pass\r\nSET k v\r\nGET k\r\nEVAL \"return 1\" 0\r\n\
                   EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 0\r\nSCRIPT LOAD \"return 1\"\r\n\
                   FUNCTION FLUSH\r\nFLUSHALL\r\nFLUSHDB\r\nCONFIG SET maxmemory 1\r\n\
                   CONFIG GET maxmemory\r\nDEBUG SLEEP 0\r\nMIGRATE 127.0.0.1 1 k 0 1000\r\n\
                   RESTORE k 0 x\r\nKEYS *\r\nCLIENT SETNAME horizon\r\nCLIENT KILL ID 1\r\n\
                   MULTI\r\nEVAL \"return 1\" 0\r\nGET k\r\nEXEC\r\nGET k\r\nQUIT\r\n";
    let reader = "AUTH reader r-pass\r\nGET sess:1\r\nGET other\r\nMGET sess:1 sess:2\r\n\
                  MGET sess:1 other\r\nSET sess:1 v\r\nDEL sess:1\r\nPING\r\nQUIT\r\n";
    // Pub/sub channels: `&patterns`; PSUBSCRIBE's pattern as written.
    let publisher = "AUTH publisher p-pass\r\nPUBLISH news1 x\r\nPUBLISH other x\r\n\
                     SPUBLISH other x\r\nSSUBSCRIBE other\r\nPSUBSCRIBE new*\r\n\
                     SUBSCRIBE news1 other\r\nUNSUBSCRIBE other\r\nPSUBSCRIBE news*\r\n\
                     PUNSUBSCRIBE\r\nSUBSCRIBE exact\r\nUNSUBSCRIBE\r\nQUIT\r\n";
    for script in [horizon, reader, publisher] {
        let want = exchange(redis.addr, script.as_bytes()).await;
        let got = exchange(keyway.resp_addr.unwrap(), script.as_bytes()).await;
        assert_eq!(show(&got), show(&want));
        assert!(show(&got).contains("-NOPERM this user has no permissions"));
    }
    // Nothing refused reached the backend.
    assert_eq!(common::redis_cli(backend.addr, &["GET", "k"]).trim(), "v");
    assert_eq!(
        common::redis_cli(
            backend.addr,
            &[
                "SCRIPT",
                "EXISTS",
                "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
            ]
        )
        .trim(),
        "0"
    );
}

/// A reload that takes a channel away from a user disconnects its clients
/// subscribed to it (as redis does on ACL SETUSER), even one that only
/// listens; a subscriber to a channel still allowed stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_takes_a_channel_away_disconnects_its_subscribers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = |channels: &str| {
        format!(
            "{ONE_MEMORY_ROUTE}\n[auth]\nmemcache = \"open\"\n[[auth.users]]\nname = \"u\"\n\
             password = \"p\"\npermissions = \"+@all {channels}\"\n\
             [[auth.users]]\nname = \"admin\"\npassword = \"a\"\n"
        )
    };
    let keyway = start_keyway(&config("resetchannels &a &b")).await;
    let addr = keyway.resp_addr.unwrap();
    let subscribe = async |channel: &str| {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("AUTH u p\r\nSUBSCRIBE {channel}\r\n").as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0; 256];
        while !got.ends_with(b":1\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        stream
    };
    let mut on_a = subscribe("a").await;
    let mut on_b = subscribe("b").await;
    keyway
        .reload(common::keyway_config(&config("resetchannels &b")))
        .await
        .unwrap();
    // The next message for each: the one on `a` is let go instead.
    let mut publisher = tokio::net::TcpStream::connect(addr).await.unwrap();
    publisher
        .write_all(
            b"AUTH admin a\r\nPUBLISH b one\r\nPUBLISH a one\r\nPUBLISH b two\r\nPUBLISH a two\r\n",
        )
        .await
        .unwrap();
    let mut buf = [0; 512];
    let mut got = Vec::new();
    while !got.ends_with(b"two\r\n") {
        let n = on_b.read(&mut buf).await.unwrap();
        assert!(n > 0, "the subscriber to b was disconnected");
        got.extend_from_slice(&buf[..n]);
    }
    // It sent nothing since: at most the message already on its way, then
    // the connection ends.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut got = Vec::new();
        loop {
            match on_a.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the subscriber to a was disconnected");
    assert!(
        !String::from_utf8_lossy(&ended).contains("two"),
        "{ended:?}"
    );
}
