//! Backends: where items finally live. One trait, one async method per
//! operation ([`call`] describes each operation once), and one conformance suite (`tests/conformance.rs`) that every
//! implementation must pass. A backend is chosen by the scheme of its URL.

pub mod call;
pub mod memcached;
pub mod memory;
pub mod numeric;
mod ops;
pub mod pipeline;
pub mod redis;
pub mod sql;

use std::future::Future;
use std::path::Path;

use bytes::Bytes;

pub use call::{execute_typed, Answer, Call, Execute};
pub use ops::Ops;

use crate::config::{BackendConfig, BackendUrl};
use crate::op::{
    Arith, ArithOutcome, Db, ExpireCondition, Expiry, Item, ScanPage, Store, StoreOutcome, Ttl,
};

/// Why a backend could not do what was asked. Client-caused errors carry the
/// wording the frontends turn into protocol errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// memcached `incr` on a value that is not a decimal number.
    #[error("cannot increment or decrement non-numeric value")]
    NotANumber,
    /// redis INCRBY on a value that is not a 64-bit integer.
    #[error("value is not an integer or out of range")]
    NotAnInteger,
    #[error("increment or decrement would overflow")]
    Overflow,
    /// A string operation on a key holding one of redis's collections
    /// (memory backends), or the other way round.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// The item can never fit (larger than the backend's capacity allows).
    #[error("out of memory storing object")]
    OutOfMemory,
    /// The backend cannot do this at all (memcached cannot list keys, say).
    #[error("{0}")]
    Unsupported(String),
    /// The backend failed or is unreachable.
    #[error("backend {backend}: {message}")]
    Unavailable { backend: String, message: String },
}

impl BackendError {
    /// True when the client's request caused the error (memcached CLIENT_ERROR).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            BackendError::NotANumber | BackendError::NotAnInteger | BackendError::Overflow
        )
    }
}

/// Backend scan cursors stay below 2^56: the router keeps the backend's slot in
/// the top byte of the cursor clients see.
pub const SCAN_CURSOR_MASK: u64 = (1 << 56) - 1;

pub type Result<T> = std::result::Result<T, BackendError>;

/// The operations every backend implements. Keys are plain bytes; `db` is the
/// namespace (redis SELECT) the key lives in.
pub trait Backend: Send + Sync {
    /// Items for `keys`, in order; `None` for misses and expired items.
    fn get(&self, db: Db, keys: &[Bytes])
        -> impl Future<Output = Result<Vec<Option<Item>>>> + Send;
    /// Like `get`, and sets each hit's expiry (memcached gat, redis GETEX).
    fn get_and_touch(
        &self,
        db: Db,
        keys: &[Bytes],
        expiry: Expiry,
    ) -> impl Future<Output = Result<Vec<Option<Item>>>> + Send;
    /// Removes and returns the item (redis GETDEL).
    fn get_and_delete(
        &self,
        db: Db,
        key: &Bytes,
    ) -> impl Future<Output = Result<Option<Item>>> + Send;
    fn store(&self, db: Db, store: Store) -> impl Future<Output = Result<StoreOutcome>> + Send;
    /// Stores every pair only if none of the keys exists (redis MSETNX); true if stored.
    fn store_all_if_absent(
        &self,
        db: Db,
        pairs: Vec<(Bytes, Bytes)>,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Deletes each key; true for each one that existed.
    fn delete(&self, db: Db, keys: &[Bytes]) -> impl Future<Output = Result<Vec<bool>>> + Send;
    fn arith(
        &self,
        db: Db,
        key: &Bytes,
        arith: Arith,
    ) -> impl Future<Output = Result<ArithOutcome>> + Send;
    /// Changes a key's expiry if `condition` holds; true if changed.
    fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> impl Future<Output = Result<bool>> + Send;
    fn ttl(&self, db: Db, key: &Bytes) -> impl Future<Output = Result<Ttl>> + Send;
    /// One page of live keys in `db` matching the redis glob `pattern`.
    fn scan(
        &self,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> impl Future<Output = Result<ScanPage>> + Send;
    /// Number of live keys in `db`.
    fn len(&self, db: Db) -> impl Future<Output = Result<usize>> + Send;
    /// Removes every key of `db`, or of every db when `None`.
    fn flush(&self, db: Option<Db>) -> impl Future<Output = Result<()>> + Send;
}

/// One SCAN page of the Django session keys in `db`, each with its item
/// (read in one batch; keys gone by then are left out), and the cursor of
/// the next page (0: done). For stores that list keys (not memcached).
pub async fn session_page<B: Backend>(
    backend: &B,
    db: Db,
    cursor: u64,
    count: usize,
) -> Result<(Vec<(Bytes, Item)>, u64)> {
    let page = backend
        .scan(db, cursor, Some(b"*django.contrib.sessions.*"), count)
        .await?;
    let keys: Vec<Bytes> = page
        .keys
        .into_iter()
        .filter(|key| keyway_protocol::django::session_key(key).is_some())
        .collect();
    if keys.is_empty() {
        return Ok((Vec::new(), page.cursor));
    }
    let items = backend.get(db, &keys).await?;
    let found = keys
        .into_iter()
        .zip(items)
        .filter_map(|(key, item)| Some((key, item?)))
        .collect();
    Ok((found, page.cursor))
}

/// A configured backend of any kind. An enum rather than a trait object keeps
/// the per-request path free of boxed futures.
pub enum AnyBackend {
    Memory(memory::MemoryBackend),
    Memcached(memcached::MemcachedBackend),
    Sql(sql::SqlBackend),
    // Boxed: two connection pools make it several times larger than the others.
    Redis(Box<redis::RedisBackend>),
}

/// Why a backend could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[error("url \"{0}\": {1}")]
pub struct BuildError(String, String);

impl AnyBackend {
    /// Builds the backend `config` describes; relative `sqlite://` paths are
    /// taken under `data_dir`. Needs a tokio runtime (SQL backends start
    /// their writer); nothing connects until the first request.
    pub fn build(config: &BackendConfig, data_dir: &Path) -> std::result::Result<Self, BuildError> {
        let bad = |why: String| BuildError(config.url.clone(), why);
        Ok(match config.endpoint().map_err(bad)? {
            BackendUrl::Memory => {
                AnyBackend::Memory(memory::MemoryBackend::new(config.capacity.as_u64()))
            }
            BackendUrl::Memcached(servers) => AnyBackend::Memcached(
                memcached::MemcachedBackend::new(&servers, config).map_err(bad)?,
            ),
            BackendUrl::Redis { url, .. } => AnyBackend::Redis(Box::new(
                redis::RedisBackend::new(&url, config).map_err(bad)?,
            )),
            BackendUrl::Sql(dialect) => {
                AnyBackend::Sql(sql::SqlBackend::new(dialect, config, data_dir).map_err(bad)?)
            }
        })
    }

    /// Removes expired items where the backend does not do it itself.
    pub async fn sweep_expired(&self) {
        match self {
            AnyBackend::Memory(memory) => memory.sweep_expired(),
            AnyBackend::Sql(sql) => sql.sweep_expired().await,
            AnyBackend::Memcached(_) | AnyBackend::Redis(_) => {}
        }
    }

    /// Asks the backend whether it answers, without touching any key:
    /// memcached `version` on every server, redis `PING`, SQL `SELECT 1`.
    /// What `/readyz` reports.
    pub async fn probe(&self) -> Result<()> {
        match self {
            AnyBackend::Memory(_) => Ok(()),
            AnyBackend::Memcached(memcached) => memcached.probe().await,
            AnyBackend::Redis(redis) => redis.probe().await,
            AnyBackend::Sql(sql) => sql.probe().await,
        }
    }

    /// Open backend connections and the most the backend keeps, for
    /// `/metrics`; `None` for memory.
    pub fn connections(&self) -> Option<(usize, usize)> {
        match self {
            AnyBackend::Memory(_) => None,
            AnyBackend::Memcached(memcached) => Some(memcached.connections()),
            AnyBackend::Redis(redis) => Some(redis.connections()),
            AnyBackend::Sql(sql) => Some(sql.connections()),
        }
    }

    /// The kind of store, for labels: memory, memcached, redis, sqlite, postgres, mysql.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyBackend::Memory(_) => "memory",
            AnyBackend::Memcached(_) => "memcached",
            AnyBackend::Redis(_) => "redis",
            AnyBackend::Sql(sql) => sql.dialect().name(),
        }
    }

    /// Figures for INFO / stats: (items, bytes, capacity, evictions).
    pub fn usage(&self) -> memory::Usage {
        match self {
            AnyBackend::Memory(m) => m.usage(),
            // memcached and redis report their own figures; SQL's are rows.
            AnyBackend::Memcached(_) | AnyBackend::Redis(_) | AnyBackend::Sql(_) => {
                memory::Usage::default()
            }
        }
    }
}

/// The memory backend's calls run inline; the others' are boxed: their
/// futures hold a network round trip's state (SQL's most of all), and
/// inline they would make every request's future, memory routes' included,
/// as large as the largest. One allocation is nothing beside a round trip.
impl Execute for AnyBackend {
    async fn execute(&self, call: Call<'_>) -> Result<Answer> {
        match self {
            AnyBackend::Memory(backend) => execute_typed(backend, call).await,
            AnyBackend::Memcached(backend) => Box::pin(execute_typed(backend, call)).await,
            AnyBackend::Sql(backend) => Box::pin(backend.execute(call)).await,
            AnyBackend::Redis(backend) => Box::pin(execute_typed(&**backend, call)).await,
        }
    }
}
