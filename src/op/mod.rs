//! The protocol-neutral operation model.
//!
//! Frontends translate wire commands into these types and results back into
//! wire replies; routers, policies and backends only ever see these. memcached's
//! flags word, CAS ids, absolute expiry times and redis's numbered databases are
//! all part of the model, so any frontend works with any backend.

mod clock;
mod family;
pub mod groups;

use bytes::Bytes;

pub use clock::{now_ms, Clock};
pub use family::Family;

/// A redis database number (SELECT); memcached clients always use 0.
pub type Db = u8;

/// Number of databases each listener exposes (redis's default).
pub const DATABASES: Db = 16;

/// When an item stops being visible. Absolute, so that a durable backend can
/// store it and a restart does not extend anyone's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    /// Unix time in milliseconds; at or before now means already expired.
    At(u64),
}

impl Expiry {
    /// An expiry that is already in the past (memcached's exptime < 0).
    pub const EXPIRED: Expiry = Expiry::At(0);

    pub fn after_ms(ms: u64) -> Self {
        Expiry::At(now_ms().saturating_add(ms))
    }

    pub fn is_expired_at(self, now: u64) -> bool {
        matches!(self, Expiry::At(at) if at <= now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub value: Bytes,
    /// memcached's opaque 32-bit client flags; 0 for values written over RESP.
    pub flags: u32,
    /// Changes on every modification; what `gets` reports and `cas` compares.
    pub cas: u64,
    pub expiry: Expiry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// Unconditional (memcached `set`, redis `SET`).
    Set,
    /// Only if absent (memcached `add`, redis `NX`).
    Add,
    /// Only if present (memcached `replace`, redis `XX`).
    Replace,
    /// Only if the item's CAS id still matches.
    Cas(u64),
    /// memcached `append`/`prepend`: only if present; flags and expiry are kept.
    Append,
    Prepend,
    /// redis `APPEND`: appends, creating the key when absent.
    AppendOrCreate,
}

/// Whether a write replaces the item's expiry or keeps the current one
/// (redis KEEPTTL; memcached append/prepend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryUpdate {
    Set(Expiry),
    Keep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub key: Bytes,
    pub value: Bytes,
    pub flags: u32,
    pub expiry: ExpiryUpdate,
    pub mode: StoreMode,
    /// Also return the item as it was before (redis `SET ... GET`).
    pub return_old: bool,
    /// Write only while this key (an ended session's marker) is absent,
    /// checked with the write in one step; a refusal is `NotStored`. Set
    /// only on plain sets, and only for targets whose
    /// `stores_unless_ended` says they check it (`django_sessions::ended`).
    pub unless_ended: Option<Bytes>,
}

impl Store {
    /// A write of `value` under `key` with flags 0 that does not return the
    /// old item; set `flags` or `return_old` afterwards where needed.
    pub fn new(key: Bytes, value: Bytes, mode: StoreMode, expiry: ExpiryUpdate) -> Self {
        Self {
            key,
            value,
            flags: 0,
            expiry,
            mode,
            return_old: false,
            unless_ended: None,
        }
    }

    /// A plain set: it writes whatever is there (no mode condition, no TTL
    /// kept, no old item wanted), so it needs no read of the current item.
    pub fn is_plain_set(&self) -> bool {
        self.mode == StoreMode::Set
            && matches!(self.expiry, ExpiryUpdate::Set(_))
            && !self.return_old
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStatus {
    Stored,
    /// Add on a present key, replace/append on an absent one.
    NotStored,
    /// CAS mismatch.
    Exists,
    /// CAS on an absent key.
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOutcome {
    pub status: StoreStatus,
    pub old: Option<Item>,
    /// Length of the value now stored (redis `APPEND`'s reply).
    pub len: usize,
}

impl StoreOutcome {
    /// A write [`plan_store`] refused.
    pub fn refused(status: StoreStatus) -> Self {
        Self {
            status,
            old: None,
            len: 0,
        }
    }

    /// A refused write that still answers with the item as it is, when the
    /// store asked for it (redis `SET ... NX GET` on a present key answers
    /// the value it left in place).
    pub fn refused_showing(status: StoreStatus, store: &Store, current: Option<Item>) -> Self {
        Self {
            old: current.filter(|_| store.return_old),
            ..Self::refused(status)
        }
    }
}

/// Arithmetic on a decimal value, in one of the two servers' semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    /// memcached: unsigned 64-bit, incr wraps, decr stops at 0, absent is NOT_FOUND.
    Memcache { delta: u64, incr: bool },
    /// redis INCRBY: signed 64-bit, overflow is an error, absent counts as 0.
    Redis(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    NotFound,
    Unsigned(u64),
    Signed(i64),
}

/// A condition on changing an expiry (redis EXPIRE's NX/XX/GT/LT, PERSIST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireCondition {
    Always,
    /// Only if the key has no expiry.
    IfPersistent,
    /// Only if the key has an expiry (XX, and PERSIST).
    IfVolatile,
    /// Only if the new expiry is later (no expiry counts as infinitely late).
    IfLater,
    /// Only if the new expiry is earlier.
    IfEarlier,
    /// XX and LT together.
    IfVolatileAndEarlier,
}

impl ExpireCondition {
    /// Whether an item expiring at `current` may be given `new`.
    pub fn holds(self, current: Expiry, new: Expiry) -> bool {
        // No expiry counts as infinitely far away, as in redis.
        let rank = |e: Expiry| match e {
            Expiry::Never => u64::MAX,
            Expiry::At(at) => at,
        };
        match self {
            ExpireCondition::Always => true,
            ExpireCondition::IfPersistent => current == Expiry::Never,
            ExpireCondition::IfVolatile => current != Expiry::Never,
            ExpireCondition::IfLater => rank(new) > rank(current),
            ExpireCondition::IfEarlier => rank(new) < rank(current),
            ExpireCondition::IfVolatileAndEarlier => {
                current != Expiry::Never && rank(new) < rank(current)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    Missing,
    Persistent,
    /// Remaining milliseconds.
    Millis(u64),
}

impl Ttl {
    /// The TTL of a live item (or of none), for backends that keep expiry times.
    pub fn of(item: Option<&Item>) -> Self {
        Clock::system().ttl_of(item)
    }
}

/// One page of a key scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    /// 0 when the scan is complete.
    pub cursor: u64,
    pub keys: Vec<Bytes>,
}

/// What a write does to the current item, decided the same way by every
/// backend that reads, decides and writes (memory, SQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorePlan {
    /// Write this value, flags and expiry.
    Write {
        value: Bytes,
        flags: u32,
        expiry: Expiry,
    },
    /// Leave the item alone and answer with this status.
    Refuse(StoreStatus),
}

/// Decides `store` against the live item `current` (memcached's and redis's
/// rules for add/replace/cas/append/prepend and KEEPTTL). `request_value`
/// turns the request's value into the stored one: a backend that keeps items
/// in memory copies it out of the read buffer, one that sends it on does not.
pub fn plan_store(
    store: &Store,
    current: Option<&Item>,
    request_value: impl FnOnce(&Bytes) -> Bytes,
) -> StorePlan {
    let (value, flags) = match (store.mode, current) {
        (StoreMode::Add, Some(_))
        | (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
            return StorePlan::Refuse(StoreStatus::NotStored)
        }
        (StoreMode::Cas(_), None) => return StorePlan::Refuse(StoreStatus::NotFound),
        (StoreMode::Cas(cas), Some(cur)) if cur.cas != cas => {
            return StorePlan::Refuse(StoreStatus::Exists)
        }
        (StoreMode::Append | StoreMode::AppendOrCreate, Some(cur)) => {
            (concat(&cur.value, &store.value), cur.flags)
        }
        (StoreMode::Prepend, Some(cur)) => (concat(&store.value, &cur.value), cur.flags),
        _ => (request_value(&store.value), store.flags),
    };
    let expiry = match store.expiry {
        ExpiryUpdate::Set(expiry) => expiry,
        ExpiryUpdate::Keep => current.map_or(Expiry::Never, |cur| cur.expiry),
    };
    StorePlan::Write {
        value,
        flags,
        expiry,
    }
}

fn concat(a: &[u8], b: &[u8]) -> Bytes {
    let mut out = bytes::BytesMut::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out.freeze()
}
