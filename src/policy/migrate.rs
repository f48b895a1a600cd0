//! `migrate`: moving a live store from one member to another.
//!
//! Writes go to the new member (`to`); deletes to both. Reads try `to`,
//! then the old member (`from`), and copy what they find over with its
//! remaining TTL and flags (only where `to` has nothing, so a newer write
//! is never overwritten), answering with the copy so CAS ids are `to`'s.
//! A write that depends on the current item (add, replace, cas, append,
//! incr, TTL changes) copies it over first. When `from` fails, its keys
//! read as misses: it is the store being retired, and reads must keep
//! working without it; deletes fail instead, since a key left behind there
//! would be copied back later.

use bytes::Bytes;

use super::{copy_of, fill, misses, Member};
use crate::backend::{Backend, BackendError, Ops, Result};
use crate::op::{
    now_ms, Arith, ArithOutcome, Db, ExpireCondition, Expiry, Item, ScanPage, Store, StoreOutcome,
    Ttl,
};

/// SCAN cursors of the second phase (walking `from`) carry this bit; the
/// router keeps the top byte for itself, members' cursors stay below it.
const FROM_PHASE: u64 = 1 << 55;

pub struct Migrate {
    from: Member,
    to: Member,
}

impl Migrate {
    pub fn new(from: Member, to: Member) -> Self {
        Self { from, to }
    }

    /// Items for `keys` (which `to` lacks), read from `from` and copied to
    /// `to`; `None` where `from` has nothing (or is failing).
    async fn copy_over(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        let found = match self.from.get(db, keys).await {
            Ok(found) => found,
            Err(error) => {
                // Logged once as a backend state change; per request only at debug.
                tracing::debug!(%error, "migrate: the old member failed; its keys read as misses");
                return Ok(vec![None; keys.len()]);
            }
        };
        if found.iter().all(Option::is_none) {
            return Ok(found);
        }
        let now = now_ms();
        for (key, item) in keys.iter().zip(&found) {
            if let Some(item) = item.as_ref().filter(|i| !i.expiry.is_expired_at(now)) {
                self.to.store(db, copy_of(key, item)).await?;
            }
        }
        // Read back from `to`: the copies' CAS ids, or a newer write's item.
        self.to.get(db, keys).await
    }

    /// Makes sure `to` has `key` if `from` does, before a write that depends on it.
    async fn ensure_copied(&self, db: Db, key: &Bytes) -> Result<()> {
        let keys = std::slice::from_ref(key);
        if self.to.get(db, keys).await?[0].is_none() {
            self.copy_over(db, keys).await?;
        }
        Ok(())
    }
}

impl Backend for Migrate {
    async fn get(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        let mut items = self.to.get(db, keys).await?;
        let (missing, missing_keys) = misses(keys, &items);
        if missing.is_empty() {
            return Ok(items);
        }
        let found = self.copy_over(db, &missing_keys).await?;
        fill(&mut items, missing, found);
        Ok(items)
    }

    async fn get_and_touch(
        &self,
        db: Db,
        keys: &[Bytes],
        expiry: Expiry,
    ) -> Result<Vec<Option<Item>>> {
        self.get(db, keys).await?;
        self.to.get_and_touch(db, keys, expiry).await
    }

    async fn get_and_delete(&self, db: Db, key: &Bytes) -> Result<Option<Item>> {
        let old = self.from.get_and_delete(db, key).await?;
        let new = self.to.get_and_delete(db, key).await?;
        Ok(new.or(old))
    }

    async fn store(&self, db: Db, store: Store) -> Result<StoreOutcome> {
        if !store.is_plain_set() {
            self.ensure_copied(db, &store.key).await?;
        }
        self.to.store(db, store).await
    }

    async fn store_all_if_absent(&self, db: Db, pairs: Vec<(Bytes, Bytes)>) -> Result<bool> {
        for (key, _) in &pairs {
            self.ensure_copied(db, key).await?;
        }
        self.to.store_all_if_absent(db, pairs).await
    }

    /// Both members, the old one first; if it fails the delete fails: a
    /// key left there would be copied back by the next read.
    async fn delete(&self, db: Db, keys: &[Bytes]) -> Result<Vec<bool>> {
        let old = self.from.delete(db, keys).await?;
        let new = self.to.delete(db, keys).await?;
        Ok(old.into_iter().zip(new).map(|(a, b)| a || b).collect())
    }

    async fn arith(&self, db: Db, key: &Bytes, arith: Arith) -> Result<ArithOutcome> {
        self.ensure_copied(db, key).await?;
        self.to.arith(db, key, arith).await
    }

    async fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Result<bool> {
        self.ensure_copied(db, key).await?;
        self.to.expire(db, key, expiry, condition).await
    }

    async fn ttl(&self, db: Db, key: &Bytes) -> Result<Ttl> {
        match self.to.ttl(db, key).await? {
            Ttl::Missing => Ok(self.from.ttl(db, key).await.unwrap_or(Ttl::Missing)),
            ttl => Ok(ttl),
        }
    }

    /// `to`'s keys, then `from`'s that `to` does not have yet. A member that
    /// cannot list keys (memcached) is passed over, as the router does.
    async fn scan(
        &self,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<ScanPage> {
        let unsupported = |result: Result<ScanPage>| match result {
            Err(BackendError::Unsupported(_)) => Ok(ScanPage {
                cursor: 0,
                keys: Vec::new(),
            }),
            other => other,
        };
        if cursor & FROM_PHASE == 0 {
            let page = unsupported(self.to.scan(db, cursor, pattern, count).await)?;
            let cursor = if page.cursor == 0 {
                FROM_PHASE
            } else {
                page.cursor
            };
            return Ok(ScanPage {
                cursor,
                keys: page.keys,
            });
        }
        let page = unsupported(
            self.from
                .scan(db, cursor & !FROM_PHASE, pattern, count)
                .await,
        )?;
        let present = if page.keys.is_empty() {
            Vec::new()
        } else {
            self.to.get(db, &page.keys).await?
        };
        let keys = page
            .keys
            .into_iter()
            .zip(present)
            .filter_map(|(key, in_to)| in_to.is_none().then_some(key))
            .collect();
        let cursor = match page.cursor {
            0 => 0,
            next => next | FROM_PHASE,
        };
        Ok(ScanPage { cursor, keys })
    }

    /// Keys in `to` plus keys in `from` (a key in both counts twice until
    /// the old member's copy is deleted or expires).
    async fn len(&self, db: Db) -> Result<usize> {
        let count = |result: Result<usize>| match result {
            Err(BackendError::Unsupported(_)) => Ok(0),
            other => other,
        };
        Ok(count(self.to.len(db).await)? + count(self.from.len(db).await)?)
    }

    async fn flush(&self, db: Option<Db>) -> Result<()> {
        self.from.flush(db).await?;
        self.to.flush(db).await
    }
}
