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

use super::Router;
use crate::backend::memcached::MemcachedBackend;
use crate::backend::redis::RedisBackend;
use crate::backend::{AnyBackend, Result};
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

/// Which backend a request may go to as it came.
impl Router {
    /// The redis backend (its slot) that every one of `keys` routes to, if
    /// there is one: RESP commands on those keys can be forwarded as they came.
    /// No keys, no target.
    pub fn redis_target<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) -> Option<usize> {
        let slot = self.forwarding_slot(keys)?;
        matches!(
            self.slots[slot].target.backend(),
            Some(AnyBackend::Redis(_))
        )
        .then_some(slot)
    }

    /// The one target slot all `keys` route to, by routes without TTL limits
    /// (which only operations can enforce): requests on them may go to a
    /// backend as they came.
    fn forwarding_slot<'k>(&self, mut keys: impl Iterator<Item = &'k [u8]>) -> Option<usize> {
        let first = keys.next()?;
        let (slot, limits) = self.table.route_with_limits(first)?;
        if !limits.is_none() || self.may_keep_ended(first) {
            return None;
        }
        keys.all(|key| {
            !self.may_keep_ended(key) && self.table.route_with_limits(key) == Some((slot, limits))
        })
        .then_some(slot)
    }

    /// Whether `key` may be a session key kept ended (the cheap test: such
    /// keys are not forwarded as they came, so that their deletes leave a
    /// marker and their writes check it).
    fn may_keep_ended(&self, key: &[u8]) -> bool {
        self.sessions.keep_ended && keyway_protocol::django::may_be_session_key(key)
    }

    /// The memcached backend every one of `keys` routes to, if there is one:
    /// memcached clients' requests on those keys can be forwarded as they came.
    pub fn memcached_passage<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]>,
    ) -> Option<Passage<'_, MemcachedBackend>> {
        let target = &self.slots[self.forwarding_slot(keys)?].target;
        match target.backend() {
            Some(AnyBackend::Memcached(memcached)) => Some(Passage::new(memcached, &target.stats)),
            _ => None,
        }
    }

    /// The redis backend at `slot` (from [`Router::redis_target`] or
    /// [`Router::redis_slots`]), to forward RESP commands to as they came.
    pub fn redis_passage(&self, slot: usize) -> Option<Passage<'_, RedisBackend>> {
        let target = &self.slots.get(slot)?.target;
        match target.backend() {
            Some(AnyBackend::Redis(redis)) => Some(Passage::new(&**redis, &target.stats)),
            _ => None,
        }
    }

    /// Whether the redis backend at `slot` is a Redis Cluster: commands
    /// forwarded there carry their keys' hash slot.
    pub fn is_redis_cluster(&self, slot: usize) -> bool {
        matches!(
            self.slots[slot].target.backend(),
            Some(AnyBackend::Redis(redis)) if redis.is_cluster()
        )
    }

    /// Whether any backend is a redis (RESP commands may then be forwarded).
    pub fn has_redis(&self) -> bool {
        self.redis_slots().next().is_some()
    }

    /// Slots of every redis backend.
    pub fn redis_slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|&slot| {
            matches!(
                self.slots[slot].target.backend(),
                Some(AnyBackend::Redis(_))
            )
        })
    }
}
