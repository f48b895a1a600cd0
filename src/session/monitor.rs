//! MONITOR: every command Keyway's RESP clients send, as redis's MONITOR
//! shows them (`+1339518083.107412 [0 127.0.0.1:60866] "keys" "*"`), to
//! every client that asked. Keyway's own clients and their commands, not
//! what Keyway sends its backends: a command on a memory route shows as
//! much as one forwarded to redis.
//!
//! With nobody monitoring, a command costs one atomic load. A monitoring
//! client that falls [`BACKLOG`] lines behind is disconnected rather than
//! letting its lines pile up in Keyway's memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::broadcast;

/// Lines a monitoring client may be behind before it is disconnected.
pub const BACKLOG: usize = 4096;

pub struct Monitors {
    lines: broadcast::Sender<Bytes>,
    watching: Arc<AtomicUsize>,
}

impl Default for Monitors {
    fn default() -> Self {
        Self {
            lines: broadcast::channel(BACKLOG).0,
            watching: Arc::default(),
        }
    }
}

/// One monitoring client's subscription; counted while it lives.
pub struct Watcher {
    lines: broadcast::Receiver<Bytes>,
    watching: Arc<AtomicUsize>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.watching.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a monitoring client gets no more lines.
#[derive(Debug)]
pub struct FellBehind(pub u64);

impl Watcher {
    /// The next line (a whole RESP simple string), waiting for it.
    pub async fn next(&mut self) -> Result<Bytes, FellBehind> {
        match self.lines.recv().await {
            Ok(line) => Ok(line),
            Err(broadcast::error::RecvError::Lagged(missed)) => Err(FellBehind(missed)),
            // The sender lives as long as the registry holding it.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }

    /// Lines already sent, without waiting.
    pub fn ready(&mut self) -> Option<Result<Bytes, FellBehind>> {
        match self.lines.try_recv() {
            Ok(line) => Some(Ok(line)),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => Some(Err(FellBehind(missed))),
            Err(_) => None,
        }
    }
}

impl Monitors {
    /// Whether anyone monitors (asked before each command).
    pub fn watched(&self) -> bool {
        self.watching.load(Ordering::Relaxed) > 0
    }

    pub fn watch(&self) -> Watcher {
        self.watching.fetch_add(1, Ordering::Relaxed);
        Watcher {
            lines: self.lines.subscribe(),
            watching: self.watching.clone(),
        }
    }

    /// Shows one command of a client in database `db` at `peer`.
    pub fn feed(&self, db: u8, peer: &str, args: &[Bytes]) {
        if hidden(&args[0]) {
            return;
        }
        // Nobody may be left by now: then the line just goes nowhere.
        let _ = self.lines.send(line(SystemTime::now(), db, peer, args));
    }
}

/// redis shows no administrative command to monitors (its `admin` flag:
/// CONFIG, CLIENT KILL, SHUTDOWN...).
fn hidden(name: &[u8]) -> bool {
    const HIDDEN: &[&str] = &[
        "acl",
        "bgrewriteaof",
        "bgsave",
        "config",
        "debug",
        "failover",
        "monitor",
        "pfdebug",
        "pfselftest",
        "psync",
        "replconf",
        "replicaof",
        "save",
        "shutdown",
        "slaveof",
        "sync",
    ];
    HIDDEN
        .iter()
        .any(|hidden| name.eq_ignore_ascii_case(hidden.as_bytes()))
}

/// Whether argument `at` is a password or user name redis shows as
/// `(redacted)`: AUTH's arguments, HELLO's after `AUTH`.
fn redacted(args: &[Bytes], at: usize) -> bool {
    let name = &args[0];
    if name.eq_ignore_ascii_case(b"auth") {
        return at > 0;
    }
    name.eq_ignore_ascii_case(b"hello")
        && (at.saturating_sub(2)..at)
            .any(|before| before > 1 && args[before].eq_ignore_ascii_case(b"auth"))
}

/// redis's monitor line: time, database, client, then each argument as
/// redis's `sdscatrepr` quotes it.
fn line(now: SystemTime, db: u8, peer: &str, args: &[Bytes]) -> Bytes {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut out = BytesMut::with_capacity(48 + args.iter().map(|a| a.len() + 3).sum::<usize>());
    out.put_slice(
        format!(
            "+{}.{:06} [{db} {peer}]",
            since.as_secs(),
            since.subsec_micros()
        )
        .as_bytes(),
    );
    for (at, arg) in args.iter().enumerate() {
        if redacted(args, at) {
            out.put_slice(b" \"(redacted)\"");
            continue;
        }
        out.put_slice(b" \"");
        for &byte in arg.iter() {
            match byte {
                b'\\' | b'"' => out.put_slice(&[b'\\', byte]),
                b'\n' => out.put_slice(b"\\n"),
                b'\r' => out.put_slice(b"\\r"),
                b'\t' => out.put_slice(b"\\t"),
                0x07 => out.put_slice(b"\\a"),
                0x08 => out.put_slice(b"\\b"),
                0x20..=0x7e => out.put_u8(byte),
                _ => out.put_slice(format!("\\x{byte:02x}").as_bytes()),
            }
        }
        out.put_u8(b'"');
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_redis_does() {
        let at = UNIX_EPOCH + std::time::Duration::from_micros(1_339_518_083_107_412);
        let args = [
            Bytes::from_static(b"set"),
            Bytes::from_static(b"a\"b\\c"),
            Bytes::from_static(b"\r\n\t\x07\x08\x00\xff ok"),
        ];
        assert_eq!(
            &line(at, 3, "127.0.0.1:60866", &args)[..],
            &b"+1339518083.107412 [3 127.0.0.1:60866] \"set\" \"a\\\"b\\\\c\" \
               \"\\r\\n\\t\\a\\b\\x00\\xff ok\"\r\n"[..]
        );
    }
}
