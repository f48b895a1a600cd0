//! The router: sends each key of an operation to the backend its route names,
//! splitting multi-key operations across backends and merging the answers
//! back in request order. Frontends call this; it never sees wire formats.

mod build;
mod passage;
mod table;

use build::Built;

use bytes::Bytes;

pub use passage::{Access, Passage, RedisRoute};
pub use table::RouteTable;

use crate::backend::{AnyBackend, BackendError, Ops};
use crate::config::Config;
use crate::django_sessions::{ended, Reason};
use crate::metrics::Family;
use crate::op::{
    groups, Arith, ArithOutcome, Db, ExpireCondition, Expiry, ExpiryUpdate, Item, ScanPage, Store,
    StoreMode, StoreOutcome, Ttl,
};
use crate::policy::{Policy, Target};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no route matches key {0:?}; add a catch-all [[routes]] glob = \"*\"")]
    NoRoute(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

pub type Result<T> = std::result::Result<T, RouteError>;

/// How long a start or reload waits for write-through caches to settle.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs a per-key batch call (`$call`, using `$backend: &Target` and
/// `$keys: &[Bytes]`): straight through when one backend owns every key (the
/// common case: no split, no copies, no merge), otherwise on each backend's
/// share, with the results put back in request order. A macro rather than a
/// closure-taking method because the call's future borrows both arguments.
macro_rules! per_key {
    ($router:expr, $all:expr, |$backend:ident, $keys:ident| $call:expr) => {{
        let router: &Router = $router;
        let all: &[Bytes] = $all;
        match router.single_backend(all)? {
            Some($backend) => {
                let $keys = all;
                Ok($call.await?)
            }
            None => {
                let mut answers = Vec::new();
                for (entry, positions) in router.split(all)? {
                    let group: Vec<Bytes> = positions.iter().map(|&p| all[p].clone()).collect();
                    let $backend: &Target = &router.entries[entry].target;
                    let $keys: &[Bytes] = &group;
                    answers.push((positions, $call.await?));
                }
                Ok(groups::in_request_order(all.len(), answers))
            }
        }
    }};
}

/// The index of the route Django's session keys take, if any.
pub fn session_route(config: &Config) -> Option<usize> {
    RouteTable::compile(&config.routes, |_| 0)
        .rule_for(crate::config::SAMPLE_SESSION_KEY.as_bytes())
}

/// Backend calls one SCAN page may take (shards and targets passed over
/// when empty): bounds a SCAN whose pattern matches little.
const SCAN_STEPS: usize = 64;

pub struct Router {
    table: RouteTable,
    /// What route entries point at: every backend in config order, then the
    /// policies (each after its members).
    entries: Vec<Entry>,
    /// Slots some route uses, each once, in route order: what
    /// KEYS/SCAN/DBSIZE walk.
    routed: Vec<usize>,
    /// Per entry: a backend this router's routes store in, so that a flush
    /// through one listener's keyspace leaves the other's alone.
    reaches: Vec<bool>,
    /// Every redis backend (RESP commands on its keys may be forwarded).
    redis: Vec<RedisRoute>,
    /// The redis backend every route goes to, if one (not a cluster) does.
    sole_redis: Option<RedisRoute>,
    /// The one redis server (not a cluster) the routes reach, directly or
    /// as a tier's member: where pub/sub and MONITOR go.
    redis_for_channels: Option<RedisRoute>,
    /// Whether any route reaches a redis server (else pub/sub is Keyway's own).
    reaches_redis: bool,
    /// `[sessions]`: whether ended sessions are kept ended, and how long.
    sessions: crate::config::Sessions,
}

/// A backend or policy, as the router holds it.
#[derive(Clone)]
struct Entry {
    name: String,
    target: Target,
    /// What it was built from, so that a reload can keep it when that did
    /// not change (its connections, its figures).
    built: Built,
    /// A backend a route marks protected: flushes pass it over.
    protected: bool,
}

impl Router {
    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.name == name)
    }

    /// Requests of `family` through the targets routes name (each request
    /// once, not again for a policy's members).
    pub fn routed_requests(&self, family: Family) -> u64 {
        self.routed
            .iter()
            .map(|&entry| self.entries[entry].target.stats.family(family).requests)
            .sum()
    }

    /// Every backend and policy, with its figures.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.entries.iter().map(|entry| &entry.target)
    }

    /// Every backend with its configured name.
    pub fn backends(&self) -> impl Iterator<Item = (&str, &AnyBackend)> {
        self.entries
            .iter()
            .filter_map(|entry| Some((entry.name.as_str(), entry.target.backend()?)))
    }

    /// Every backend this router's routes store in (a policy's members
    /// included), with its configured name.
    pub fn reached_backends(&self) -> impl Iterator<Item = (&str, &AnyBackend)> {
        self.entries
            .iter()
            .zip(&self.reaches)
            .filter(|(_, reached)| **reached)
            .filter_map(|(entry, _)| Some((entry.name.as_str(), entry.target.backend()?)))
    }

    /// The backend or policy configured as `name`.
    pub fn target(&self, name: &str) -> Option<&Target> {
        Some(&self.entry(name)?.target)
    }

    /// Waits (briefly) until every write-through cache that follows a
    /// change log has applied its first poll, which empties it: started
    /// before serving, so that emptying cannot drop copies of the first
    /// requests' writes. A database that does not answer does not hold the
    /// start up: its caches stay unused until it does.
    pub async fn settle_caches(&self) {
        let waits = self.policies().filter_map(|(_, policy)| match policy {
            Policy::WriteThrough(wt) => Some(wt.coherence().settled(SETTLE_LIMIT)),
            _ => None,
        });
        futures_util::future::join_all(waits).await;
    }

    /// Every policy with its configured name.
    pub fn policies(&self) -> impl Iterator<Item = (&str, &Policy)> {
        self.entries
            .iter()
            .filter_map(|entry| Some((entry.name.as_str(), entry.target.policy()?)))
    }

    fn backend_for(&self, key: &[u8]) -> Result<&Target> {
        self.table
            .route(key)
            .map(|entry| &self.entries[entry].target)
            .ok_or_else(|| RouteError::NoRoute(String::from_utf8_lossy(key).into_owned()))
    }

    /// Key positions grouped by the entry of their route, in order within
    /// each group.
    fn split(&self, keys: &[Bytes]) -> Result<Vec<(usize, Vec<usize>)>> {
        let owned = keys.iter().enumerate().map(|(position, key)| {
            let entry = self
                .table
                .route(key)
                .ok_or_else(|| RouteError::NoRoute(String::from_utf8_lossy(key).into_owned()))?;
            Ok((entry, position))
        });
        Ok(groups::by_owner(
            owned.collect::<Result<Vec<_>>>()?,
            |a, b| a == b,
        ))
    }

    /// The one backend that owns every key, if there is one (`None` for no
    /// keys, or keys spread over several backends).
    fn single_backend(&self, keys: &[Bytes]) -> Result<Option<&Target>> {
        let Some(first) = keys.first() else {
            return Ok(None);
        };
        let entry = self.table.route(first);
        if keys[1..].iter().any(|key| self.table.route(key) != entry) {
            return Ok(None);
        }
        self.backend_for(first).map(Some)
    }

    pub async fn get(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        per_key!(self, keys, |backend, keys| backend.get(db, keys))
    }

    pub async fn get_and_touch(
        &self,
        db: Db,
        keys: &[Bytes],
        expiry: Expiry,
    ) -> Result<Vec<Option<Item>>> {
        let limits = |key: &Bytes| self.table.route_with_limits(key).map(|(_, l)| l);
        let first = keys.first().and_then(limits).unwrap_or_default();
        if keys
            .iter()
            .all(|key| limits(key).unwrap_or_default() == first)
        {
            let expiry = first.apply(expiry);
            return per_key!(self, keys, |backend, keys| backend
                .get_and_touch(db, keys, expiry));
        }
        // Routes with different TTL limits: each key its own expiry.
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            let (target, limits) = self.route_limited(key)?;
            let item = target.get_and_touch(db, std::slice::from_ref(key), limits.apply(expiry));
            items.extend(item.await?);
        }
        Ok(items)
    }

    /// `expiry` within the TTL limits of `key`'s route.
    /// The target for `key` and its route's TTL limits, in one lookup.
    fn route_limited(&self, key: &[u8]) -> Result<(&Target, table::TtlLimits)> {
        self.table
            .route_with_limits(key)
            .map(|(entry, limits)| (&self.entries[entry].target, limits))
            .ok_or_else(|| RouteError::NoRoute(String::from_utf8_lossy(key).into_owned()))
    }

    pub async fn get_and_delete(&self, db: Db, key: &Bytes) -> Result<Option<Item>> {
        let target = self.backend_for(key)?;
        if self.keeps_ended(key) {
            let item = target.get(db, std::slice::from_ref(key)).await?;
            self.end_session(db, key, Reason::Logout, None).await?;
            return Ok(item.into_iter().next().flatten());
        }
        Ok(target.get_and_delete(db, key).await?)
    }

    pub async fn store(&self, db: Db, mut store: Store) -> Result<StoreOutcome> {
        let (target, limits) = self.route_limited(&store.key)?;
        if let ExpiryUpdate::Set(expiry) = store.expiry {
            store.expiry = ExpiryUpdate::Set(limits.apply(expiry));
        }
        if self.keeps_ended(&store.key) {
            return Ok(ended::store_unless_ended(target, db, store).await?);
        }
        Ok(target.store(db, store).await?)
    }

    /// Whether `key` is a Django session key kept ended once deleted.
    fn keeps_ended(&self, key: &[u8]) -> bool {
        self.sessions.keep_ended && keyway_protocol::django::session_key(key).is_some()
    }

    /// Ends the session stored under `key` (marked ended first, so a write
    /// racing the delete cannot bring it back); true if it existed. The
    /// audit line names `owner` when the caller knows it.
    pub async fn end_session(
        &self,
        db: Db,
        key: &Bytes,
        reason: Reason,
        owner: Option<&str>,
    ) -> Result<bool> {
        let (target, limits) = self.route_limited(key)?;
        let keys = std::slice::from_ref(key);
        if self.sessions.keep_ended {
            let lifetime = Expiry::after_ms(self.sessions.ended_seconds.saturating_mul(1000));
            ended::mark(target, db, keys, limits.apply(lifetime)).await?;
        }
        let existed = target.delete(db, keys).await?[0];
        if existed {
            crate::django_sessions::audit_ended(reason, key, owner, target.stats.name());
        }
        Ok(existed)
    }

    /// Sets every pair (redis MSET). Each set is atomic; the group is not.
    pub async fn store_many(&self, db: Db, pairs: Vec<(Bytes, Bytes)>) -> Result<()> {
        for (key, value) in pairs {
            let store = Store::new(key, value, StoreMode::Set, ExpiryUpdate::Set(Expiry::Never));
            self.store(db, store).await?;
        }
        Ok(())
    }

    /// MSETNX: atomic only when one backend owns every key, which is the
    /// only case redis itself allows in a cluster; otherwise an error says so.
    pub async fn store_all_if_absent(
        &self,
        db: Db,
        pairs: Vec<(Bytes, Bytes)>,
    ) -> Result<Option<bool>> {
        let keys: Vec<Bytes> = pairs.iter().map(|(k, _)| k.clone()).collect();
        if keys.is_empty() {
            return Ok(Some(true));
        }
        let Some(backend) = self.single_backend(&keys)? else {
            return Ok(None);
        };
        // An ended session counts as present (as for a single write: see
        // `ended`), before and after the write.
        let sessions: Vec<Bytes> = keys
            .into_iter()
            .filter(|key| self.keeps_ended(key))
            .collect();
        if !sessions.is_empty() && ended::any_ended(backend, db, &sessions).await? {
            return Ok(Some(false));
        }
        let stored = backend.store_all_if_absent(db, pairs).await?;
        if stored && !sessions.is_empty() && ended::any_ended(backend, db, &sessions).await? {
            backend.delete(db, &sessions).await?;
            return Ok(Some(false));
        }
        Ok(Some(stored))
    }

    pub async fn delete(&self, db: Db, keys: &[Bytes]) -> Result<Vec<bool>> {
        if keys.iter().any(|key| self.keeps_ended(key)) {
            let mut existed = Vec::with_capacity(keys.len());
            for key in keys {
                existed.push(if self.keeps_ended(key) {
                    self.end_session(db, key, Reason::Logout, None).await?
                } else {
                    self.backend_for(key)?
                        .delete(db, std::slice::from_ref(key))
                        .await?[0]
                });
            }
            return Ok(existed);
        }
        per_key!(self, keys, |backend, keys| backend.delete(db, keys))
    }

    pub async fn arith(&self, db: Db, key: &Bytes, arith: Arith) -> Result<ArithOutcome> {
        Ok(self.backend_for(key)?.arith(db, key, arith).await?)
    }

    pub async fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Result<bool> {
        let (target, limits) = self.route_limited(key)?;
        Ok(target
            .expire(db, key, limits.apply(expiry), condition)
            .await?)
    }

    pub async fn ttl(&self, db: Db, key: &Bytes) -> Result<Ttl> {
        Ok(self.backend_for(key)?.ttl(db, key).await?)
    }

    /// Scans route target after route target (those that can list keys):
    /// the cursor's top byte is the position in `routed`. A page is filled
    /// from as many targets (and a memory store's shards) as it takes to
    /// reach `count`, so a small keyspace comes back whole in one call, as
    /// from redis; at most [`SCAN_STEPS`] backend calls per page.
    pub async fn scan(
        &self,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<ScanPage> {
        let mut entry = (cursor >> 56) as usize;
        let mut inner = cursor & crate::backend::SCAN_CURSOR_MASK;
        let mut keys = Vec::new();
        for _ in 0..SCAN_STEPS {
            let Some(backend) = self.routed.get(entry).map(|&t| &self.entries[t].target) else {
                break;
            };
            let wanted = count.saturating_sub(keys.len()).max(1);
            // Backends that cannot list keys (memcached) are passed over, as documented.
            let page = match backend.scan(db, inner, pattern, wanted).await {
                Err(BackendError::Unsupported(_)) => ScanPage {
                    cursor: 0,
                    keys: Vec::new(),
                },
                page => page?,
            };
            keys.extend(page.keys);
            match page.cursor {
                0 => (entry, inner) = (entry + 1, 0),
                next => inner = next,
            }
            if entry >= self.routed.len() {
                return Ok(ScanPage { cursor: 0, keys });
            }
            if keys.len() >= count {
                break;
            }
        }
        let cursor = match entry < self.routed.len() {
            true => ((entry as u64) << 56) | inner,
            false => 0,
        };
        Ok(ScanPage { cursor, keys })
    }

    /// Live keys in `db` over every route target that can count them.
    pub async fn len(&self, db: Db) -> Result<usize> {
        let mut total = 0;
        for backend in self.routed.iter().map(|&t| &self.entries[t].target) {
            total += match backend.len(db).await {
                Err(BackendError::Unsupported(_)) => 0, // cannot count: passed over, as for SCAN
                len => len?,
            };
        }
        Ok(total)
    }

    /// Flushes every backend but the protected ones (see `RouteConfig::protected`).
    pub async fn flush(&self, db: Option<Db>) -> Result<()> {
        for (entry, reached) in self.entries.iter().zip(&self.reaches) {
            if let Some(backend) = entry
                .target
                .backend()
                .filter(|_| *reached && !entry.protected)
            {
                backend.flush(db).await?;
            }
        }
        Ok(())
    }
}
