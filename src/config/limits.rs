//! `[limits]` and `[runtime]`, and the sizes they are written in.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Client connections per process; more are refused with the protocol's error.
    pub max_connections: usize,
    /// Largest memcached item (key + value + 56 bytes of header, as memcached counts).
    pub item_size: Size,
    /// Longest memcached get/gets/gat/gats line (other lines: 2048 bytes, as memcached).
    pub max_get_line: Size,
    /// Most arguments in one RESP command.
    pub max_args: usize,
    /// Largest RESP bulk argument.
    pub max_bulk: Size,
    /// Longest RESP inline command.
    pub max_inline: Size,
    /// Seconds a draining shutdown waits for in-flight requests.
    pub shutdown_grace_seconds: u64,
    /// Seconds a client may send nothing before it is disconnected; 0 never
    /// (memcached's and redis's default).
    pub idle_timeout_seconds: u64,
    /// Most requests of one connection read and not yet answered: a longer
    /// pipeline is answered in turns of this many, and no more of it is
    /// read meanwhile.
    pub max_pipeline: usize,
    /// Most reply bytes held for one connection (a single larger reply is
    /// still sent whole): past it, Keyway writes before answering more.
    pub max_output_buffer: Size,
    /// Seconds a client may leave its replies unread before it is
    /// disconnected (its replies would otherwise stay in memory).
    pub client_write_timeout_seconds: u64,
    /// Most bytes all connections together may hold in requests not yet
    /// read whole: past it, connections with large partial requests stop
    /// reading (but one, which finishes its request), so many slow large
    /// writes cannot grow Keyway without bound.
    pub request_buffers: Size,
    /// Most redis connections clients hold of their own at once (WATCH,
    /// blocking pops: one each while it lasts); past it such a command is
    /// refused with an error that names this limit.
    pub max_pinned_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            item_size: Size(1024 * 1024),
            max_get_line: Size(1024 * 1024),
            max_args: 1024 * 1024,
            max_bulk: Size(512 * 1024 * 1024),
            max_inline: Size(64 * 1024),
            shutdown_grace_seconds: 10,
            idle_timeout_seconds: 0,
            max_pipeline: 1024,
            max_output_buffer: Size(4 * 1024 * 1024),
            client_write_timeout_seconds: 30,
            request_buffers: Size(256 * 1024 * 1024),
            max_pinned_connections: 1024,
        }
    }
}

impl Limits {
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_seconds > 0).then(|| Duration::from_secs(self.idle_timeout_seconds))
    }

    pub fn client_write_timeout(&self) -> Duration {
        Duration::from_secs(self.client_write_timeout_seconds)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtime {
    /// Connection worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Where relative `sqlite://` paths live (created when missing); the
    /// `--data-dir` flag overrides it.
    pub data_dir: PathBuf,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            workers: 0,
            data_dir: PathBuf::from("keyway-data"),
        }
    }
}

/// A byte count written as an integer or a string such as `"64MiB"` or `"1 GB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    pub fn as_u64(self) -> u64 {
        self.0
    }
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(Size(n)),
            Raw::Text(text) => parse_size::parse_size(&text).map(Size).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a size ({e}); write e.g. \"64MiB\""
                ))
            }),
        }
    }
}
