//! Each backend operation described once: [`Call`] carries an operation's
//! arguments and says what it is (its command [`Family`], whether it writes,
//! whether it removes keys); [`Answer`] is its reply, in the shape the
//! operation names. What treats every operation alike — a route's
//! instrumentation, a policy's members, failover, replication, shadowing —
//! is written once over [`Execute`], and [`Ops`](super::Ops) gives callers the typed
//! methods back.
//!
//! Adding an operation: ARCHITECTURE.md, "Adding a command, adding an
//! operation", lists every place; the matches below are exhaustive, so the
//! compiler finds most of them.

use std::borrow::Cow;
use std::future::Future;

use bytes::Bytes;

use super::{Backend, Result};
use crate::op::{
    Arith, ArithOutcome, Db, ExpireCondition, Expiry, Family, Item, ScanPage, Store, StoreOutcome,
    Ttl,
};

/// One operation on a backend, with its arguments. Borrowed where the
/// caller holds the keys; [`Call::into_owned`] for a copy that outlives
/// the request (a mirrored or replicated write).
#[derive(Debug, Clone)]
pub enum Call<'a> {
    /// Items for `keys`, in order; `None` for misses and expired items.
    Get {
        db: Db,
        keys: Cow<'a, [Bytes]>,
    },
    /// Like `Get`, and sets each hit's expiry (memcached gat, redis GETEX).
    GetAndTouch {
        db: Db,
        keys: Cow<'a, [Bytes]>,
        expiry: Expiry,
    },
    /// Removes and returns the item (redis GETDEL).
    GetAndDelete {
        db: Db,
        key: Cow<'a, Bytes>,
    },
    Store {
        db: Db,
        store: Store,
    },
    /// Stores every pair only if none of the keys exists (redis MSETNX).
    StoreAllIfAbsent {
        db: Db,
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// Deletes each key; true for each one that existed.
    Delete {
        db: Db,
        keys: Cow<'a, [Bytes]>,
    },
    Arith {
        db: Db,
        key: Cow<'a, Bytes>,
        arith: Arith,
    },
    /// Changes a key's expiry if `condition` holds; true if changed.
    Expire {
        db: Db,
        key: Cow<'a, Bytes>,
        expiry: Expiry,
        condition: ExpireCondition,
    },
    Ttl {
        db: Db,
        key: Cow<'a, Bytes>,
    },
    /// One page of live keys in `db` matching the redis glob `pattern`.
    Scan {
        db: Db,
        cursor: u64,
        pattern: Option<Cow<'a, [u8]>>,
        count: usize,
    },
    /// Number of live keys in `db`.
    Len {
        db: Db,
    },
    /// Removes every key of `db`, or of every db when `None`.
    Flush {
        db: Option<Db>,
    },
}

impl Call<'_> {
    /// The command family it is counted under.
    pub fn family(&self) -> Family {
        match self {
            Call::Get { .. } | Call::GetAndTouch { .. } | Call::GetAndDelete { .. } => Family::Get,
            Call::Store { .. } | Call::StoreAllIfAbsent { .. } => Family::Set,
            Call::Delete { .. } => Family::Delete,
            Call::Arith { .. } => Family::Arith,
            Call::Expire { .. } | Call::Ttl { .. } => Family::Touch,
            Call::Scan { .. } | Call::Len { .. } => Family::Keys,
            Call::Flush { .. } => Family::Flush,
        }
    }

    /// What it does to a store, decided once per variant: the match has no
    /// wildcard, so a new operation cannot be left out of [`Call::writes`],
    /// [`Call::removes`] or [`Call::lists`] (one left out of `removes`
    /// would leave stale copies under failover and replicate).
    pub fn effect(&self) -> Effect {
        match self {
            Call::Get { .. } | Call::Ttl { .. } => Effect::Reads,
            Call::GetAndTouch { .. }
            | Call::Store { .. }
            | Call::StoreAllIfAbsent { .. }
            | Call::Arith { .. }
            | Call::Expire { .. } => Effect::Writes,
            Call::GetAndDelete { .. } | Call::Delete { .. } | Call::Flush { .. } => Effect::Removes,
            Call::Scan { .. } | Call::Len { .. } => Effect::Lists,
        }
    }

    /// Whether it changes what a store holds (a touch changes an expiry).
    pub fn writes(&self) -> bool {
        matches!(self.effect(), Effect::Writes | Effect::Removes)
    }

    /// Whether it removes keys: a removal must reach every copy, or a copy
    /// left behind is served again.
    pub fn removes(&self) -> bool {
        self.effect() == Effect::Removes
    }

    /// Whether its answer describes the whole store (a key listing or a
    /// count) rather than the keys it names.
    pub fn lists(&self) -> bool {
        self.effect() == Effect::Lists
    }

    /// The database it works in; `None` for a flush of every database.
    pub fn db(&self) -> Option<Db> {
        match self {
            Call::Get { db, .. }
            | Call::GetAndTouch { db, .. }
            | Call::GetAndDelete { db, .. }
            | Call::Store { db, .. }
            | Call::StoreAllIfAbsent { db, .. }
            | Call::Delete { db, .. }
            | Call::Arith { db, .. }
            | Call::Expire { db, .. }
            | Call::Ttl { db, .. }
            | Call::Scan { db, .. }
            | Call::Len { db } => Some(*db),
            Call::Flush { db } => *db,
        }
    }

    /// The keys it names, in order (none for a listing or a flush): what a
    /// router routes it by.
    pub fn keys(&self) -> impl Iterator<Item = &Bytes> + '_ {
        let (keys, pairs): (&[Bytes], &[(Bytes, Bytes)]) = match self {
            Call::Get { keys, .. } | Call::GetAndTouch { keys, .. } | Call::Delete { keys, .. } => {
                (keys, &[])
            }
            Call::GetAndDelete { key, .. }
            | Call::Arith { key, .. }
            | Call::Expire { key, .. }
            | Call::Ttl { key, .. } => (std::slice::from_ref(key.as_ref()), &[]),
            Call::Store { store, .. } => (std::slice::from_ref(&store.key), &[]),
            Call::StoreAllIfAbsent { pairs, .. } => (&[], pairs),
            Call::Scan { .. } | Call::Len { .. } | Call::Flush { .. } => (&[], &[]),
        };
        keys.iter().chain(pairs.iter().map(|(key, _)| key))
    }

    /// A copy that owns its arguments.
    pub fn into_owned(self) -> Call<'static> {
        let keys = |keys: Cow<'_, [Bytes]>| Cow::Owned(keys.into_owned());
        let key = |key: Cow<'_, Bytes>| Cow::Owned(key.into_owned());
        match self {
            Call::Get { db, keys: k } => Call::Get { db, keys: keys(k) },
            Call::GetAndTouch {
                db,
                keys: k,
                expiry,
            } => Call::GetAndTouch {
                db,
                keys: keys(k),
                expiry,
            },
            Call::GetAndDelete { db, key: k } => Call::GetAndDelete { db, key: key(k) },
            Call::Store { db, store } => Call::Store { db, store },
            Call::StoreAllIfAbsent { db, pairs } => Call::StoreAllIfAbsent { db, pairs },
            Call::Delete { db, keys: k } => Call::Delete { db, keys: keys(k) },
            Call::Arith { db, key: k, arith } => Call::Arith {
                db,
                key: key(k),
                arith,
            },
            Call::Expire {
                db,
                key: k,
                expiry,
                condition,
            } => Call::Expire {
                db,
                key: key(k),
                expiry,
                condition,
            },
            Call::Ttl { db, key: k } => Call::Ttl { db, key: key(k) },
            Call::Scan {
                db,
                cursor,
                pattern,
                count,
            } => Call::Scan {
                db,
                cursor,
                pattern: pattern.map(|p| Cow::Owned(p.into_owned())),
                count,
            },
            Call::Len { db } => Call::Len { db },
            Call::Flush { db } => Call::Flush { db },
        }
    }
}

/// What a [`Call`] does to a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads the keys it names.
    Reads,
    /// Changes the keys it names (a value, a counter, an expiry).
    Writes,
    /// Removes keys (the ones it names, or all of them).
    Removes,
    /// Reads the whole store: a key listing or a count.
    Lists,
}

/// A [`Call`]'s answer, in the shape the operation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Get, GetAndTouch.
    Items(Vec<Option<Item>>),
    /// GetAndDelete.
    Item(Option<Item>),
    Stored(StoreOutcome),
    /// StoreAllIfAbsent, Expire.
    Done(bool),
    /// Delete: whether each key existed.
    Existed(Vec<bool>),
    Arith(ArithOutcome),
    Ttl(Ttl),
    Page(ScanPage),
    Count(usize),
    /// Flush.
    Flushed,
}

impl Answer {
    /// Keys found and keys missed, for the hit and miss counters.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        match self {
            Answer::Items(items) => {
                let hits = items.iter().filter(|item| item.is_some()).count() as u64;
                (hits, items.len() as u64 - hits)
            }
            Answer::Item(item) => (item.is_some() as u64, item.is_none() as u64),
            _ => (0, 0),
        }
    }

    /// Whether two members answered alike (shadow's comparison): values and
    /// flags, not CAS ids or exact remaining TTLs, which differ between
    /// stores by design.
    pub fn same(&self, other: &Answer) -> bool {
        fn same_item(a: &Option<Item>, b: &Option<Item>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => a.value == b.value && a.flags == b.flags,
                (None, None) => true,
                _ => false,
            }
        }
        match (self, other) {
            (Answer::Items(a), Answer::Items(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_item(a, b))
            }
            (Answer::Item(a), Answer::Item(b)) => same_item(a, b),
            (Answer::Stored(a), Answer::Stored(b)) => a.status == b.status,
            (Answer::Ttl(a), Answer::Ttl(b)) => matches!(
                (a, b),
                (Ttl::Missing, Ttl::Missing)
                    | (Ttl::Persistent, Ttl::Persistent)
                    | (Ttl::Millis(_), Ttl::Millis(_))
            ),
            (a, b) => a == b,
        }
    }
}

/// What answers [`Call`]s: a backend of any kind, a policy, a route's target
/// or a policy's member.
pub trait Execute: Send + Sync {
    fn execute<'a>(&'a self, call: Call<'a>) -> impl Future<Output = Result<Answer>> + Send + 'a;
}

/// Runs `call` on a backend's typed methods: the one place a [`Call`] meets
/// the [`Backend`] trait.
pub async fn execute_typed<B: Backend>(backend: &B, call: Call<'_>) -> Result<Answer> {
    Ok(match call {
        Call::Get { db, keys } => Answer::Items(backend.get(db, &keys).await?),
        Call::GetAndTouch { db, keys, expiry } => {
            Answer::Items(backend.get_and_touch(db, &keys, expiry).await?)
        }
        Call::GetAndDelete { db, key } => Answer::Item(backend.get_and_delete(db, &key).await?),
        Call::Store { db, store } => Answer::Stored(backend.store(db, store).await?),
        Call::StoreAllIfAbsent { db, pairs } => {
            Answer::Done(backend.store_all_if_absent(db, pairs).await?)
        }
        Call::Delete { db, keys } => Answer::Existed(backend.delete(db, &keys).await?),
        Call::Arith { db, key, arith } => Answer::Arith(backend.arith(db, &key, arith).await?),
        Call::Expire {
            db,
            key,
            expiry,
            condition,
        } => Answer::Done(backend.expire(db, &key, expiry, condition).await?),
        Call::Ttl { db, key } => Answer::Ttl(backend.ttl(db, &key).await?),
        Call::Scan {
            db,
            cursor,
            pattern,
            count,
        } => Answer::Page(backend.scan(db, cursor, pattern.as_deref(), count).await?),
        Call::Len { db } => Answer::Count(backend.len(db).await?),
        Call::Flush { db } => {
            backend.flush(db).await?;
            Answer::Flushed
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_say_what_they_are() {
        let key = Bytes::from_static(b"k");
        let get = Call::Get {
            db: 0,
            keys: Cow::Owned(vec![key.clone()]),
        };
        assert_eq!(get.family(), Family::Get);
        assert!(!get.writes() && !get.removes());
        let touch = Call::Expire {
            db: 0,
            key: Cow::Borrowed(&key),
            expiry: Expiry::Never,
            condition: ExpireCondition::Always,
        };
        assert_eq!(touch.family(), Family::Touch);
        assert!(touch.writes() && !touch.removes());
        let flush = Call::Flush { db: None };
        assert!(flush.writes() && flush.removes());
        assert!(Call::Len { db: 0 }.lists());
        assert_eq!(flush.keys().count(), 0);
        let pairs = Call::StoreAllIfAbsent {
            db: 0,
            pairs: vec![
                (key.clone(), key.clone()),
                (Bytes::from_static(b"j"), key.clone()),
            ],
        };
        let named: Vec<&Bytes> = pairs.keys().collect();
        assert_eq!(named, [&key, &Bytes::from_static(b"j")]);
        assert_eq!(touch.keys().collect::<Vec<_>>(), [&key]);
    }

    #[test]
    fn answers_count_hits_and_compare_loosely() {
        let item = Item {
            value: Bytes::from_static(b"v"),
            flags: 1,
            cas: 7,
            expiry: Expiry::Never,
        };
        let mut other_cas = item.clone();
        other_cas.cas = 8;
        let items = Answer::Items(vec![Some(item), None]);
        assert_eq!(items.hits_and_misses(), (1, 1));
        assert!(items.same(&Answer::Items(vec![Some(other_cas), None])));
        assert!(Answer::Ttl(Ttl::Millis(5)).same(&Answer::Ttl(Ttl::Millis(9))));
        assert!(!Answer::Done(true).same(&Answer::Done(false)));
    }
}
