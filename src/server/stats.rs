//! Process-wide counters behind memcached `stats` and redis `INFO`.
//!
//! Hot counters are sharded per worker thread (each on its own cache line) so
//! that counting a request never bounces a cache line between cores; reading
//! sums the shards.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

const SHARDS: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Slot(AtomicU64);

/// A counter that many threads add to and few read.
#[derive(Default)]
pub struct Counter {
    slots: [Slot; SHARDS],
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// A small per-thread number, for picking a shard.
pub fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SLOT.with(|slot| *slot)
}

impl Counter {
    pub fn add(&self, n: u64) {
        self.slots[thread_slot()].0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(&self, n: u64) {
        self.slots[thread_slot()].0.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.slots.iter().fold(0u64, |sum, slot| {
            sum.wrapping_add(slot.0.load(Ordering::Relaxed))
        })
    }
}

#[derive(Debug)]
pub struct Stats {
    pub started: Instant,
    pub current_connections: Counter,
    pub total_connections: Counter,
    pub rejected_connections: Counter,
    pub commands: Counter,
    pub get_hits: Counter,
    pub get_misses: Counter,
    pub sets: Counter,
    pub bytes_read: Counter,
    pub bytes_written: Counter,
    pub reloads_succeeded: Counter,
    /// AUTH / HELLO AUTH attempts with a wrong user or password.
    pub auth_failures: Counter,
    pub reloads_failed: Counter,
    /// Unix seconds of the last successful reload (0: none yet).
    pub last_reload_success: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            current_connections: Counter::default(),
            total_connections: Counter::default(),
            rejected_connections: Counter::default(),
            commands: Counter::default(),
            get_hits: Counter::default(),
            get_misses: Counter::default(),
            sets: Counter::default(),
            bytes_read: Counter::default(),
            bytes_written: Counter::default(),
            reloads_succeeded: Counter::default(),
            auth_failures: Counter::default(),
            reloads_failed: Counter::default(),
            last_reload_success: AtomicU64::new(0),
        }
    }
}

impl Stats {
    /// Counts hits and misses of a multi-key read.
    pub fn record_reads<T>(&self, results: &[Option<T>]) {
        let hits = results.iter().filter(|r| r.is_some()).count() as u64;
        if hits > 0 {
            self.get_hits.add(hits);
        }
        if hits < results.len() as u64 {
            self.get_misses.add(results.len() as u64 - hits);
        }
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}
