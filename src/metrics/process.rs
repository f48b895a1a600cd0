//! Process-wide counters behind memcached `stats` and redis `INFO`, sharded
//! per thread ([`Counter`]).

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use super::sharded::Counter;

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
    /// Authentication attempts: AUTH, HELLO AUTH, memcached's ASCII `set`.
    pub auth_attempts: Counter,
    /// Those with a wrong user or password.
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
            auth_attempts: Counter::default(),
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

    /// memcached's `stats reset`: the running totals start again from zero
    /// (open connections, uptime and reload figures are kept).
    pub fn reset(&self) {
        for counter in [
            &self.total_connections,
            &self.rejected_connections,
            &self.commands,
            &self.get_hits,
            &self.get_misses,
            &self.sets,
            &self.bytes_read,
            &self.bytes_written,
            &self.auth_attempts,
            &self.auth_failures,
        ] {
            counter.reset();
        }
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}
