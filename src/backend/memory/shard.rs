//! What one shard of the memory store holds: keys (owned, and borrowed
//! for lookups without a copy), values (strings, or one of redis's
//! collections), what each weighs against the capacity, and the eviction
//! count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use quick_cache::unsync::Cache;
use quick_cache::{Equivalent, Lifecycle, Weighter};

use super::types::Collection;
use crate::op::{Db, Item};

/// What a key holds: a string (`item`), or a collection, whose `item`
/// keeps only its CAS and expiry (an empty value).
#[derive(Clone)]
pub(super) struct Stored {
    pub(super) item: Item,
    pub(super) collection: Option<Box<Collection>>,
}

impl Stored {
    pub(super) fn string(item: Item) -> Self {
        Self {
            item,
            collection: None,
        }
    }
}

/// A stored key. Keys and values are copied into allocations of their own on
/// store: slices of a connection's read buffer would pin the whole buffer.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) db: Db,
    pub(super) key: Bytes,
}

/// A key to look up, borrowed from the request; hashes exactly like [`Key`].
#[derive(Clone, Copy)]
pub(super) struct KeyRef<'a> {
    pub(super) db: Db,
    pub(super) key: &'a [u8],
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        KeyRef {
            db: self.db,
            key: &self.key,
        }
        .hash(state);
    }
}

impl std::hash::Hash for KeyRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(self.db);
        state.write(self.key);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, stored: &Key) -> bool {
        self.db == stored.db && self.key == &stored.key[..]
    }
}

impl KeyRef<'_> {
    pub(super) fn to_owned(self) -> Key {
        Key {
            db: self.db,
            key: Bytes::copy_from_slice(self.key),
        }
    }
}

/// Bytes charged per item beyond key and value: the entry, its index slot and
/// the cache's own bookkeeping, so that capacity tracks real memory use.
const ITEM_OVERHEAD: u64 = 96;
pub(super) const MAX_SHARDS: usize = 16;
/// Shards are kept at least this big so that one large item always fits.
pub(super) const MIN_SHARD_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Clone)]
pub(super) struct ItemWeight;

impl Weighter<Key, Stored> for ItemWeight {
    fn weight(&self, key: &Key, stored: &Stored) -> u64 {
        let collection = stored.collection.as_ref().map_or(0, |c| c.weight());
        (key.key.len() + stored.item.value.len()) as u64 + collection + ITEM_OVERHEAD
    }
}

#[derive(Clone)]
pub(super) struct CountEvictions(pub(super) Arc<AtomicU64>);

impl Lifecycle<Key, Stored> for CountEvictions {
    type RequestState = ();
    fn on_evict(&self, _: &mut (), _: Key, _: Stored) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

pub(super) type Shard = Cache<Key, Stored, ItemWeight, ahash::RandomState, CountEvictions>;
