//! `sqlite://path`, `postgres://...`, `mysql://...` (MariaDB included): items
//! in one SQL table, durable once acknowledged.
//!
//! The table holds (db, key, value, flags, expiry, CAS id) with an id column
//! that SCAN cursors walk; [`dialect`] has the SQL for each database. Reads go
//! straight to a connection pool; writes go through one batching writer
//! ([`writer`]) and are answered only after their transaction commits.
//! Expired rows are invisible to reads at once and deleted in the background,
//! in bounded batches, by [`SqlBackend::sweep_expired`].

pub mod changes;
mod connect;
mod dialect;
pub mod encryption;
pub mod owners;
mod rekey;
mod table;
mod writer;
use connect::{connect_url, pool_options};
pub use table::BATCH_BOUNDS;
use table::{BatchSizes, Table};

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use sqlx::any::AnyConnectOptions;
use sqlx::{Executor, Row};
use tokio::sync::{mpsc, oneshot, OnceCell};

pub use self::dialect::Dialect;
use self::dialect::Statements;
pub use self::rekey::RekeyReport;
use self::writer::{live_item, Job};
use super::{Answer, Backend, Call, Execute, Ops, Result, SCAN_CURSOR_MASK};
use crate::config::BackendConfig;
use crate::op::{
    now_ms, Arith, ArithOutcome, Db, ExpireCondition, Expiry, Item, ScanPage, Store, StoreOutcome,
    Ttl,
};
use crate::pattern::glob_match;

/// Pool size when the config does not set `connections`.
const DEFAULT_CONNECTIONS: usize = 8;
/// Writes waiting for the writer before senders wait too (backpressure).
const QUEUE: usize = 4 * writer::MAX_BATCH;
/// Expired rows deleted per sweep statement, and statements per sweep.
const SWEEP_ROWS: i64 = 1000;
const SWEEP_STATEMENTS: usize = 10;

pub struct SqlBackend {
    shared: Arc<Table>,
    queue: mpsc::Sender<Job>,
    schema: OnceCell<()>,
    request_timeout: Duration,
    feed: Arc<changes::ChangeFeed>,
    poll_interval: Duration,
    trim_clock: changes::TrimClock,
    /// Stops the change feed's poller with the backend.
    stop: tokio_util::sync::CancellationToken,
    _stop_guard: tokio_util::sync::DropGuard,
}

/// The least time a SQLite connection may take to open (see `SqlBackend::new`).
const SQLITE_OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl SqlBackend {
    /// Builds the pool (connecting lazily, so Keyway starts while the
    /// database is down) and starts the writer. Needs a tokio runtime.
    pub fn new(
        dialect: Dialect,
        config: &BackendConfig,
        data_dir: &Path,
    ) -> std::result::Result<Self, String> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        crate::config::url::validate_table_name(&config.table)?;
        let url = connect_url(dialect, &config.url, data_dir)?;
        let options = AnyConnectOptions::from_str(&url).map_err(|e| e.to_string())?;
        // Opening a SQLite file is local, but its first open creates the
        // database and switches it to WAL with fsyncs, which a busy disk can
        // hold past a network-sized connect timeout (seen under a full test
        // run: 1 s was not enough).
        let acquire_timeout = match dialect {
            Dialect::Sqlite => config.connect_timeout().max(SQLITE_OPEN_TIMEOUT),
            _ => config.connect_timeout(),
        };
        let connections = config.connections.unwrap_or(DEFAULT_CONNECTIONS) as u32;
        let keyring = match &config.encryption_key_file {
            Some(file) => Some(encryption::Keyring::load(file)?),
            None => None,
        };
        let pool = pool_options(dialect, connections, acquire_timeout, keyring.is_some());
        // The change feed polls on a connection of its own: were it to wait
        // for one behind busy requests, the caches in front of this store
        // would stop being trusted exactly when they help most.
        let feed_pool = pool_options(dialect, 1, acquire_timeout, keyring.is_some());
        let shared = Arc::new(Table {
            feed_pool: feed_pool.connect_lazy_with(options.clone()),
            pool: pool.connect_lazy_with(options),
            dialect,
            statements: Statements::new(dialect, &config.table),
            // Unique per write in this process and, starting from the clock,
            // unlikely to repeat one another process or an earlier run used.
            next_cas: AtomicU64::new(now_ms() << 12),
            batch_sizes: BatchSizes::default(),
            changes_logged: AtomicU64::new(0),
            keyring,
        });
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(writer::run(shared.clone(), receiver));
        let stop = tokio_util::sync::CancellationToken::new();
        Ok(Self {
            shared,
            queue,
            schema: OnceCell::new(),
            request_timeout: config.request_timeout(),
            feed: Arc::default(),
            trim_clock: changes::TrimClock::default(),
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            _stop_guard: stop.clone().drop_guard(),
            stop,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.shared.dialect
    }

    /// Creates the table, its indexes and its change log when missing
    /// (`keyway migrate-schema`, and before the first request).
    pub async fn create_schema(&self) -> Result<()> {
        self.shared.create_schema().await
    }

    /// Polls of the change log from now on (see [`changes`]); the first
    /// subscriber starts the polling, every `poll_interval`.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<changes::Poll>> {
        self.feed
            .subscribe(&self.shared, self.poll_interval, &self.stop)
    }

    pub fn feed(&self) -> &changes::ChangeFeed {
        &self.feed
    }

    /// Change-log entries this process wrote.
    pub fn changes_logged(&self) -> u64 {
        self.shared
            .changes_logged
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn ready(&self) -> Result<()> {
        self.schema
            .get_or_try_init(|| self.create_schema())
            .await
            .map(|_| ())
    }

    /// Runs `work` after the schema exists, failing after the request timeout.
    /// (Creating the table on first use is bounded by the pool's acquire
    /// timeout instead: it happens once, and may fsync a new database file.)
    async fn timed<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.ready().await?;
        tokio::time::timeout(self.request_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(self.shared.unavailable(format!(
                    "no answer within {} ms (request_timeout_ms)",
                    self.request_timeout.as_millis()
                )))
            })
    }

    /// Queues `write` for the writer and waits for its commit.
    /// Queues `write` to the writer task and waits for its commit.
    async fn write(&self, write: Call<'static>) -> Result<Answer> {
        self.timed(async {
            let (reply, answer) = oneshot::channel();
            self.queue
                .send(Job {
                    write,
                    origin: changes::current_origin(),
                    reply,
                })
                .await
                .map_err(|_| self.shared.unavailable("the writer has stopped"))?;
            answer
                .await
                .map_err(|_| self.shared.unavailable("the writer has stopped"))?
        })
        .await
    }

    /// `SELECT 1` on a pooled connection, within the request timeout.
    pub async fn probe(&self) -> Result<()> {
        self.timed(async {
            self.shared
                .pool
                .execute("SELECT 1")
                .await
                .map(drop)
                .map_err(|e| self.shared.unavailable(e))
        })
        .await
    }

    /// Writes per committed transaction: (sum, counts per bucket).
    pub fn batch_sizes(&self) -> (u64, Vec<u64>) {
        self.shared.batch_sizes.snapshot()
    }

    /// Open connections and the most the pool keeps.
    pub fn connections(&self) -> (usize, usize) {
        let pool = &self.shared.pool;
        (
            pool.size() as usize,
            pool.options().get_max_connections() as usize,
        )
    }

    /// Deletes expired rows, a bounded number per call.
    pub async fn sweep_expired(&self) {
        if self.schema.get().is_none() {
            return;
        }
        changes::trim(&self.shared, &self.trim_clock).await;
        let st = &self.shared.statements;
        for _ in 0..SWEEP_STATEMENTS {
            let result = sqlx::query(&st.sweep)
                .bind(now_ms() as i64)
                .bind(SWEEP_ROWS)
                .execute(&self.shared.pool)
                .await;
            match result {
                Ok(done) if done.rows_affected() < SWEEP_ROWS as u64 => return,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(backend = self.shared.dialect.name(), %error, "sweeping expired rows failed");
                    return;
                }
            }
        }
    }

    async fn fetch_live(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        let shared = &self.shared;
        let mut conn = shared
            .pool
            .acquire()
            .await
            .map_err(|e| shared.unavailable(e))?;
        let now = now_ms();
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            let row = sqlx::query(&shared.statements.get)
                .bind(db as i64)
                .bind(&key[..])
                .bind(now as i64)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| shared.unavailable(e))?;
            let item = live_item(row, now, shared.keyring.as_ref(), db, key);
            items.push(item.map_err(|e| shared.unavailable(e))?);
        }
        Ok(items)
    }
}

/// Reads go to the pool; every other call is a write for the writer task,
/// which answers it after the commit.
impl Execute for SqlBackend {
    async fn execute(&self, call: Call<'_>) -> Result<Answer> {
        Ok(match call {
            Call::Get { db, keys } => Answer::Items(Backend::get(self, db, &keys).await?),
            Call::Ttl { db, key } => Answer::Ttl(Backend::ttl(self, db, &key).await?),
            Call::Scan {
                db,
                cursor,
                pattern,
                count,
            } => Answer::Page(Backend::scan(self, db, cursor, pattern.as_deref(), count).await?),
            Call::Len { db } => Answer::Count(Backend::len(self, db).await?),
            write => self.write(write.into_owned()).await?,
        })
    }
}

/// The reads, and the writes through [`Execute`] (one description of each
/// write, [`Call`], from the frontend to the writer task).
impl Backend for SqlBackend {
    async fn get(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        self.timed(self.fetch_live(db, keys)).await
    }

    async fn get_and_touch(
        &self,
        db: Db,
        keys: &[Bytes],
        expiry: Expiry,
    ) -> Result<Vec<Option<Item>>> {
        Ops::get_and_touch(self, db, keys, expiry).await
    }

    async fn get_and_delete(&self, db: Db, key: &Bytes) -> Result<Option<Item>> {
        Ops::get_and_delete(self, db, key).await
    }

    async fn store(&self, db: Db, store: Store) -> Result<StoreOutcome> {
        Ops::store(self, db, store).await
    }

    async fn store_all_if_absent(&self, db: Db, pairs: Vec<(Bytes, Bytes)>) -> Result<bool> {
        Ops::store_all_if_absent(self, db, pairs).await
    }

    async fn delete(&self, db: Db, keys: &[Bytes]) -> Result<Vec<bool>> {
        Ops::delete(self, db, keys).await
    }

    async fn arith(&self, db: Db, key: &Bytes, arith: Arith) -> Result<ArithOutcome> {
        Ops::arith(self, db, key, arith).await
    }

    async fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Result<bool> {
        Ops::expire(self, db, key, expiry, condition).await
    }

    async fn ttl(&self, db: Db, key: &Bytes) -> Result<Ttl> {
        let item = self
            .timed(self.fetch_live(db, std::slice::from_ref(key)))
            .await?
            .remove(0);
        Ok(Ttl::of(item.as_ref()))
    }

    /// Walks rows in id order: the cursor is the last id returned, so a key
    /// present for the whole scan is returned exactly once.
    async fn scan(
        &self,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<ScanPage> {
        let shared = &self.shared;
        let limit = count.clamp(1, 10_000) as i64;
        let rows = self
            .timed(async {
                sqlx::query(&shared.statements.scan)
                    .bind(db as i64)
                    .bind(now_ms() as i64)
                    .bind((cursor & SCAN_CURSOR_MASK) as i64)
                    .bind(limit)
                    .fetch_all(&shared.pool)
                    .await
                    .map_err(|e| shared.unavailable(e))
            })
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        let mut last = 0i64;
        for row in &rows {
            last = row.try_get(0).map_err(|e| shared.unavailable(e))?;
            let key = if shared.dialect == Dialect::MySql {
                let text: String = row.try_get(1).map_err(|e| shared.unavailable(e))?;
                hex::decode(text).map_err(|e| shared.unavailable(e))?
            } else {
                row.try_get::<Vec<u8>, _>(1)
                    .map_err(|e| shared.unavailable(e))?
            };
            if pattern.is_none_or(|p| glob_match(p, &key)) {
                keys.push(Bytes::from(key));
            }
        }
        let cursor = if rows.len() as i64 == limit {
            last as u64 & SCAN_CURSOR_MASK
        } else {
            0
        };
        Ok(ScanPage { cursor, keys })
    }

    async fn len(&self, db: Db) -> Result<usize> {
        let shared = &self.shared;
        self.timed(async {
            let row = sqlx::query(&shared.statements.count)
                .bind(db as i64)
                .bind(now_ms() as i64)
                .fetch_one(&shared.pool)
                .await
                .map_err(|e| shared.unavailable(e))?;
            let count: i64 = row.try_get(0).map_err(|e| shared.unavailable(e))?;
            Ok(count as usize)
        })
        .await
    }

    async fn flush(&self, db: Option<Db>) -> Result<()> {
        Ops::flush(self, db).await
    }
}
