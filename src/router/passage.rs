//! Forwarding as a layer. A request whose keys a memcached or redis route
//! owns can go to that pool as it came, its reply back as the server sent
//! it. The router decides when (the keys all route there, with no TTL
//! limits and no ended-session checks to apply) and hands out a
//! [`Passage`]: the backend to send the bytes to, and the figures every
//! call through it is counted in. Frontends frame and write the bytes; the
//! passage times each call and records its families and the backend's
//! health, once, here.

use std::future::Future;
use std::time::Instant;

use crate::backend::Result;
use crate::metrics::{Family, TargetStats};

/// A backend requests go to as they came, with its target's figures.
pub struct Passage<'r, B> {
    backend: &'r B,
    stats: &'r TargetStats,
}

impl<'r, B> Passage<'r, B> {
    pub(super) fn new(backend: &'r B, stats: &'r TargetStats) -> Self {
        Self { backend, stats }
    }

    pub fn backend(&self) -> &'r B {
        self.backend
    }

    /// Runs `call` (a send through [`Passage::backend`]), counting one
    /// request per family in `families` (one per forwarded command), its
    /// time and whether it failed, and the backend's health by its outcome.
    pub async fn call<T>(
        &self,
        families: impl IntoIterator<Item = Family>,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        self.stats.observe_health(&result);
        for family in families {
            self.stats.record(family, started, result.is_err());
        }
        result
    }

    /// Hits and misses of a forwarded read, when the frontend can tell.
    pub fn record_reads(&self, hits: u64, misses: u64) {
        self.stats.record_reads(hits, misses);
    }
}
