//! `shadow`: serve from the primary; mirror some traffic to a shadow.
//!
//! Every request is answered by the primary alone. A `fraction` of requests
//! (every one at 1.0; only writes with `writes_only`) is repeated on the
//! shadow in a background task after the primary has answered, so the
//! shadow adds neither latency nor errors. Each mirrored request's answer is
//! compared with the primary's (values and flags for reads, the outcome for
//! writes; never CAS ids or exact TTLs), and the counts are in `INFO keyway`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::Member;
use crate::backend::{Backend, Result};
use crate::op::{
    Arith, ArithOutcome, Db, ExpireCondition, Expiry, Item, ScanPage, Store, StoreOutcome, Ttl,
};

/// Settings of a [`Shadow`].
pub struct ShadowOptions {
    /// Share of requests mirrored, 0.0 to 1.0.
    pub fraction: f64,
    pub writes_only: bool,
}

/// What mirroring has seen so far.
#[derive(Debug, Default)]
pub struct ShadowCounts {
    pub mirrored: AtomicU64,
    pub mismatches: AtomicU64,
    pub errors: AtomicU64,
}

pub struct Shadow {
    primary: Member,
    shadow: Member,
    options: ShadowOptions,
    /// Requests seen, for deterministic sampling.
    seen: AtomicU64,
    counts: Arc<ShadowCounts>,
}

/// How two answers are compared: what a client would notice, not CAS ids or
/// TTLs that differ between stores by nature.
trait Observed: Send + 'static {
    fn same(&self, other: &Self) -> bool;
}

fn same_item(a: &Option<Item>, b: &Option<Item>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.value == b.value && a.flags == b.flags,
        (None, None) => true,
        _ => false,
    }
}

impl Observed for Vec<Option<Item>> {
    fn same(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| same_item(a, b))
    }
}
impl Observed for Option<Item> {
    fn same(&self, other: &Self) -> bool {
        same_item(self, other)
    }
}
impl Observed for StoreOutcome {
    fn same(&self, other: &Self) -> bool {
        self.status == other.status
    }
}
impl Observed for Ttl {
    fn same(&self, other: &Self) -> bool {
        matches!(
            (self, other),
            (Ttl::Missing, Ttl::Missing)
                | (Ttl::Persistent, Ttl::Persistent)
                | (Ttl::Millis(_), Ttl::Millis(_))
        )
    }
}
macro_rules! observed_by_eq {
    ($($type:ty),*) => {$(
        impl Observed for $type {
            fn same(&self, other: &Self) -> bool {
                self == other
            }
        }
    )*};
}
observed_by_eq!(bool, Vec<bool>, ArithOutcome, usize, ());

type Owned<T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>;

impl Shadow {
    pub fn new(primary: Member, shadow: Member, options: ShadowOptions) -> Self {
        Self {
            primary,
            shadow,
            options,
            seen: AtomicU64::new(0),
            counts: Arc::default(),
        }
    }

    pub fn counts(&self) -> &ShadowCounts {
        &self.counts
    }

    /// Whether this request is one of the `fraction` mirrored: exactly that
    /// share over any run of requests, without randomness.
    fn sampled(&self, write: bool) -> bool {
        if self.options.writes_only && !write {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        let fraction = self.options.fraction;
        (n * fraction).floor() != ((n + 1.0) * fraction).floor()
    }

    /// Repeats a request on the shadow in the background and compares its
    /// answer with the primary's.
    fn mirror<T: Observed + Clone>(
        &self,
        write: bool,
        primary: &Result<T>,
        op: impl FnOnce(Member) -> Owned<T>,
    ) {
        let Ok(expected) = primary else { return };
        if !self.sampled(write) {
            return;
        }
        let expected = expected.clone();
        let call = op(self.shadow.clone());
        let counts = self.counts.clone();
        tokio::spawn(async move {
            counts.mirrored.fetch_add(1, Ordering::Relaxed);
            match call.await {
                Ok(got) if got.same(&expected) => {}
                Ok(_) => {
                    counts.mismatches.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::debug!(%error, "shadow: mirrored request failed");
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

impl Backend for Shadow {
    async fn get(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        let result = self.primary.get(db, keys).await;
        let keys = keys.to_vec();
        self.mirror(false, &result, move |m| {
            Box::pin(async move { m.get(db, &keys).await })
        });
        result
    }

    async fn get_and_touch(
        &self,
        db: Db,
        keys: &[Bytes],
        expiry: Expiry,
    ) -> Result<Vec<Option<Item>>> {
        let result = self.primary.get_and_touch(db, keys, expiry).await;
        let keys = keys.to_vec();
        self.mirror(true, &result, move |m| {
            Box::pin(async move { m.get_and_touch(db, &keys, expiry).await })
        });
        result
    }

    async fn get_and_delete(&self, db: Db, key: &Bytes) -> Result<Option<Item>> {
        let result = self.primary.get_and_delete(db, key).await;
        let key = key.clone();
        self.mirror(true, &result, move |m| {
            Box::pin(async move { m.get_and_delete(db, &key).await })
        });
        result
    }

    async fn store(&self, db: Db, store: Store) -> Result<StoreOutcome> {
        let copy = store.clone();
        let result = self.primary.store(db, store).await;
        self.mirror(true, &result, move |m| {
            Box::pin(async move { m.store(db, copy).await })
        });
        result
    }

    async fn store_all_if_absent(&self, db: Db, pairs: Vec<(Bytes, Bytes)>) -> Result<bool> {
        let copy = pairs.clone();
        let result = self.primary.store_all_if_absent(db, pairs).await;
        self.mirror(true, &result, move |m| {
            Box::pin(async move { m.store_all_if_absent(db, copy).await })
        });
        result
    }

    async fn delete(&self, db: Db, keys: &[Bytes]) -> Result<Vec<bool>> {
        let result = self.primary.delete(db, keys).await;
        let keys = keys.to_vec();
        self.mirror(true, &result, move |m| {
            Box::pin(async move { m.delete(db, &keys).await })
        });
        result
    }

    async fn arith(&self, db: Db, key: &Bytes, arith: Arith) -> Result<ArithOutcome> {
        let result = self.primary.arith(db, key, arith).await;
        let key = key.clone();
        self.mirror(true, &result, move |m| {
            Box::pin(async move { m.arith(db, &key, arith).await })
        });
        result
    }

    async fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Result<bool> {
        let result = self.primary.expire(db, key, expiry, condition).await;
        let key = key.clone();
        self.mirror(true, &result, move |m| {
            Box::pin(async move { m.expire(db, &key, expiry, condition).await })
        });
        result
    }

    async fn ttl(&self, db: Db, key: &Bytes) -> Result<Ttl> {
        let result = self.primary.ttl(db, key).await;
        let key = key.clone();
        self.mirror(false, &result, move |m| {
            Box::pin(async move { m.ttl(db, &key).await })
        });
        result
    }

    /// Not mirrored: pages of two stores' key spaces are not comparable.
    async fn scan(
        &self,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<ScanPage> {
        self.primary.scan(db, cursor, pattern, count).await
    }

    async fn len(&self, db: Db) -> Result<usize> {
        self.primary.len(db).await
    }

    async fn flush(&self, db: Option<Db>) -> Result<()> {
        let result = self.primary.flush(db).await;
        self.mirror(true, &result, move |m| {
            Box::pin(async move { m.flush(db).await })
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::backend::AnyBackend;
    use crate::policy::{Node, Target};

    fn memory() -> Member {
        Member(Target::new(
            "memory",
            Node::Backend(Arc::new(AnyBackend::Memory(MemoryBackend::new(1 << 24)))),
        ))
    }

    #[test]
    fn sampling_mirrors_exactly_the_fraction() {
        for (fraction, writes_only, write, want) in [
            (0.25, false, false, 25),
            (1.0, false, false, 100),
            (0.0, false, true, 0),
            (0.5, true, true, 50),
            (1.0, true, false, 0),
        ] {
            let shadow = Shadow::new(
                memory(),
                memory(),
                ShadowOptions {
                    fraction,
                    writes_only,
                },
            );
            let sampled = (0..100).filter(|_| shadow.sampled(write)).count();
            assert_eq!(sampled, want, "{fraction} {writes_only} {write}");
        }
    }
}
