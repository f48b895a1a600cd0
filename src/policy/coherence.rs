//! Keeping a write-through cache true to its durable store when other
//! Keyways (other hosts, other processes) write the same store.
//!
//! Two guards, one per kind of race:
//! - Across processes: the durable SQL store's change log
//!   ([`crate::backend::sql::changes`]). A task follows the store's feed and
//!   drops every key another writer changed from the cache. The cache is
//!   trusted only while the last poll it applied began less than
//!   `max_staleness_ms` ago; otherwise reads skip it and go to the durable
//!   store. So no read serves a value older than that bound, whatever
//!   happens to the database, the network or this process's scheduling.
//! - Within the process: a generation counter per key bucket, bumped by
//!   every write and every invalidation. A copy is put into the cache only if
//!   its key's generation did not move between reading the truth and storing
//!   the copy; if it moved, the copy is dropped again. This closes the race
//!   of a refill that read the old row just before a write committed (here
//!   or on another host) and stored it just after the invalidation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::Member;
use crate::backend::sql::changes::{ChangeKind, Poll, WRITE_ORIGIN};
use crate::backend::Ops;
use crate::op::Db;

/// Generation buckets: keys share one when their hashes collide, which
/// costs only a needless miss.
const BUCKETS: usize = 4096;

pub struct Coherence {
    /// This cache's name in the change log, to skip its own writes.
    origin: u64,
    generations: Box<[AtomicU64]>,
    hasher: ahash::RandomState,
    watch: Option<Watch>,
    pub figures: CoherenceFigures,
}

struct Watch {
    base: Instant,
    /// Start of the last applied poll, in nanoseconds after `base`, plus one
    /// (0: none applied yet).
    applied: AtomicU64,
    max_staleness: Duration,
    _stop: DropGuard,
}

/// What `/metrics` and INFO show of a write-through cache's coherence.
#[derive(Default)]
pub struct CoherenceFigures {
    /// Keys other writers changed that the cache dropped.
    pub invalidations: AtomicU64,
    /// Reads sent to the durable store because the cache was not trusted.
    pub fallback_reads: AtomicU64,
    /// Times the whole cache was dropped (feed restarted, or fell behind).
    pub resets: AtomicU64,
}

impl Coherence {
    /// Coherence for a cache that only this process's writes can change.
    pub fn local() -> Arc<Self> {
        Arc::new(Self::new(None))
    }

    /// Coherence that follows `polls` (a durable store's change feed),
    /// dropping changed keys from `cache`.
    pub fn watching(
        cache: Member,
        polls: broadcast::Receiver<Arc<Poll>>,
        max_staleness: Duration,
    ) -> Arc<Self> {
        let stop = CancellationToken::new();
        let coherence = Arc::new(Self::new(Some(Watch {
            base: Instant::now(),
            applied: AtomicU64::new(0),
            max_staleness,
            _stop: stop.clone().drop_guard(),
        })));
        tokio::spawn(follow(Arc::downgrade(&coherence), cache, polls, stop));
        coherence
    }

    fn new(watch: Option<Watch>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        // Random per process, distinct per cache within it.
        let process = ahash::RandomState::new().hash_one(std::process::id());
        Self {
            origin: (process | 1) ^ (NEXT.fetch_add(1, Ordering::Relaxed) << 1),
            generations: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            hasher: ahash::RandomState::new(),
            watch,
            figures: CoherenceFigures::default(),
        }
    }

    /// Whether the cache may answer reads now.
    pub fn trusted(&self) -> bool {
        self.lag().is_none_or(|lag| lag < self.max_staleness())
    }

    /// How long ago the last applied poll began (`None` when nothing is
    /// watched; `Duration::MAX` before the first).
    pub fn lag(&self) -> Option<Duration> {
        let watch = self.watch.as_ref()?;
        let applied = watch.applied.load(Ordering::Acquire);
        if applied == 0 {
            return Some(Duration::MAX);
        }
        let now = watch.base.elapsed().as_nanos() as u64 + 1;
        Some(Duration::from_nanos(now.saturating_sub(applied)))
    }

    pub fn max_staleness(&self) -> Duration {
        self.watch
            .as_ref()
            .map_or(Duration::MAX, |watch| watch.max_staleness)
    }

    /// Returns once the first poll is applied, or after `limit`.
    pub async fn settled(&self, limit: Duration) {
        let Some(watch) = &self.watch else { return };
        let deadline = Instant::now() + limit;
        while watch.applied.load(Ordering::Acquire) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn is_watching(&self) -> bool {
        self.watch.is_some()
    }

    /// Counts a read that skipped the cache.
    pub fn fell_back(&self) {
        self.figures.fallback_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `write` (a call to the durable store) as this cache's writer.
    pub async fn as_writer<T>(&self, write: impl std::future::Future<Output = T>) -> T {
        WRITE_ORIGIN.scope(self.origin, write).await
    }

    fn bucket(&self, db: Db, key: &[u8]) -> &AtomicU64 {
        let hash = self.hasher.hash_one((db, key));
        &self.generations[hash as usize % BUCKETS]
    }

    /// The key's generation now (taken before reading the truth).
    pub fn generation(&self, db: Db, key: &[u8]) -> u64 {
        self.bucket(db, key).load(Ordering::SeqCst)
    }

    /// Marks the key changed; returns its new generation.
    pub fn bump(&self, db: Db, key: &[u8]) -> u64 {
        self.bucket(db, key).fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn bump_all(&self) {
        for generation in self.generations.iter() {
            generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// After a write of `key` that began at generation `before`: marks the
    /// key changed and says whether the write's item may be cached (no other
    /// change of the key came in meanwhile), with the generation to check
    /// after caching it.
    pub fn settle(&self, db: Db, key: &[u8], before: u64) -> Option<u64> {
        let after = self.bump(db, key);
        (after == before + 1).then_some(after)
    }

    /// Applies one poll; false when the cache could not be brought up to
    /// date (it is then reset at the next poll).
    async fn apply(&self, cache: &Member, poll: &Poll, reset: bool) -> bool {
        if poll.gap || reset {
            self.bump_all();
            if let Err(error) = cache.flush(None).await {
                tracing::warn!(%error, "write-through: cache not emptied; it stays unused until it is");
                return false;
            }
            self.figures.resets.fetch_add(1, Ordering::Relaxed);
        }
        let mut keys: Vec<(Db, Bytes)> = Vec::new();
        for change in poll.changes.iter().filter(|c| c.origin != self.origin) {
            let flushed = match change.kind {
                ChangeKind::Key => {
                    self.bump(change.db, &change.key);
                    keys.push((change.db, change.key.clone()));
                    continue;
                }
                ChangeKind::FlushDb => Some(change.db),
                ChangeKind::FlushAll => None,
            };
            self.bump_all();
            if cache.flush(flushed).await.is_err() {
                return false;
            }
        }
        keys.sort_unstable();
        for group in keys.chunk_by(|a, b| a.0 == b.0) {
            let db = group[0].0;
            let group: Vec<Bytes> = group.iter().map(|(_, key)| key.clone()).collect();
            if cache.delete(db, &group).await.is_err() {
                return false;
            }
            self.figures
                .invalidations
                .fetch_add(group.len() as u64, Ordering::Relaxed);
        }
        true
    }

    fn mark_applied(&self, started: Instant) {
        if let Some(watch) = &self.watch {
            let at = started.saturating_duration_since(watch.base).as_nanos() as u64 + 1;
            watch.applied.fetch_max(at, Ordering::Release);
        }
    }
}

/// Applies every poll of the feed to the cache until the policy is dropped.
async fn follow(
    coherence: Weak<Coherence>,
    cache: Member,
    mut polls: broadcast::Receiver<Arc<Poll>>,
    stop: CancellationToken,
) {
    // A new cache may hold what an earlier policy put there: start afresh.
    let mut reset = true;
    loop {
        let received = tokio::select! {
            received = polls.recv() => received,
            () = stop.cancelled() => return,
        };
        let Some(coherence) = coherence.upgrade() else {
            return;
        };
        match received {
            Ok(poll) => {
                if coherence.apply(&cache, &poll, reset).await {
                    reset = false;
                    coherence.mark_applied(poll.started);
                } else {
                    reset = true;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "write-through: fell behind the change feed; the cache is emptied"
                );
                reset = true;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sql::changes::Change;
    use crate::backend::{memory::MemoryBackend, AnyBackend, Ops};
    use crate::op::{Store, StoreMode};
    use crate::policy::{Node, Target};

    fn memory() -> Member {
        let backend = AnyBackend::Memory(MemoryBackend::new(1 << 20));
        Member(Target::new("hot", Node::Backend(Arc::new(backend))))
    }

    async fn put(cache: &Member, key: &'static [u8]) {
        let store = Store::new(
            Bytes::from_static(key),
            Bytes::from_static(b"v"),
            StoreMode::Set,
            crate::op::ExpiryUpdate::Set(crate::op::Expiry::Never),
        );
        cache.store(0, store).await.unwrap();
    }

    async fn cached(cache: &Member, key: &'static [u8]) -> bool {
        cache.0.get(0, &[Bytes::from_static(key)]).await.unwrap()[0].is_some()
    }

    fn change(key: &'static [u8], origin: u64) -> Change {
        Change {
            kind: ChangeKind::Key,
            db: 0,
            key: Bytes::from_static(key),
            origin,
        }
    }

    #[test]
    fn a_write_may_cache_its_item_only_if_nothing_else_changed_the_key_meanwhile() {
        let coherence = Coherence::new(None);
        let before = coherence.generation(0, b"k");
        assert_eq!(coherence.settle(0, b"k", before), Some(before + 1));
        // Two writes that began together: the second to finish must not cache.
        let (a, b) = (coherence.generation(0, b"k"), coherence.generation(0, b"k"));
        assert!(coherence.settle(0, b"k", a).is_some());
        assert!(coherence.settle(0, b"k", b).is_none());
    }

    #[tokio::test]
    async fn others_changes_are_dropped_own_ones_kept_and_a_gap_empties_the_cache() {
        let cache = memory();
        let coherence = Coherence::new(None);
        for key in [&b"mine"[..], b"theirs", b"other"] {
            put(&cache, key).await;
        }
        let poll = Poll {
            started: Instant::now(),
            changes: vec![change(b"mine", coherence.origin), change(b"theirs", 7)],
            gap: false,
        };
        let stamp = coherence.generation(0, b"theirs");
        assert!(coherence.apply(&cache, &poll, false).await);
        assert!(cached(&cache, b"mine").await);
        assert!(!cached(&cache, b"theirs").await);
        assert!(coherence.generation(0, b"theirs") > stamp);
        assert_eq!(coherence.figures.invalidations.load(Ordering::Relaxed), 1);
        let gap = Poll {
            started: Instant::now(),
            changes: Vec::new(),
            gap: true,
        };
        assert!(coherence.apply(&cache, &gap, false).await);
        assert!(!cached(&cache, b"other").await);
        assert_eq!(coherence.figures.resets.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_cache_is_trusted_only_within_the_bound_of_the_last_applied_poll() {
        assert!(Coherence::local().trusted());
        let watching = Coherence::new(Some(Watch {
            base: Instant::now(),
            applied: AtomicU64::new(0),
            max_staleness: Duration::from_millis(40),
            _stop: CancellationToken::new().drop_guard(),
        }));
        assert!(!watching.trusted(), "no poll applied yet");
        watching.mark_applied(Instant::now());
        assert!(watching.trusted());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!watching.trusted(), "the last poll is older than the bound");
        watching.mark_applied(Instant::now());
        assert!(watching.trusted());
    }
}
