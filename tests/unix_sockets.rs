//! `listen.memcache_socket` / `listen.resp_socket`: Unix socket listeners
//! with a file mode, as memcached's `-s`/`-a` and redis's `unixsocket` /
//! `unixsocketperm`, reached by real clients (redis-cli `-s`).

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{start_redis_with, ONE_MEMORY_ROUTE};
use keyway::config::Config;
use keyway::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// A config with both Unix sockets in `dir` (and `extra` lines in `[listen]`).
fn socket_config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        "[listen]\nmemcache_socket = {:?}\nresp_socket = {:?}\n{extra}\n{ONE_MEMORY_ROUTE}",
        dir.join("memcache.sock"),
        dir.join("resp.sock"),
    );
    Config::from_toml(&text).expect("test config is valid")
}

fn mode_of(path: &Path) -> u32 {
    let meta = std::fs::symlink_metadata(path).expect("the socket file exists");
    assert!(meta.file_type().is_socket(), "{path:?} is a socket");
    meta.permissions().mode() & 0o777
}

/// Sends `request` and reads until the server closes (end it with quit).
async fn exchange_unix(path: &Path, request: &[u8]) -> Vec<u8> {
    let mut stream = UnixStream::connect(path).await.expect("connect");
    stream.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
        .await
        .expect("answered within 5 s")
        .unwrap();
    reply
}

fn redis_cli(socket: &Path, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-s")
        .arg(socket)
        .args(args)
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "redis-cli: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `CLIENT INFO`'s `field=value` pairs named in `fields`, with `path` written as `<socket>`.
fn client_fields(info: &str, path: &Path, fields: &[&str]) -> Vec<String> {
    let info = info.replace(&path.display().to_string(), "<socket>");
    info.split_whitespace()
        .filter(|pair| fields.iter().any(|f| pair.starts_with(&format!("{f}="))))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn memcached_and_resp_clients_connect_through_sockets_with_the_configured_mode() {
    let dir = tempfile::tempdir().unwrap();
    let keyway = Server::start(&socket_config(dir.path(), "socket_mode = \"0660\""))
        .await
        .expect("keyway starts");
    let (memcache, resp) = (
        dir.path().join("memcache.sock"),
        dir.path().join("resp.sock"),
    );
    assert_eq!(mode_of(&memcache), 0o660);
    assert_eq!(mode_of(&resp), 0o660);

    let reply = exchange_unix(&memcache, b"set k 7 0 2\r\nhi\r\nget k\r\nquit\r\n").await;
    assert_eq!(reply, b"STORED\r\nVALUE k 7 2\r\nhi\r\nEND\r\n");
    // One store behind both: redis-cli reads what the memcached client wrote.
    assert_eq!(redis_cli(&resp, &["GET", "k"]), "hi\n");
    assert_eq!(redis_cli(&resp, &["SET", "r", "v"]), "OK\n");
    assert_eq!(
        exchange_unix(&memcache, b"get r\r\nquit\r\n").await,
        b"VALUE r 0 1\r\nv\r\nEND\r\n"
    );

    // CLIENT INFO shows a socket client as redis-server does: the path, port 0, flag U.
    let fields = ["addr", "laddr", "flags"];
    let ours = client_fields(&redis_cli(&resp, &["CLIENT", "INFO"]), &resp, &fields);
    let redis_socket = dir.path().join("redis.sock");
    let _redis = start_redis_with(&["--unixsocket", redis_socket.to_str().unwrap()]);
    let theirs = client_fields(
        &redis_cli(&redis_socket, &["CLIENT", "INFO"]),
        &redis_socket,
        &fields,
    );
    assert_eq!(ours, theirs);
    assert_eq!(ours, ["addr=<socket>:0", "laddr=<socket>:0", "flags=U"]);
    keyway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_removes_the_socket_files_and_a_stale_one_is_replaced_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let memcache = dir.path().join("memcache.sock");
    // What a process killed with -9 leaves behind: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&memcache).unwrap());
    assert!(memcache.exists());

    let keyway = Server::start(&socket_config(dir.path(), ""))
        .await
        .expect("a stale socket file is replaced");
    assert_eq!(mode_of(&memcache), 0o700, "memcached's default mode");
    assert_eq!(
        exchange_unix(&memcache, b"version\r\nquit\r\n").await[..8],
        *b"VERSION "
    );
    keyway.shutdown().await;
    assert!(!memcache.exists());
    assert!(!dir.path().join("resp.sock").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_socket_or_another_file_at_the_path_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let running = Server::start(&socket_config(dir.path(), ""))
        .await
        .expect("keyway starts");
    let error = Server::start(&socket_config(dir.path(), ""))
        .await
        .err()
        .expect("a second Keyway on the same sockets is refused")
        .to_string();
    assert!(
        error.contains("listen.memcache_socket") && error.contains("another process"),
        "{error}"
    );
    // The refused start did not take the running one's socket away.
    assert_eq!(
        exchange_unix(&dir.path().join("memcache.sock"), b"version\r\nquit\r\n").await[..8],
        *b"VERSION "
    );
    running.shutdown().await;

    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("memcache.sock"), "not a socket").unwrap();
    let error = Server::start(&socket_config(other.path(), ""))
        .await
        .err()
        .expect("a regular file is not replaced")
        .to_string();
    assert!(error.contains("not a socket"), "{error}");
    assert_eq!(
        std::fs::read_to_string(other.path().join("memcache.sock")).unwrap(),
        "not a socket"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_moves_a_socket_and_changes_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let keyway = Server::start(&socket_config(&first, ""))
        .await
        .expect("keyway starts");
    let old_path: PathBuf = first.join("memcache.sock");
    // Connected just before the move: some are still in the kernel's queue,
    // not yet accepted, when the old listener stops.
    let mut open = Vec::new();
    for _ in 0..32 {
        open.push(UnixStream::connect(&old_path).await.unwrap());
    }

    keyway
        .reload(socket_config(&second, ""))
        .await
        .expect("reload");
    // The old accept loop stops (and removes its file) in the background.
    let gone = async {
        while old_path.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(2), gone)
        .await
        .expect("the moved socket's file is removed");
    let new_path = second.join("memcache.sock");
    assert_eq!(
        exchange_unix(&new_path, b"set a 0 0 1\r\n1\r\nquit\r\n").await,
        b"STORED\r\n"
    );
    // Every connection made before the move goes on.
    for open in &mut open {
        open.write_all(b"get a\r\n").await.unwrap();
        let mut reply = vec![0u8; 21];
        tokio::time::timeout(Duration::from_secs(5), open.read_exact(&mut reply))
            .await
            .expect("answered within 5 s")
            .unwrap();
        assert_eq!(reply, b"VALUE a 0 1\r\n1\r\nEND\r\n");
    }

    // Same path, new mode: bound anew; the old listener's cleanup leaves the new file.
    keyway
        .reload(socket_config(&second, "socket_mode = \"0600\""))
        .await
        .expect("reload");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mode_of(&new_path), 0o600);
    assert_eq!(
        exchange_unix(&new_path, b"get a\r\nquit\r\n").await,
        b"VALUE a 0 1\r\n1\r\nEND\r\n"
    );
    keyway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_clients_count_against_the_connection_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = socket_config(dir.path(), "");
    config.limits.max_connections = 1;
    let keyway = Server::start(&config).await.expect("keyway starts");
    let mut held = UnixStream::connect(dir.path().join("resp.sock"))
        .await
        .unwrap();
    held.write_all(b"PING\r\n").await.unwrap();
    let mut pong = [0u8; 7];
    held.read_exact(&mut pong).await.unwrap();
    // Refused before anything is read (a request sent would meet a reset).
    assert_eq!(
        exchange_unix(&dir.path().join("memcache.sock"), b"").await,
        b"SERVER_ERROR Too many open connections\r\n"
    );
    assert_eq!(
        exchange_unix(&dir.path().join("resp.sock"), b"").await,
        b"-ERR max number of clients reached\r\n"
    );
    keyway.shutdown().await;
}
