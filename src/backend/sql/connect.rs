//! Connecting to the database: the URL sqlx is given (SQLite files made
//! private), and the pool's options per dialect.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

use super::Dialect;

/// The URL sqlx connects to: `mariadb://` is spelled `mysql://`, and a
/// relative SQLite path lives in the data directory (created if missing),
/// in a file created if missing.
pub(super) fn connect_url(
    dialect: Dialect,
    url: &str,
    data_dir: &Path,
) -> std::result::Result<String, String> {
    let (_, rest) = url
        .split_once("://")
        .expect("dialect comes from the scheme");
    match dialect {
        Dialect::MySql => Ok(format!("mysql://{rest}")),
        Dialect::Postgres => Ok(url.to_string()),
        Dialect::Sqlite => {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err("needs a file path, e.g. sqlite://sessions.sqlite3".into());
            }
            let path = Path::new(path);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                data_dir.join(path)
            };
            private_file(&path)?;
            let mut query = query.to_string();
            if !query.split('&').any(|p| p.starts_with("mode=")) {
                query = if query.is_empty() {
                    "mode=rwc".into()
                } else {
                    format!("{query}&mode=rwc")
                };
            }
            Ok(format!("sqlite://{}?{query}", path.display()))
        }
    }
}

/// Makes a SQLite file's directory (mode 0700) and the file (mode 0600) if
/// they are missing, before SQLite opens it: its rows are sessions, which
/// hold users' Keystone tokens, and SQLite would create the file readable by
/// every local user (0644 under the usual umask). Its WAL and shared-memory
/// files take the database file's mode. A looser mode that is already there
/// is left alone, with a warning.
fn private_file(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
        warn_if_open(dir, "directory", 0o700);
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    warn_if_open(path, "file", 0o600);
    return Ok(());

    fn warn_if_open(path: &Path, what: &str, wanted: u32) {
        let Ok(metadata) = std::fs::metadata(path) else {
            return;
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "this SQLite {what} is open to other local users, and the sessions in it hold \
                 users' tokens: chmod {wanted:o} it"
            );
        }
    }
}

/// A lazily connecting pool of at most `connections`; SQLite connections
/// are set up for WAL, full durability and waiting on locks, and with
/// `encrypted` to zero what they free (else a value rewritten sealed, or a
/// deleted session, stays readable in the file's free pages).
pub(super) fn pool_options(
    dialect: Dialect,
    connections: u32,
    acquire_timeout: Duration,
    encrypted: bool,
) -> AnyPoolOptions {
    let pool = AnyPoolOptions::new()
        .max_connections(connections)
        .min_connections(0)
        .acquire_timeout(acquire_timeout);
    if dialect != Dialect::Sqlite {
        return pool;
    }
    pool.after_connect(move |conn, _| {
        Box::pin(async move {
            if encrypted {
                conn.execute("PRAGMA secure_delete = ON").await?;
            }
            // WAL lets reads run beside the writer; FULL makes every
            // acknowledged commit survive a power cut, not only a crash.
            conn.execute("PRAGMA journal_mode = WAL").await?;
            conn.execute("PRAGMA synchronous = FULL").await?;
            conn.execute("PRAGMA busy_timeout = 5000").await?;
            Ok(())
        })
    })
}
