//! The four collections, each counting the bytes it holds as it changes.

use std::collections::{BTreeSet, HashMap, VecDeque};

use bytes::Bytes;
use indexmap::{IndexMap, IndexSet};

/// Bytes charged per element beyond its own: the entry in its table or
/// node, so that a million one-byte members weigh what they cost.
const ELEMENT_OVERHEAD: u64 = 48;

/// Up to this many elements, redis keeps a hash, a sorted set (and a set
/// of integers) in a compact encoding, and answers a SCAN of it whole.
pub(super) const COMPACT_ENTRIES: usize = 128;
/// ... and elements no longer than this (bytes).
const COMPACT_VALUE: usize = 64;
/// A set of integers stays an intset up to this many members.
const INTSET_ENTRIES: usize = 512;

fn weigh(element: &[u8]) -> u64 {
    element.len() as u64 + ELEMENT_OVERHEAD
}

/// One of redis's collections, held under a key.
#[derive(Clone, Debug)]
pub enum Collection {
    Hash(Hash),
    List(List),
    Set(Set),
    SortedSet(SortedSet),
}

impl Collection {
    /// What it weighs against the store's capacity.
    pub fn weight(&self) -> u64 {
        match self {
            Collection::Hash(h) => h.bytes,
            Collection::List(l) => l.bytes,
            Collection::Set(s) => s.bytes,
            Collection::SortedSet(z) => z.bytes,
        }
    }

    /// Its name in TYPE's reply.
    pub fn type_name(&self) -> &'static str {
        match self {
            Collection::Hash(_) => "hash",
            Collection::List(_) => "list",
            Collection::Set(_) => "set",
            Collection::SortedSet(_) => "zset",
        }
    }

    /// OBJECT ENCODING: what redis 7.0 would use for it.
    pub fn encoding(&self) -> &'static str {
        let compact =
            |len: usize, longest: usize| len <= COMPACT_ENTRIES && longest <= COMPACT_VALUE;
        match self {
            Collection::Hash(h) => {
                let longest = h.fields.iter().map(|(f, v)| f.len().max(v.len())).max();
                match compact(h.len(), longest.unwrap_or(0)) {
                    true => "listpack",
                    false => "hashtable",
                }
            }
            Collection::List(_) => "quicklist",
            Collection::Set(s) => {
                let integers = s.len() <= INTSET_ENTRIES
                    && s.members.iter().all(|m| super::args::int(m).is_ok());
                match integers {
                    true => "intset",
                    false => "hashtable",
                }
            }
            Collection::SortedSet(z) => {
                let longest = z.scores.keys().map(Bytes::len).max();
                match compact(z.len(), longest.unwrap_or(0)) {
                    true => "listpack",
                    false => "skiplist",
                }
            }
        }
    }
}

/// A collection kind the commands take out of the store and put back.
pub(super) trait Kind: Sized + Default {
    fn of(collection: &Collection) -> Option<&Self>;
    fn from(collection: Collection) -> Result<Self, Collection>;
    fn into_collection(self) -> Collection;
    fn is_empty(&self) -> bool;
}

macro_rules! kind {
    ($type:ident) => {
        impl Kind for $type {
            fn of(collection: &Collection) -> Option<&Self> {
                match collection {
                    Collection::$type(value) => Some(value),
                    _ => None,
                }
            }
            fn from(collection: Collection) -> Result<Self, Collection> {
                match collection {
                    Collection::$type(value) => Ok(value),
                    other => Err(other),
                }
            }
            fn into_collection(self) -> Collection {
                Collection::$type(self)
            }
            fn is_empty(&self) -> bool {
                self.len() == 0
            }
        }
    };
}
kind!(Hash);
kind!(List);
kind!(Set);
kind!(SortedSet);

/// Field → value, in insertion order (as a small redis hash lists them).
#[derive(Clone, Debug, Default)]
pub struct Hash {
    fields: IndexMap<Bytes, Bytes, ahash::RandomState>,
    bytes: u64,
}

impl Hash {
    pub(super) fn len(&self) -> usize {
        self.fields.len()
    }

    pub(super) fn get(&self, field: &[u8]) -> Option<&Bytes> {
        self.fields.get(field)
    }

    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = (&Bytes, &Bytes)> {
        self.fields.iter()
    }

    pub(super) fn get_index(&self, at: usize) -> Option<(&Bytes, &Bytes)> {
        self.fields.get_index(at)
    }

    /// Sets a field; whether it is new.
    pub(super) fn insert(&mut self, field: Bytes, value: Bytes) -> bool {
        match self.fields.get_mut(&field) {
            Some(old) => {
                self.bytes = self.bytes - old.len() as u64 + value.len() as u64;
                *old = value;
                false
            }
            None => {
                self.bytes += weigh(&field) + value.len() as u64;
                self.fields.insert(field, value);
                true
            }
        }
    }

    pub(super) fn remove(&mut self, field: &[u8]) -> bool {
        // A small hash keeps its order, as redis's listpack does.
        let removed = match self.fields.len() <= COMPACT_ENTRIES {
            true => self.fields.shift_remove_full(field),
            false => self.fields.swap_remove_full(field),
        };
        match removed {
            Some((_, field, value)) => {
                self.bytes -= weigh(&field) + value.len() as u64;
                true
            }
            None => false,
        }
    }
}

/// Elements in order.
#[derive(Clone, Debug, Default)]
pub struct List {
    items: VecDeque<Bytes>,
    bytes: u64,
}

impl List {
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn items(&self) -> &VecDeque<Bytes> {
        &self.items
    }

    pub(super) fn push(&mut self, item: Bytes, front: bool) {
        self.bytes += weigh(&item);
        match front {
            true => self.items.push_front(item),
            false => self.items.push_back(item),
        }
    }

    pub(super) fn pop(&mut self, front: bool) -> Option<Bytes> {
        let item = match front {
            true => self.items.pop_front(),
            false => self.items.pop_back(),
        }?;
        self.bytes -= weigh(&item);
        Some(item)
    }

    pub(super) fn insert(&mut self, at: usize, item: Bytes) {
        self.bytes += weigh(&item);
        self.items.insert(at, item);
    }

    pub(super) fn set(&mut self, at: usize, item: Bytes) {
        self.bytes += weigh(&item);
        let old = std::mem::replace(&mut self.items[at], item);
        self.bytes -= weigh(&old);
    }

    /// Keeps the elements for which `keep` says so, in order.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(usize, &Bytes) -> bool) {
        let mut at = 0;
        self.items.retain(|item| {
            let kept = keep(at, item);
            at += 1;
            kept
        });
        self.bytes = self.items.iter().map(|i| weigh(i)).sum();
    }
}

/// Members, in insertion order.
#[derive(Clone, Debug, Default)]
pub struct Set {
    members: IndexSet<Bytes, ahash::RandomState>,
    bytes: u64,
}

impl Set {
    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    pub(super) fn contains(&self, member: &[u8]) -> bool {
        self.members.contains(member)
    }

    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = &Bytes> {
        self.members.iter()
    }

    pub(super) fn get_index(&self, at: usize) -> Option<&Bytes> {
        self.members.get_index(at)
    }

    /// Adds a member; whether it is new.
    pub(super) fn insert(&mut self, member: Bytes) -> bool {
        let weight = weigh(&member);
        let added = self.members.insert(member);
        if added {
            self.bytes += weight;
        }
        added
    }

    pub(super) fn remove(&mut self, member: &[u8]) -> bool {
        let removed = self.members.swap_remove(member);
        if removed {
            self.bytes -= weigh(member);
        }
        removed
    }

    pub(super) fn remove_index(&mut self, at: usize) -> Option<Bytes> {
        let member = self.members.swap_remove_index(at)?;
        self.bytes -= weigh(&member);
        Some(member)
    }
}

/// A score with a total order (scores are never NaN).
#[derive(Clone, Copy, Debug)]
pub(super) struct Score(pub(super) f64);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Members by score, then by member bytes, as redis orders them.
#[derive(Clone, Debug, Default)]
pub struct SortedSet {
    scores: HashMap<Bytes, f64, ahash::RandomState>,
    order: BTreeSet<(Score, Bytes)>,
    bytes: u64,
}

impl SortedSet {
    pub(super) fn len(&self) -> usize {
        self.scores.len()
    }

    pub(super) fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// In order: lowest score first.
    pub(super) fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> + ExactSizeIterator {
        self.order.iter().map(|(score, member)| (member, score.0))
    }

    /// Sets a member's score; whether it is new.
    pub(super) fn insert(&mut self, member: Bytes, score: f64) -> bool {
        // -0.0 and 0.0 are one score to redis.
        let score = if score == 0.0 { 0.0 } else { score };
        match self.scores.insert(member.clone(), score) {
            Some(old) => {
                self.order.remove(&(Score(old), member.clone()));
                self.order.insert((Score(score), member));
                false
            }
            None => {
                self.bytes += weigh(&member) * 2;
                self.order.insert((Score(score), member));
                true
            }
        }
    }

    pub(super) fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove_entry(member) {
            Some((member, score)) => {
                self.bytes -= weigh(&member) * 2;
                self.order.remove(&(Score(score), member));
                true
            }
            None => false,
        }
    }
}
