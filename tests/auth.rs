//! RESP authentication against a real redis-server started with
//! `--requirepass`: before AUTH the same requests give the same reply bytes
//! (NOAUTH for everything but AUTH, HELLO and QUIT; WRONGPASS for a wrong
//! password), and after it the connection works.

mod common;

use common::{exchange, show, start_keyway, start_redis_with, ONE_MEMORY_ROUTE};

const AUTH: &str = r#"
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
                  AUTH wrong\r\nAUTH default wrong\r\nAUTH nobody s3cret\r\nAUTH a b c\r\nGET k\r\n\
                  AUTH s3cret\r\nPING\r\nSET k v\r\nGET k\r\nAUTH wrong\r\nGET k\r\nDEL k\r\nQUIT\r\n";
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
    assert_eq!(keyway.current().stats.auth_failures.get(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_come_from_files_and_a_reload_rotates_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("default.pass");
    std::fs::write(&file, "first\n").unwrap();
    let auth = |file: &std::path::Path| {
        format!(
            "{ONE_MEMORY_ROUTE}\n[[auth.users]]\nname = \"default\"\npassword_file = {:?}\n",
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
