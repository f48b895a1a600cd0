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

use futures_util::FutureExt;

use super::Router;
use crate::backend::memcached::MemcachedBackend;
use crate::backend::memory::MemoryBackend;
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
    ///
    /// Not an `async fn`: one would hold `call` twice (as its argument and
    /// as what it awaits), doubling the future of every forwarded request
    /// (3 KB more per RESP turn); `map` holds it once.
    pub fn call<T, F, I>(&self, families: I, call: F) -> impl Future<Output = Result<T>> + 'r
    where
        F: Future<Output = Result<T>> + 'r,
        I: IntoIterator<Item = Family> + 'r,
    {
        let stats = self.stats;
        let started = Instant::now();
        call.map(move |result| {
            stats.observe_health(&result);
            for family in families {
                stats.record(family, started, result.is_err());
            }
            result
        })
    }

    /// Hits and misses of a forwarded read, when the frontend can tell.
    pub fn record_reads(&self, hits: u64, misses: u64) {
        self.stats.record_reads(hits, misses);
    }
}

/// What a request forwarded as it came does to its keys. Only writes of a
/// Django session key need the ended-session check (`django_sessions::ended`),
/// which forwarding would skip: reads of session keys go as they came.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Reads only (redis's `readonly` commands, memcached `get`/`gets`).
    Read,
    /// May write, delete or create a key.
    Write,
}

/// A redis backend some route may send RESP commands to as they came: its
/// entry in the router (not a Redis Cluster's hash slot, which is the
/// keys').
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RedisRoute(pub(super) usize);

/// Which backend a request may go to as it came.
impl Router {
    /// The redis backend that every one of `keys` routes to, if there is
    /// one: RESP commands on those keys can be forwarded as they came. No
    /// keys, no target.
    pub fn redis_target<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]>,
        access: Access,
    ) -> Option<RedisRoute> {
        if self.redis.is_empty() {
            return None;
        }
        let entry = self.forwarding_entry(keys, access)?;
        self.redis.iter().copied().find(|redis| redis.0 == entry)
    }

    /// The one target entry all `keys` route to, by routes without TTL limits
    /// (which only operations can enforce): requests on them may go to a
    /// backend as they came.
    fn forwarding_entry<'k>(
        &self,
        mut keys: impl Iterator<Item = &'k [u8]>,
        access: Access,
    ) -> Option<usize> {
        let first = keys.next()?;
        let (entry, limits) = self.table.route_with_limits(first)?;
        if !limits.is_none() || self.may_keep_ended(first, access) {
            return None;
        }
        keys.all(|key| {
            !self.may_keep_ended(key, access)
                && self.table.route_with_limits(key) == Some((entry, limits))
        })
        .then_some(entry)
    }

    /// Whether a write of `key` may need the ended-session check (the cheap
    /// test: such writes are not forwarded as they came, so that their
    /// deletes leave a marker and their writes check it).
    fn may_keep_ended(&self, key: &[u8], access: Access) -> bool {
        access == Access::Write
            && self.sessions.keep_ended
            && keyway_protocol::django::may_be_session_key(key)
    }

    /// The memcached backend every one of `keys` routes to, if there is one:
    /// memcached clients' requests on those keys can be forwarded as they came.
    pub fn memcached_passage<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]>,
        access: Access,
    ) -> Option<Passage<'_, MemcachedBackend>> {
        let target = &self.entries[self.forwarding_entry(keys, access)?].target;
        match target.backend() {
            Some(AnyBackend::Memcached(memcached)) => Some(Passage::new(memcached, &target.stats)),
            _ => None,
        }
    }

    /// The memory backend every one of `keys` routes to directly (no
    /// policy, no TTL limits), if there is one: redis's collections live
    /// there, and the commands on them run in it whole.
    pub fn memory_passage<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]>,
    ) -> Option<Passage<'_, MemoryBackend>> {
        // Collections never hold a Django session: checked as writes.
        let target = &self.entries[self.forwarding_entry(keys, Access::Write)?].target;
        match target.backend() {
            Some(AnyBackend::Memory(memory)) => Some(Passage::new(memory, &target.stats)),
            _ => None,
        }
    }

    /// The memory backend every route of this router goes to, if one does
    /// (directly, with no TTL limits): a command naming keys by pattern
    /// (SORT ... BY) can run there whole.
    pub fn memory_for_every_key(&self) -> Option<Passage<'_, MemoryBackend>> {
        let [entry] = self.routed[..] else {
            return None;
        };
        let target = &self.entries[entry].target;
        match target.backend() {
            Some(AnyBackend::Memory(memory)) if self.table.has_no_limits() => {
                Some(Passage::new(memory, &target.stats))
            }
            _ => None,
        }
    }

    /// The redis backend `route` names, to forward RESP commands to as they
    /// came.
    pub fn redis_passage(&self, route: RedisRoute) -> Option<Passage<'_, RedisBackend>> {
        let target = &self.entries.get(route.0)?.target;
        match target.backend() {
            Some(AnyBackend::Redis(redis)) => Some(Passage::new(&**redis, &target.stats)),
            _ => None,
        }
    }

    /// Whether `route` is a Redis Cluster: commands forwarded there carry
    /// their keys' hash slot.
    pub fn is_redis_cluster(&self, route: RedisRoute) -> bool {
        matches!(
            self.entries[route.0].target.backend(),
            Some(AnyBackend::Redis(redis)) if redis.is_cluster()
        )
    }

    /// The redis backend every route of this router goes to, when there is
    /// one and it is not a Redis Cluster: commands that name no key (or
    /// name keys by pattern) can then be forwarded there.
    pub fn redis_for_every_key(&self) -> Option<RedisRoute> {
        self.sole_redis
    }

    /// Every redis backend.
    /// The one redis server (not a cluster) this router's routes reach,
    /// directly or as a member of a tier: pub/sub channels live there, and
    /// MONITOR watches it.
    pub fn redis_for_channels(&self) -> Option<RedisRoute> {
        self.redis_for_channels
    }

    /// Whether any route reaches a redis server, directly or in a tier.
    pub fn reaches_redis(&self) -> bool {
        self.reaches_redis
    }

    pub fn redis_routes(&self) -> &[RedisRoute] {
        &self.redis
    }
}
