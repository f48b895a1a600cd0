//! `memory://`: an in-process store bounded by bytes.
//!
//! Items live in quick_cache's S3-FIFO-style cache, sharded by key hash, each
//! shard behind its own mutex so that read-modify-write operations (add, cas,
//! incr, append) are atomic without a global lock. Expired items are invisible
//! at once, removed when touched, and swept in the background. Besides
//! strings a key may hold one of redis's collections ([`types`]): hashes,
//! lists, sets and sorted sets, weighed and evicted like strings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use quick_cache::unsync::Cache;
use quick_cache::Weighter;

use super::{numeric, Backend, BackendError, Result};
use crate::op::{
    plan_store, Arith, ArithOutcome, Clock, Db, ExpireCondition, Expiry, Item, ScanPage, Store,
    StoreMode, StoreOutcome, StorePlan, StoreStatus, Ttl,
};
use crate::pattern::glob_match;

mod shard;
pub mod types;

use shard::{CountEvictions, ItemWeight, KeyRef, Shard, Stored, MAX_SHARDS, MIN_SHARD_BYTES};

/// What INFO and `stats` report for a memory backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub items: u64,
    pub bytes: u64,
    pub capacity: u64,
    pub evictions: u64,
}

pub struct MemoryBackend {
    shards: Vec<Mutex<Shard>>,
    /// Picks the shard; fixed seeds so SCAN cursors stay valid across calls.
    hasher: ahash::RandomState,
    next_cas: AtomicU64,
    evictions: Arc<AtomicU64>,
    capacity: u64,
    /// Largest weight one shard accepts; bigger items are refused, not silently dropped.
    max_item_weight: u64,
    /// What "now" is for expiry (the system clock, but in tests).
    clock: Clock,
}

impl MemoryBackend {
    pub fn new(capacity: u64) -> Self {
        Self::with_clock(capacity, Clock::system())
    }

    /// A store that reads expiry by `clock` (tests: [`Clock::adjustable`]).
    pub fn with_clock(capacity: u64, clock: Clock) -> Self {
        let shard_count = (capacity / MIN_SHARD_BYTES).clamp(1, MAX_SHARDS as u64) as usize;
        // Round down to a power of two (shard selection masks the hash), so
        // that no shard falls below MIN_SHARD_BYTES.
        let shard_count = 1 << shard_count.ilog2();
        let per_shard = (capacity / shard_count as u64).max(1);
        let evictions = Arc::new(AtomicU64::new(0));
        let shards = (0..shard_count)
            .map(|_| {
                Mutex::new(Cache::with(
                    (per_shard / 512).max(16) as usize,
                    per_shard,
                    ItemWeight,
                    ahash::RandomState::new(),
                    CountEvictions(evictions.clone()),
                ))
            })
            .collect();
        Self {
            shards,
            hasher: ahash::RandomState::with_seeds(0x6b65, 0x7977, 0x6179, 0x2121),
            next_cas: AtomicU64::new(1),
            evictions,
            capacity,
            // quick_cache refuses items above its hot-segment target (most of
            // the shard); half a shard stays safely below it.
            max_item_weight: per_shard / 2,
            clock,
        }
    }

    pub fn usage(&self) -> Usage {
        let mut usage = Usage {
            capacity: self.capacity,
            evictions: self.evictions.load(Ordering::Relaxed),
            ..Usage::default()
        };
        for shard in &self.shards {
            let shard = shard.lock();
            usage.items += shard.len() as u64;
            usage.bytes += shard.weight();
        }
        usage
    }

    /// Drops expired items; called periodically so that they do not wait for eviction.
    pub fn sweep_expired(&self) {
        let now = self.clock.now_ms();
        for shard in &self.shards {
            shard
                .lock()
                .retain(|_, stored| !stored.item.expiry.is_expired_at(now));
        }
    }

    fn key_hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard_index(&self, key: &[u8]) -> usize {
        (self.key_hash(key) as usize) & (self.shards.len() - 1)
    }

    fn with_shard<T>(&self, key: &[u8], f: impl FnOnce(&mut Shard) -> T) -> T {
        f(&mut self.shards[self.shard_index(key)].lock())
    }

    /// What `key` holds, removing it if it has expired.
    fn live_entry<'s>(&self, shard: &'s mut Shard, key: &KeyRef<'_>) -> Option<&'s Stored> {
        let expired = self.clock.has_passed(shard.get(key)?.item.expiry);
        if expired {
            shard.remove(key);
            return None;
        }
        shard.get(key)
    }

    /// The live string under `key`; a collection there is redis's WRONGTYPE.
    fn live(&self, shard: &mut Shard, key: &KeyRef<'_>) -> Result<Option<Item>> {
        match self.live_entry(shard, key) {
            None => Ok(None),
            Some(stored) if stored.collection.is_some() => Err(BackendError::WrongType),
            Some(stored) => Ok(Some(stored.item.clone())),
        }
    }

    /// Removes `key`, returning what it held if it was still live (one lookup, no clone).
    fn removed_live(&self, shard: &mut Shard, key: &KeyRef<'_>) -> Option<Stored> {
        let (_, stored) = shard.remove(key)?;
        (!self.clock.has_passed(stored.item.expiry)).then_some(stored)
    }

    fn new_cas(&self) -> u64 {
        self.next_cas.fetch_add(1, Ordering::Relaxed)
    }

    /// Inserts `item` (copying the key into its own allocation), or removes
    /// the key when the item is already expired. Values that come from a
    /// request must be copied by the caller (see [`owned`]).
    fn put(&self, shard: &mut Shard, key: KeyRef<'_>, item: Item) -> Result<()> {
        if self.clock.has_passed(item.expiry) {
            shard.remove(&key);
            return Ok(());
        }
        self.insert(shard, key, Stored::string(item))
    }

    /// Inserts what `key` holds, unless it is larger than a shard accepts
    /// (then what the key held before stays).
    fn insert(&self, shard: &mut Shard, key: KeyRef<'_>, stored: Stored) -> Result<()> {
        let key = key.to_owned();
        if ItemWeight.weight(&key, &stored) > self.max_item_weight {
            return Err(BackendError::OutOfMemory);
        }
        shard.insert(key, stored);
        Ok(())
    }

    fn store_locked(
        &self,
        shard: &mut Shard,
        key: KeyRef<'_>,
        store: Store,
    ) -> Result<StoreOutcome> {
        // A plain SET neither looks at nor returns the current item: skip the
        // lookup and the clone on the hottest write path.
        let plain_set = store.is_plain_set();
        let current = if plain_set {
            None
        } else {
            match self.live_entry(shard, &key) {
                // A collection: a write that reads the old value (SET GET,
                // APPEND) is redis's WRONGTYPE; one that replaces it sees a
                // key that exists (NX refuses, XX replaces).
                Some(stored) if stored.collection.is_some() => {
                    let replaces = matches!(
                        store.mode,
                        StoreMode::Set | StoreMode::Add | StoreMode::Replace | StoreMode::Cas(_)
                    );
                    if store.return_old || !replaces {
                        return Err(BackendError::WrongType);
                    }
                    Some(stored.item.clone())
                }
                entry => entry.map(|stored| stored.item.clone()),
            }
        };
        let (value, flags, expiry) = match plan_store(&store, current.as_ref(), owned) {
            StorePlan::Write {
                value,
                flags,
                expiry,
            } => (value, flags, expiry),
            StorePlan::Refuse(status) => {
                return Ok(StoreOutcome::refused_showing(status, &store, current))
            }
        };
        let len = value.len();
        let item = Item {
            value,
            flags,
            cas: self.new_cas(),
            expiry,
        };
        self.put(shard, key, item)?;
        Ok(StoreOutcome {
            status: StoreStatus::Stored,
            old: if store.return_old { current } else { None },
            len,
        })
    }
}

/// A copy of a request's value in an allocation of its own, so the stored
/// item does not pin the connection's read buffer.
fn owned(value: &Bytes) -> Bytes {
    Bytes::copy_from_slice(value)
}

impl Backend for MemoryBackend {
    async fn get(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        // One key holding a collection is GET's WRONGTYPE; among several,
        // MGET's nil (as redis).
        if let [key] = keys {
            let item = self.with_shard(key, |shard| self.live(shard, &KeyRef { db, key }))?;
            return Ok(vec![item]);
        }
        Ok(keys
            .iter()
            .map(|key| {
                self.with_shard(key, |shard| self.live(shard, &KeyRef { db, key }))
                    .unwrap_or(None)
            })
            .collect())
    }

    async fn get_and_touch(
        &self,
        db: Db,
        keys: &[Bytes],
        expiry: Expiry,
    ) -> Result<Vec<Option<Item>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let item = self.with_shard(key, |shard| -> Result<Option<Item>> {
                let key = KeyRef { db, key };
                let Some(mut item) = self.live(shard, &key)? else {
                    return Ok(None);
                };
                item.expiry = expiry;
                self.put(shard, key, item.clone())?;
                Ok(Some(item))
            })?;
            out.push(item);
        }
        Ok(out)
    }

    async fn get_and_delete(&self, db: Db, key: &Bytes) -> Result<Option<Item>> {
        self.with_shard(key, |shard| {
            let key = KeyRef { db, key };
            let item = self.live(shard, &key)?;
            if item.is_some() {
                shard.remove(&key);
            }
            Ok(item)
        })
    }

    async fn store(&self, db: Db, store: Store) -> Result<StoreOutcome> {
        let key = store.key.clone();
        self.with_shard(&key, |shard| {
            self.store_locked(shard, KeyRef { db, key: &key }, store)
        })
    }

    async fn store_all_if_absent(&self, db: Db, pairs: Vec<(Bytes, Bytes)>) -> Result<bool> {
        // Lock every shard involved, in index order, so the check and the
        // writes are one atomic step with no deadlock between two MSETNXs.
        let mut indexes: Vec<usize> = pairs.iter().map(|(k, _)| self.shard_index(k)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let mut guards: Vec<_> = indexes
            .iter()
            .map(|&i| (i, self.shards[i].lock()))
            .collect();
        let shard_of = |key: &[u8]| {
            let index = self.shard_index(key);
            let slot = guards
                .iter()
                .position(|(i, _)| *i == index)
                .expect("locked above");
            slot
        };
        let slots: Vec<usize> = pairs.iter().map(|(k, _)| shard_of(k)).collect();
        for ((key, _), &slot) in pairs.iter().zip(&slots) {
            if self
                .live_entry(&mut guards[slot].1, &KeyRef { db, key })
                .is_some()
            {
                return Ok(false);
            }
        }
        for ((key, value), slot) in pairs.into_iter().zip(slots) {
            let item = Item {
                value: owned(&value),
                flags: 0,
                cas: self.new_cas(),
                expiry: Expiry::Never,
            };
            self.put(&mut guards[slot].1, KeyRef { db, key: &key }, item)?;
        }
        Ok(true)
    }

    async fn delete(&self, db: Db, keys: &[Bytes]) -> Result<Vec<bool>> {
        Ok(keys
            .iter()
            .map(|key| {
                self.with_shard(key, |shard| {
                    self.removed_live(shard, &KeyRef { db, key }).is_some()
                })
            })
            .collect())
    }

    async fn arith(&self, db: Db, key: &Bytes, arith: Arith) -> Result<ArithOutcome> {
        self.with_shard(key, |shard| {
            let key = KeyRef { db, key };
            let current = self.live(shard, &key)?;
            let Some((value, outcome)) =
                numeric::apply(arith, current.as_ref().map(|c| &c.value[..]))?
            else {
                return Ok(ArithOutcome::NotFound);
            };
            let (flags, expiry) = current.map_or((0, Expiry::Never), |c| (c.flags, c.expiry));
            self.put(
                shard,
                key,
                Item {
                    value,
                    flags,
                    cas: self.new_cas(),
                    expiry,
                },
            )?;
            Ok(outcome)
        })
    }

    async fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Result<bool> {
        self.with_shard(key, |shard| {
            let key = KeyRef { db, key };
            let Some(stored) = self.live_entry(shard, &key) else {
                return Ok(false);
            };
            if !condition.holds(stored.item.expiry, expiry) {
                return Ok(false);
            }
            // In place: a collection is not copied to change its expiry.
            if self.clock.has_passed(expiry) {
                shard.remove(&key);
            } else if let Some(mut stored) = shard.get_mut(&key) {
                stored.item.expiry = expiry;
            }
            Ok(true)
        })
    }

    async fn ttl(&self, db: Db, key: &Bytes) -> Result<Ttl> {
        Ok(self.with_shard(key, |shard| {
            let stored = self.live_entry(shard, &KeyRef { db, key });
            self.clock.ttl_of(stored.map(|stored| &stored.item))
        }))
    }

    async fn scan(
        &self,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<ScanPage> {
        // Cursor: shard index in bits 52..56, then the next key-hash
        // position (52 bits) within that shard. Keys are visited in hash
        // order, so a key present for the whole scan is returned exactly once.
        let shard_index = (cursor >> POSITION_BITS) as usize;
        let from = cursor & POSITION_MASK;
        let Some(shard) = self.shards.get(shard_index) else {
            return Ok(ScanPage {
                cursor: 0,
                keys: Vec::new(),
            });
        };
        let now = self.clock.now_ms();
        let mut candidates: Vec<(u64, Bytes)> = shard
            .lock()
            .iter()
            .filter(|(key, stored)| key.db == db && !stored.item.expiry.is_expired_at(now))
            .map(|(key, _)| {
                (
                    self.key_hash(&key.key) >> (64 - POSITION_BITS),
                    key.key.clone(),
                )
            })
            .filter(|(position, _)| *position >= from)
            .collect();
        candidates.sort_unstable_by_key(|(position, _)| *position);
        let count = count.max(1);
        let next = if candidates.len() > count {
            // Never split keys that share a position across two pages.
            let last = candidates[count - 1].0;
            let cut = candidates.partition_point(|(p, _)| *p <= last);
            candidates.truncate(cut);
            ((shard_index as u64) << POSITION_BITS) | (last + 1)
        } else if shard_index + 1 < self.shards.len() {
            ((shard_index as u64) + 1) << POSITION_BITS
        } else {
            0
        };
        let keys = candidates
            .into_iter()
            .map(|(_, key)| key)
            .filter(|key| pattern.is_none_or(|p| glob_match(p, key)))
            .collect();
        Ok(ScanPage { cursor: next, keys })
    }

    async fn len(&self, db: Db) -> Result<usize> {
        let now = self.clock.now_ms();
        Ok(self
            .shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .iter()
                    .filter(|(key, stored)| key.db == db && !stored.item.expiry.is_expired_at(now))
                    .count()
            })
            .sum())
    }

    async fn flush(&self, db: Option<Db>) -> Result<()> {
        for shard in &self.shards {
            let mut shard = shard.lock();
            match db {
                None => shard.clear(),
                Some(db) => shard.retain(|key, _| key.db != db),
            }
        }
        Ok(())
    }
}

const POSITION_BITS: u32 = 52;
const POSITION_MASK: u64 = (1 << POSITION_BITS) - 1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::ExpiryUpdate;

    /// Expiry by the store's clock: items, TTLs, touches, listings and the
    /// sweep all follow it, with no test waiting for time to pass.
    #[tokio::test]
    async fn expiry_follows_the_stores_clock() {
        let clock = Clock::adjustable();
        let backend = MemoryBackend::with_clock(16 * 1024 * 1024, clock.clone());
        let key = |k: &'static [u8]| Bytes::from_static(k);
        let in_ms = |ms: u64| ExpiryUpdate::Set(Expiry::At(clock.now_ms() + ms));
        for (k, expiry) in [(&b"short"[..], in_ms(1_000)), (b"long", in_ms(60_000))] {
            let store = Store::new(key(k), key(b"v"), StoreMode::Set, expiry);
            backend.store(0, store).await.unwrap();
        }
        let forever = Store::new(
            key(b"kept"),
            key(b"v"),
            StoreMode::Set,
            ExpiryUpdate::Set(Expiry::Never),
        );
        backend.store(0, forever).await.unwrap();
        assert!(
            matches!(backend.ttl(0, &key(b"short")).await.unwrap(), Ttl::Millis(ms) if ms <= 1_000 && ms > 900)
        );
        // A touch moves "long" past what "short" had; gat gives "kept" a TTL.
        let later = Expiry::At(clock.now_ms() + 120_000);
        assert!(backend
            .expire(0, &key(b"long"), later, ExpireCondition::Always)
            .await
            .unwrap());
        let touched = backend
            .get_and_touch(0, &[key(b"kept")], Expiry::At(clock.now_ms() + 30_000))
            .await
            .unwrap();
        assert!(touched[0].is_some());

        clock.advance(std::time::Duration::from_millis(1_001));
        let items = backend
            .get(0, &[key(b"short"), key(b"long"), key(b"kept")])
            .await
            .unwrap();
        assert_eq!(
            items.iter().map(Option::is_some).collect::<Vec<_>>(),
            [false, true, true]
        );
        assert_eq!(backend.ttl(0, &key(b"short")).await.unwrap(), Ttl::Missing);
        assert_eq!(backend.len(0).await.unwrap(), 2);

        clock.advance(std::time::Duration::from_secs(30));
        assert_eq!(backend.len(0).await.unwrap(), 1);
        let (mut cursor, mut listed) = (0, Vec::new());
        loop {
            let page = backend.scan(0, cursor, None, 100).await.unwrap();
            listed.extend(page.keys);
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(listed, [key(b"long")]);
        backend.sweep_expired();
        assert_eq!(backend.usage().items, 1);

        clock.advance(std::time::Duration::from_secs(90));
        assert_eq!(backend.get(0, &[key(b"long")]).await.unwrap(), [None]);
        // A write with an expiry already passed by the store's clock stores nothing.
        let past = Store::new(
            key(b"past"),
            key(b"v"),
            StoreMode::Set,
            ExpiryUpdate::Set(Expiry::At(clock.now_ms() - 1)),
        );
        backend.store(0, past).await.unwrap();
        assert_eq!(backend.usage().items, 0);
    }

    /// A stored value must not be a slice of the buffer the request arrived
    /// in: it would keep that whole buffer alive, uncounted by `capacity`.
    #[tokio::test]
    async fn stored_values_do_not_pin_the_request_buffer() {
        let request = Bytes::from(vec![b'x'; 64 * 1024]);
        let within = |value: &Bytes| {
            let range = request.as_ptr_range();
            range.contains(&value.as_ptr())
        };
        let backend = MemoryBackend::new(16 * 1024 * 1024);
        let set = Store::new(
            Bytes::from_static(b"a"),
            request.slice(10..20),
            StoreMode::Set,
            ExpiryUpdate::Set(Expiry::Never),
        );
        backend.store(0, set).await.unwrap();
        let pairs = vec![(Bytes::from_static(b"b"), request.slice(30..40))];
        assert!(backend.store_all_if_absent(0, pairs).await.unwrap());
        let keys = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        for item in backend.get(0, &keys).await.unwrap() {
            let value = item.expect("stored").value;
            assert_eq!(value.len(), 10);
            assert!(
                !within(&value),
                "a stored value still points into the request buffer"
            );
        }
    }

    #[test]
    fn every_shard_holds_at_least_the_minimum() {
        for mib in [1, 8, 16, 24, 40, 100, 256, 1024] {
            let backend = MemoryBackend::new(mib * 1024 * 1024);
            let per_shard = backend.capacity / backend.shards.len() as u64;
            assert!(backend.shards.len().is_power_of_two());
            assert!(
                per_shard >= MIN_SHARD_BYTES || backend.shards.len() == 1,
                "{mib} MiB: {} shards of {per_shard} bytes",
                backend.shards.len()
            );
        }
    }
}
