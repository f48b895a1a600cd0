//! Request figures per target (each backend and each policy a route or a
//! policy names), recorded on the hot path and read by the admin listener's
//! `/metrics` ([`prometheus`]) and by INFO.
//!
//! Every figure is sharded per thread ([`sharded`]): recording a request
//! costs a few uncontended atomic adds and two clock reads; a scrape sums
//! the shards. Process-wide counters (connections, commands, bytes) are in
//! [`process`].

mod process;
pub mod sharded;

pub use process::Stats;
pub use sharded::Counter;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Instant;

use crate::backend::{Answer, BackendError, Result};
pub use crate::op::Family;
use sharded::Sharded;

/// Upper bounds of the latency histogram's buckets, in microseconds (the
/// last bucket, +Inf, is implied).
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000,
];
const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;
const FAMILIES: usize = Family::ALL.len();

#[derive(Default)]
struct FamilyCells {
    requests: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

#[derive(Default)]
struct Shard {
    families: [FamilyCells; FAMILIES],
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Whether a target's last requests succeeded, for `keyway_backend_up` and
/// for logging a backend's state once per change instead of per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown = 0,
    Up = 1,
    Down = 2,
}

/// One target's figures.
pub struct TargetStats {
    name: String,
    shards: Sharded<Shard>,
    health: AtomicU8,
}

/// Summed figures of one family, read at scrape time.
#[derive(Debug, Default, Clone)]
pub struct FamilySnapshot {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Counts per bucket of [`LATENCY_BOUNDS_US`], then +Inf (not cumulative:
    /// the encoder sums them).
    pub buckets: [u64; BUCKETS],
}

impl TargetStats {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            shards: Sharded::default(),
            health: AtomicU8::new(Health::Unknown as u8),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn shard(&self) -> &Shard {
        self.shards.local()
    }

    /// Counts one request of `family` that started at `started`.
    pub fn record(&self, family: Family, started: Instant, failed: bool) {
        let micros = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
        let cells = &self.shard().families[family as usize];
        cells.requests.fetch_add(1, Relaxed);
        if failed {
            cells.errors.fetch_add(1, Relaxed);
        }
        cells.micros.fetch_add(micros, Relaxed);
        let bucket = LATENCY_BOUNDS_US.partition_point(|&bound| bound < micros);
        cells.buckets[bucket].fetch_add(1, Relaxed);
    }

    /// Counts a call's result: request, error, hits and misses, and the
    /// health change it shows (logged once per change, for backends).
    pub fn record_result(&self, family: Family, started: Instant, result: &Result<Answer>) {
        let failed = match result {
            Ok(value) => {
                let (hits, misses) = value.hits_and_misses();
                self.record_reads(hits, misses);
                false
            }
            Err(error) => !error.is_client_error(),
        };
        self.record(family, started, failed);
    }

    pub fn record_reads(&self, hits: u64, misses: u64) {
        let shard = self.shard();
        if hits > 0 {
            shard.hits.fetch_add(hits, Relaxed);
        }
        if misses > 0 {
            shard.misses.fetch_add(misses, Relaxed);
        }
    }

    /// Notes that a backend answered (`Ok`) or failed; logs a line when this
    /// changes its state, never one per request.
    pub fn observe_health<T>(&self, result: &Result<T>) {
        let now = match result {
            Ok(_) => Health::Up,
            Err(BackendError::Unavailable { .. }) => Health::Down,
            Err(_) => Health::Up,
        };
        // Read first: a swap per request would make every worker write
        // this shared line though the state almost never changes.
        if self.health.load(Relaxed) == now as u8 {
            return;
        }
        let before = self.health.swap(now as u8, Relaxed);
        if before == now as u8 {
            return;
        }
        match (now, result) {
            (Health::Down, Err(error)) => {
                tracing::warn!(backend = %self.name, %error, "backend down: requests to it fail")
            }
            (Health::Up, _) if before == Health::Down as u8 => {
                tracing::info!(backend = %self.name, "backend up: answering again")
            }
            _ => {}
        }
    }

    pub fn health(&self) -> Health {
        match self.health.load(Relaxed) {
            1 => Health::Up,
            2 => Health::Down,
            _ => Health::Unknown,
        }
    }

    pub fn family(&self, family: Family) -> FamilySnapshot {
        let mut snapshot = FamilySnapshot::default();
        let mut micros = 0u64;
        for shard in self.shards.iter() {
            let cells = &shard.families[family as usize];
            snapshot.requests += cells.requests.load(Relaxed);
            snapshot.errors += cells.errors.load(Relaxed);
            micros += cells.micros.load(Relaxed);
            for (total, bucket) in snapshot.buckets.iter_mut().zip(&cells.buckets) {
                *total += bucket.load(Relaxed);
            }
        }
        snapshot.seconds = micros as f64 / 1e6;
        snapshot
    }

    /// Keys found and keys missed by reads through this target.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(hits, misses), shard| {
            (
                hits + shard.hits.load(Relaxed),
                misses + shard.misses.load(Relaxed),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let stats = TargetStats::new("t");
        stats.record(Family::Get, Instant::now(), false);
        stats.record(Family::Get, Instant::now(), true);
        let get = stats.family(Family::Get);
        assert_eq!((get.requests, get.errors), (2, 1));
        assert_eq!(get.buckets[0], 2, "two sub-100 µs requests");
        assert_eq!(get.buckets.iter().sum::<u64>(), 2);
        assert_eq!(stats.family(Family::Set).requests, 0);
    }

    #[test]
    fn reads_count_hits_and_misses() {
        let stats = TargetStats::new("t");
        let result: Result<Answer> = Ok(Answer::Items(vec![None, None]));
        stats.record_result(Family::Get, Instant::now(), &result);
        assert_eq!(stats.hits_and_misses(), (0, 2));
    }
}
