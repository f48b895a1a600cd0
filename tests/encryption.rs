//! Values encrypted at rest on SQL backends (`encryption_key_file`), against
//! real SQLite, PostgreSQL and MariaDB: a session's token is not in the
//! database (nor, for SQLite, anywhere in its files), a rotated key file
//! still reads the rows the old key sealed, `keyway rekey` seals every row
//! under the new key (rows written before encryption too), and a missing or
//! wrong key is an error the client sees, never sealed bytes.

mod common;

use std::path::Path;
use std::process::Command;

use common::{exchange, keyway_config, mariadb_url, postgres_url, show};
use keyway::server::Server;

const KEY_1: &str = "1:6b65797761792074657374206b6579206f6e652e2e2e2e2e2e2e2e2e2e2e2e2e";
const KEY_2: &str = "2:6b65797761792074657374206b65792074776f2e2e2e2e2e2e2e2e2e2e2e2e2e";
const TOKEN: &str = "gAAAAABkeystone-token-4f2a9c";

fn backend_toml(url: &str, table: &str, key_file: Option<&Path>) -> String {
    let key = key_file.map_or(String::new(), |f| {
        format!("encryption_key_file = {:?}\n", f.display().to_string())
    });
    format!(
        "[backends.sessions]\nurl = {url:?}\ntable = {table:?}\n{key}\n\
         [[routes]]\nglob = \"*\"\nbackend = \"sessions\"\n"
    )
}

async fn start(url: &str, table: &str, key_file: Option<&Path>) -> Server {
    Server::start(&keyway_config(&backend_toml(url, table, key_file)))
        .await
        .expect("keyway starts")
}

async fn resp(server: &Server, script: &str) -> String {
    show(&exchange(server.resp_addr.unwrap(), script.as_bytes()).await)
}

fn set(key: &str, value: &str) -> String {
    common::resp_command(&["SET", key, value])
}

fn get(key: &str) -> String {
    common::resp_command(&["GET", key])
}

fn bulk(value: &str) -> String {
    show(format!("${}\r\n{value}\r\n", value.len()).as_bytes())
}

/// `keyway rekey` as an operator runs it; its output, and whether it succeeded.
fn rekey(dir: &Path, url: &str, table: &str, key_file: &Path) -> (bool, String) {
    let config = dir.join(format!("{table}.toml"));
    let text = format!(
        "[listen]\nresp = \"127.0.0.1:0\"\n[runtime]\ndata_dir = {:?}\n{}",
        dir.display().to_string(),
        backend_toml(url, table, Some(key_file))
    );
    std::fs::write(&config, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "rekey",
            "--backend",
            "sessions",
            "--batch",
            "7",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The sealed rows of a store: written, read back, rotated, rekeyed.
async fn sealed_store_lifecycle(url: &str, table: &str, raw_bytes: impl Fn() -> Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys");

    // Written before encryption was turned on.
    let plain = start(url, table, None).await;
    assert!(
        resp(&plain, &format!("{}QUIT\r\n", set("before", "plain-value")))
            .await
            .starts_with("+OK")
    );
    plain.shutdown().await;

    std::fs::write(&key_file, format!("{KEY_1}\n")).unwrap();
    let first = start(url, table, Some(&key_file)).await;
    let mut script = String::new();
    for i in 0..20 {
        script.push_str(&set(&format!("session:{i}"), &format!("{TOKEN}-{i}")));
    }
    script.push_str(&get("session:3"));
    script.push_str(&get("before"));
    script.push_str("QUIT\r\n");
    let replies = resp(&first, &script).await;
    assert!(replies.contains(&bulk(&format!("{TOKEN}-3"))), "{replies}");
    assert!(replies.contains(&bulk("plain-value")), "{replies}");
    first.shutdown().await;
    let stored = raw_bytes();
    assert!(
        !stored.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "a token is readable in the store"
    );
    assert!(
        stored.windows(11).any(|w| w == b"plain-value"),
        "the check can see plain values"
    );

    // A key file without the key that sealed the rows: a clear error.
    std::fs::write(&key_file, format!("{KEY_2}\n")).unwrap();
    let wrong = start(url, table, Some(&key_file)).await;
    let replies = resp(&wrong, &format!("{}PING\r\nQUIT\r\n", get("session:3"))).await;
    assert!(
        replies.starts_with("-ERR") && replies.contains("key id 1"),
        "{replies}"
    );
    assert!(
        replies.contains("+PONG"),
        "the connection lives on: {replies}"
    );
    wrong.shutdown().await;

    // Rotated: key 2 seals, key 1 still opens.
    std::fs::write(&key_file, format!("{KEY_2}\n{KEY_1}\n")).unwrap();
    let rotated = start(url, table, Some(&key_file)).await;
    let replies = resp(
        &rotated,
        &format!(
            "{}{}{}QUIT\r\n",
            get("session:7"),
            set("after", "new-value"),
            get("after")
        ),
    )
    .await;
    assert!(replies.contains(&bulk(&format!("{TOKEN}-7"))), "{replies}");
    assert!(replies.contains(&bulk("new-value")), "{replies}");

    // rekey beside the running Keyway: everything under key 2 after it.
    let (ok, output) = rekey(dir.path(), url, table, &key_file);
    assert!(ok, "{output}");
    assert!(
        output.contains("read 22, sealed again 21, already under the sealing key 1"),
        "{output}"
    );
    let (ok, again) = rekey(dir.path(), url, table, &key_file);
    assert!(
        ok && again.contains("sealed again 0, already under the sealing key 22"),
        "{again}"
    );
    rotated.shutdown().await;
    assert!(
        !raw_bytes().windows(11).any(|w| w == b"plain-value"),
        "rekey sealed the plain row"
    );

    // Key 1 retired: every row still reads.
    std::fs::write(&key_file, format!("{KEY_2}\n")).unwrap();
    let retired = start(url, table, Some(&key_file)).await;
    let replies = resp(
        &retired,
        &format!("{}{}QUIT\r\n", get("session:19"), get("before")),
    )
    .await;
    assert!(replies.contains(&bulk(&format!("{TOKEN}-19"))), "{replies}");
    assert!(replies.contains(&bulk("plain-value")), "{replies}");
    retired.shutdown().await;

    // No key file at all: sealed rows are refused, not handed out.
    let none = start(url, table, None).await;
    let replies = resp(&none, &format!("{}QUIT\r\n", get("session:19"))).await;
    assert!(
        replies.starts_with("-ERR") && replies.contains("encryption_key_file"),
        "{replies}"
    );
    none.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_files_hold_no_token_and_a_rotated_key_reads_old_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.sqlite3");
    let url = format!("sqlite://{}", db.display());
    let files = |db: &Path| {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let path = format!("{}{suffix}", db.display());
            all.extend(std::fs::read(path).unwrap_or_default());
        }
        all
    };
    sealed_store_lifecycle(&url, "keyway_items", || files(&db)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_rows_are_sealed_and_rekeyed() {
    let url = postgres_url();
    let table = "keyway_encrypted";
    let dump = || {
        // What a reader of the table sees: every value, as stored.
        let output = Command::new("psql")
            .args([
                &url,
                "-Atc",
                &format!("SELECT encode(cache_value, 'escape') FROM {table}"),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let _ = Command::new("psql")
        .args([&url, "-c", &format!("DROP TABLE IF EXISTS {table}")])
        .output();
    sealed_store_lifecycle(&url, table, dump).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_rows_are_sealed_and_rekeyed() {
    let url = mariadb_url();
    let table = "keyway_encrypted";
    let mysql = |sql: &str| common::mariadb_cli(&url, Some("keyway"), sql);
    mysql(&format!("DROP TABLE IF EXISTS {table}"));
    let dump = || {
        let output = mysql(&format!("SELECT cache_value FROM {table}"));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    sealed_store_lifecycle(&url, table, dump).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_file_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.sqlite3").display());
    let missing = dir.path().join("no-such-keys");
    let error = Server::start(&keyway_config(&backend_toml(&url, "t", Some(&missing))))
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("encryption_key_file") && error.contains("no-such-keys"),
        "{error}"
    );
}

/// Two hosts, each with its own Keyway and its own copy of the key file,
/// over one PostgreSQL table, rotating the key in docs/security.md's order while both
/// serve: the new key as a second line everywhere, then first (one host at
/// a time), `keyway rekey`, the old key retired. Every value written through
/// either host reads through the other at every step; the order skipped (a
/// host sealing with a key the other lacks) is the error docs/security.md warns of.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_rotate_the_key_one_at_a_time_and_always_read_each_other() {
    let url = postgres_url();
    let table = "keyway_rotated_hosts";
    let _ = Command::new("psql")
        .args([&url, "-c", &format!("DROP TABLE IF EXISTS {table}")])
        .output();
    let dir = tempfile::tempdir().unwrap();
    let files = [
        dir.path().join("host-a.keys"),
        dir.path().join("host-b.keys"),
    ];
    let host = |i: usize| start(&url, table, Some(&files[i]));
    let mut written: Vec<String> = Vec::new();
    // Writes one value through each host, then reads every value written so
    // far through both.
    async fn round(hosts: &[&Server; 2], step: &str, written: &mut Vec<String>) {
        for (name, server) in ["a", "b"].iter().zip(hosts) {
            let key = format!("{step}:{name}");
            let reply = resp(
                server,
                &format!("{}QUIT\r\n", set(&key, &format!("{TOKEN}-{key}"))),
            )
            .await;
            assert!(reply.starts_with("+OK"), "{step}: {reply}");
            written.push(key);
        }
        for (name, server) in ["a", "b"].iter().zip(hosts) {
            let mut script: String = written.iter().map(|key| get(key)).collect();
            script.push_str("QUIT\r\n");
            let replies = resp(server, &script).await;
            for key in written.iter() {
                assert!(
                    replies.contains(&bulk(&format!("{TOKEN}-{key}"))),
                    "{step}: host {name} cannot read {key}: {replies}"
                );
            }
        }
    }

    for file in &files {
        std::fs::write(file, format!("{KEY_1}\n")).unwrap();
    }
    let (a, b) = (host(0).await, host(1).await);
    round(&[&a, &b], "key 1", &mut written).await;

    // 1. The new key as a second line on every host, each restarted.
    std::fs::write(&files[0], format!("{KEY_1}\n{KEY_2}\n")).unwrap();
    a.shutdown().await;
    let a = host(0).await;
    round(&[&a, &b], "a reads 2", &mut written).await;
    std::fs::write(&files[1], format!("{KEY_1}\n{KEY_2}\n")).unwrap();
    b.shutdown().await;
    let b = host(1).await;
    round(&[&a, &b], "both read 2", &mut written).await;

    // 2. The new key first, one host at a time.
    std::fs::write(&files[0], format!("{KEY_2}\n{KEY_1}\n")).unwrap();
    a.shutdown().await;
    let a = host(0).await;
    round(&[&a, &b], "a seals with 2", &mut written).await;
    std::fs::write(&files[1], format!("{KEY_2}\n{KEY_1}\n")).unwrap();
    b.shutdown().await;
    let b = host(1).await;
    round(&[&a, &b], "both seal with 2", &mut written).await;

    // 3. Every row sealed again under key 2, beside the running hosts.
    let (ok, report) = rekey(dir.path(), &url, table, &files[0]);
    assert!(ok, "{report}");
    assert!(report.contains("unreadable 0"), "{report}");

    // 4. Key 1 retired everywhere: everything still reads.
    for (i, server) in [a, b].into_iter().enumerate() {
        std::fs::write(&files[i], format!("{KEY_2}\n")).unwrap();
        server.shutdown().await;
    }
    let (a, b) = (host(0).await, host(1).await);
    round(&[&a, &b], "key 1 retired", &mut written).await;

    // The order skipped: a host that seals with key 2 while another holds
    // only key 1. That host cannot read the new rows, and says why.
    std::fs::write(&files[1], format!("{KEY_1}\n")).unwrap();
    b.shutdown().await;
    let b = host(1).await;
    let reply = resp(&b, &format!("{}QUIT\r\n", get("key 1 retired:a"))).await;
    assert!(
        reply.starts_with("-ERR") && reply.contains("key id 2"),
        "{reply}"
    );
    println!(
        "two hosts rotated the key: {} values written through both, each read through both at every step; rekey: {}",
        written.len(),
        report
            .lines()
            .find(|line| line.contains("sealed again"))
            .unwrap_or("")
    );
    a.shutdown().await;
    b.shutdown().await;
}
