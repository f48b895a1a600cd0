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

use bytes::Bytes;

use super::{copy_of, fill, misses, Member};
use crate::backend::{Backend, Result};
use crate::op::{
    now_ms, Arith, ArithOutcome, Db, ExpireCondition, Expiry, ExpiryUpdate, Item, ScanPage, Store,
    StoreMode, StoreOutcome, StoreStatus, Ttl,
};

pub struct WriteThrough {
    cache: Member,
    durable: Member,
}

impl WriteThrough {
    pub fn new(cache: Member, durable: Member) -> Self {
        Self { cache, durable }
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

    /// Copies durable items into the cache where it has none, with their
    /// remaining TTL. Best effort: the client already has its answer.
    async fn refill(&self, db: Db, keys: &[Bytes], items: &[Option<Item>]) {
        let now = now_ms();
        for (key, item) in keys.iter().zip(items) {
            let Some(item) = item else { continue };
            if item.expiry.is_expired_at(now) {
                continue;
            }
            if let Err(error) = self.cache.store(db, copy_of(key, item)).await {
                tracing::debug!(%error, "write-through: cache refill failed");
                return;
            }
        }
    }

    /// A `cas` checks the id the client saw. After a cache hit that is the
    /// cache's id: if it is current there and the cache's copy matches the
    /// durable item, the write goes ahead against the durable item's own id.
    async fn durable_cas(&self, db: Db, key: &Bytes, seen: u64) -> Result<u64> {
        let keys = std::slice::from_ref(key);
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
        let found = self.durable.get(db, &missing_keys).await?;
        self.refill(db, &missing_keys, &found).await;
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
        let items = self.durable.get_and_touch(db, keys, expiry).await?;
        self.invalidate(db, keys).await;
        self.refill(db, keys, &items).await;
        Ok(items)
    }

    async fn get_and_delete(&self, db: Db, key: &Bytes) -> Result<Option<Item>> {
        self.invalidate(db, std::slice::from_ref(key)).await;
        self.durable.get_and_delete(db, key).await
    }

    async fn store(&self, db: Db, mut store: Store) -> Result<StoreOutcome> {
        if let StoreMode::Cas(seen) = store.mode {
            store.mode = StoreMode::Cas(self.durable_cas(db, &store.key, seen).await?);
        }
        let plain_set = store.mode == StoreMode::Set
            && matches!(store.expiry, ExpiryUpdate::Set(_))
            && !store.return_old;
        let copy = plain_set.then(|| store.clone());
        let key = store.key.clone();
        let outcome = self.durable.store(db, store).await?;
        if outcome.status != StoreStatus::Stored {
            return Ok(outcome);
        }
        match copy {
            Some(copy) => {
                if let Err(error) = self.cache.store(db, copy).await {
                    tracing::debug!(%error, "write-through: cache write failed; dropping its copy");
                    self.invalidate(db, std::slice::from_ref(&key)).await;
                }
            }
            None => self.invalidate(db, std::slice::from_ref(&key)).await,
        }
        Ok(outcome)
    }

    async fn store_all_if_absent(&self, db: Db, pairs: Vec<(Bytes, Bytes)>) -> Result<bool> {
        let keys: Vec<Bytes> = pairs.iter().map(|(key, _)| key.clone()).collect();
        let stored = self.durable.store_all_if_absent(db, pairs).await?;
        if stored {
            self.invalidate(db, &keys).await;
        }
        Ok(stored)
    }

    async fn delete(&self, db: Db, keys: &[Bytes]) -> Result<Vec<bool>> {
        // The cache's copy first: were it dropped after, a failure in between
        // would leave a deleted session readable from the cache.
        self.invalidate(db, keys).await;
        self.durable.delete(db, keys).await
    }

    async fn arith(&self, db: Db, key: &Bytes, arith: Arith) -> Result<ArithOutcome> {
        let outcome = self.durable.arith(db, key, arith).await?;
        self.invalidate(db, std::slice::from_ref(key)).await;
        Ok(outcome)
    }

    async fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Result<bool> {
        let changed = self.durable.expire(db, key, expiry, condition).await?;
        if changed {
            self.invalidate(db, std::slice::from_ref(key)).await;
        }
        Ok(changed)
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
        self.durable.flush(db).await
    }
}
