//! `write-through`: Django's `cached_db` at the proxy.
//!
//! The durable member holds the truth; the cache member holds copies.
//! Writes go to the durable member first and the client is answered once it
//! has committed; then the cache gets the new item (a plain set) or loses
//! its copy (every other write: add, cas, append, incr, TTL changes), so the
//! next read refills it from the truth. Reads come from the cache; a miss
//! falls back to the durable member and refills the cache with the item's
//! remaining TTL. Deletes remove the cache's copy first, then the durable
//! item. When the cache fails, reads and writes go on with the durable
//! member alone.
//!
//! Other Keyways may write the same durable store: [`Coherence`] drops the
//! keys they change from this cache, and sends reads to the durable member
//! while it cannot vouch for the cache (docs/deployments.md "One host or several").

use std::sync::Arc;

use bytes::Bytes;

use super::coherence::Coherence;
use super::{copy_of, fill, misses, Member};
use crate::backend::{Backend, Ops, Result};
use crate::op::{
    now_ms, Arith, ArithOutcome, Db, ExpireCondition, Expiry, Item, ScanPage, Store, StoreMode,
    StoreOutcome, StoreStatus, Ttl,
};

pub struct WriteThrough {
    cache: Member,
    durable: Member,
    coherence: Arc<Coherence>,
}

impl WriteThrough {
    pub fn new(cache: Member, durable: Member, coherence: Arc<Coherence>) -> Self {
        Self {
            cache,
            durable,
            coherence,
        }
    }

    pub fn coherence(&self) -> &Coherence {
        &self.coherence
    }

    /// Whether a session write's ended check can ride on the write: the
    /// durable member holds every marker, so it is the one to check.
    pub fn stores_unless_ended(&self) -> bool {
        self.durable.0.stores_unless_ended()
    }

    /// Drops the cache's copies of `keys`. A failure is logged, not
    /// returned: the durable write it follows has happened. (Per request at
    /// debug level; the cache going down is logged once, as a backend state
    /// change, and counted in keyway_request_errors_total.)
    async fn invalidate(&self, db: Db, keys: &[Bytes]) {
        if let Err(error) = self.cache.delete(db, keys).await {
            tracing::debug!(%error, "write-through: cache copy not dropped; it may serve a stale value until it expires");
        }
    }

    /// After a durable write of `keys` (whatever its outcome, even an error:
    /// it may have committed): marks them changed and drops their copies.
    async fn changed(&self, db: Db, keys: &[Bytes]) {
        for key in keys {
            self.coherence.bump(db, key);
        }
        self.invalidate(db, keys).await;
    }

    /// Runs a durable write of `keys` as this cache's writer, then drops
    /// their copies.
    async fn write_then_drop<T>(
        &self,
        db: Db,
        keys: &[Bytes],
        write: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let result = self.coherence.as_writer(write).await;
        self.changed(db, keys).await;
        result
    }

    /// Puts `store` (a copy of what the durable member now holds) into the
    /// cache, unless the key changed since generation `stamp` was taken, and
    /// drops it again if it changed while being put. Best effort; false when
    /// the cache failed.
    async fn put_copy(&self, db: Db, store: Store, stamp: u64) -> bool {
        let key = store.key.clone();
        if self.coherence.generation(db, &key) != stamp {
            return true;
        }
        if let Err(error) = self.cache.store(db, store).await {
            tracing::debug!(%error, "write-through: cache write failed; dropping its copy");
            self.invalidate(db, std::slice::from_ref(&key)).await;
            return false;
        }
        if self.coherence.generation(db, &key) != stamp {
            self.invalidate(db, std::slice::from_ref(&key)).await;
        }
        true
    }

    /// Copies durable items into the cache where it has none, with their
    /// remaining TTL; `stamps` are the keys' generations from before the
    /// durable member was read. Best effort: the client already has its answer.
    async fn refill(&self, db: Db, keys: &[Bytes], items: &[Option<Item>], stamps: &[u64]) {
        let now = now_ms();
        for ((key, item), &stamp) in keys.iter().zip(items).zip(stamps) {
            let Some(item) = item else { continue };
            if item.expiry.is_expired_at(now) {
                continue;
            }
            if !self.put_copy(db, copy_of(key, item), stamp).await {
                return; // the cache failed; do not try the others
            }
        }
    }

    fn stamps(&self, db: Db, keys: &[Bytes]) -> Vec<u64> {
        keys.iter()
            .map(|key| self.coherence.generation(db, key))
            .collect()
    }

    /// A `cas` checks the id the client saw. After a cache hit that is the
    /// cache's id: if it is current there and the cache's copy matches the
    /// durable item, the write goes ahead against the durable item's own id.
    async fn durable_cas(&self, db: Db, key: &Bytes, seen: u64) -> Result<u64> {
        let keys = std::slice::from_ref(key);
        if !self.coherence.trusted() {
            return Ok(seen);
        }
        let Ok(cached) = self.cache.get(db, keys).await else {
            return Ok(seen);
        };
        let Some(Some(cached)) = cached.into_iter().next() else {
            return Ok(seen);
        };
        if cached.cas != seen {
            return Ok(seen);
        }
        match self.durable.get(db, keys).await?.into_iter().next() {
            Some(Some(durable)) if durable.value == cached.value => Ok(durable.cas),
            _ => Ok(seen),
        }
    }
}

impl Backend for WriteThrough {
    async fn get(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        if !self.coherence.trusted() {
            // Other Keyways' writes may not have reached the cache yet.
            self.coherence.fell_back();
            return self.durable.get(db, keys).await;
        }
        let mut items = match self.cache.get(db, keys).await {
            Ok(items) => items,
            Err(error) => {
                tracing::debug!(%error, "write-through: cache unavailable, reading the durable member");
                return self.durable.get(db, keys).await;
            }
        };
        let (missing, missing_keys) = misses(keys, &items);
        if missing.is_empty() {
            return Ok(items);
        }
        let stamps = self.stamps(db, &missing_keys);
        let found = self.durable.get(db, &missing_keys).await?;
        self.refill(db, &missing_keys, &found, &stamps).await;
        fill(&mut items, missing, found);
        Ok(items)
    }

    async fn get_and_touch(
        &self,
        db: Db,
        keys: &[Bytes],
        expiry: Expiry,
    ) -> Result<Vec<Option<Item>>> {
        // A TTL change is a write: the durable member first.
        let items = self
            .write_then_drop(db, keys, self.durable.get_and_touch(db, keys, expiry))
            .await?;
        let stamps = self.stamps(db, keys);
        self.refill(db, keys, &items, &stamps).await;
        Ok(items)
    }

    async fn get_and_delete(&self, db: Db, key: &Bytes) -> Result<Option<Item>> {
        let keys = std::slice::from_ref(key);
        self.invalidate(db, keys).await;
        self.write_then_drop(db, keys, self.durable.get_and_delete(db, key))
            .await
    }

    async fn store(&self, db: Db, mut store: Store) -> Result<StoreOutcome> {
        if let StoreMode::Cas(seen) = store.mode {
            store.mode = StoreMode::Cas(self.durable_cas(db, &store.key, seen).await?);
        }
        let plain_set = store.is_plain_set();
        // The ended-session condition is the durable member's to check.
        let copy = plain_set.then(|| Store {
            unless_ended: None,
            ..store.clone()
        });
        let key = store.key.clone();
        let before = self.coherence.generation(db, &key);
        let result = self
            .coherence
            .as_writer(self.durable.store(db, store))
            .await;
        if matches!(&result, Ok(outcome) if outcome.status != StoreStatus::Stored) {
            return result;
        }
        match (copy, self.coherence.settle(db, &key, before), &result) {
            (Some(copy), Some(stamp), Ok(_)) => {
                self.put_copy(db, copy, stamp).await;
            }
            _ => self.invalidate(db, std::slice::from_ref(&key)).await,
        }
        result
    }

    async fn store_all_if_absent(&self, db: Db, pairs: Vec<(Bytes, Bytes)>) -> Result<bool> {
        let keys: Vec<Bytes> = pairs.iter().map(|(key, _)| key.clone()).collect();
        self.write_then_drop(db, &keys, self.durable.store_all_if_absent(db, pairs))
            .await
    }

    async fn delete(&self, db: Db, keys: &[Bytes]) -> Result<Vec<bool>> {
        // The cache's copy first: were it dropped after, a failure in between
        // would leave a deleted session readable from the cache.
        self.invalidate(db, keys).await;
        self.write_then_drop(db, keys, self.durable.delete(db, keys))
            .await
    }

    async fn arith(&self, db: Db, key: &Bytes, arith: Arith) -> Result<ArithOutcome> {
        let keys = std::slice::from_ref(key);
        self.write_then_drop(db, keys, self.durable.arith(db, key, arith))
            .await
    }

    async fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Result<bool> {
        let keys = std::slice::from_ref(key);
        self.write_then_drop(db, keys, self.durable.expire(db, key, expiry, condition))
            .await
    }

    async fn ttl(&self, db: Db, key: &Bytes) -> Result<Ttl> {
        self.durable.ttl(db, key).await
    }

    async fn scan(
        &self,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<ScanPage> {
        // Every live key is in the durable member.
        self.durable.scan(db, cursor, pattern, count).await
    }

    async fn len(&self, db: Db) -> Result<usize> {
        self.durable.len(db).await
    }

    async fn flush(&self, db: Option<Db>) -> Result<()> {
        self.cache.flush(db).await?;
        let result = self.coherence.as_writer(self.durable.flush(db)).await;
        // A refill that read before the flush committed may have landed.
        self.coherence.bump_all();
        self.cache.flush(db).await?;
        result
    }
}
