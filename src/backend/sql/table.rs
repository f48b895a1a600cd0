//! The state of one SQL table that the backend, its writer and its change
//! feed share, and the writer's batch-size figures.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::AnyPool;

use super::dialect::{Dialect, Statements};
use super::encryption::Keyring;
use crate::backend::BackendError;

/// One SQL table, and what the backend, its writer task and its change
/// feed share: the pools, the dialect's statements, the CAS counter, the
/// figures and the keyring.
pub struct Table {
    pub pool: AnyPool,
    /// One connection for the change feed's polls (`changes`).
    pub feed_pool: AnyPool,
    pub dialect: Dialect,
    pub statements: Statements,
    pub next_cas: AtomicU64,
    /// How many writes each committed transaction carried, for `/metrics`.
    pub batch_sizes: BatchSizes,
    /// Change-log entries this process wrote, for `/metrics`.
    pub changes_logged: AtomicU64,
    /// The keys values are sealed with at rest (`encryption_key_file`).
    pub keyring: Option<Keyring>,
}

/// Upper bounds of the batch-size histogram's buckets (+Inf implied).
pub const BATCH_BOUNDS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// A histogram of batch sizes; only the writer task adds to it.
#[derive(Default)]
pub struct BatchSizes {
    buckets: [AtomicU64; BATCH_BOUNDS.len() + 1],
    sum: AtomicU64,
}

impl BatchSizes {
    pub(super) fn record(&self, size: usize) {
        let size = size as u64;
        let bucket = BATCH_BOUNDS.partition_point(|&bound| bound < size);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(size, Ordering::Relaxed);
    }

    /// (sum, counts per bucket, +Inf last).
    pub fn snapshot(&self) -> (u64, Vec<u64>) {
        let counts = self
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        (self.sum.load(Ordering::Relaxed), counts)
    }
}

impl Table {
    pub fn unavailable(&self, error: impl std::fmt::Display) -> BackendError {
        BackendError::Unavailable {
            backend: self.dialect.name().to_string(),
            message: error.to_string(),
        }
    }

    /// Creates the table, its indexes and the change log where missing.
    /// Several Keyways starting at once may race on PostgreSQL's catalog
    /// ("duplicate key value" on a type): a second try finds the table.
    pub async fn create_schema(&self) -> Result<(), BackendError> {
        let mut tries = 0;
        loop {
            match self.try_create_schema().await {
                // Only the database's own refusals: an unreachable one
                // must fail within the request's time.
                Err(sqlx::Error::Database(_)) if tries < 3 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * tries)).await;
                }
                result => {
                    return result.map_err(|e| self.unavailable(format!("creating the table: {e}")))
                }
            }
        }
    }

    async fn try_create_schema(&self) -> Result<(), sqlx::Error> {
        use sqlx::Executor;
        for sql in &self.statements.create {
            self.pool.execute(sql.as_str()).await?;
        }
        // A table made before the owner index gets it; on one that has it,
        // these fail with "already there" (SQLite and MySQL cannot say
        // IF NOT EXISTS), which is what they should find.
        for sql in &self.statements.owners.upgrade {
            if let Err(error) = self.pool.execute(sql.as_str()).await {
                tracing::debug!(%error, sql, "owner index already there");
            }
        }
        Ok(())
    }

    pub(super) fn new_cas(&self) -> i64 {
        self.next_cas.fetch_add(1, Ordering::Relaxed) as i64
    }
}
