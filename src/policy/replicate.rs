//! `replicate`: every write to every member; reads from the first member
//! that answers.
//!
//! Writes (sets and every other change, deletes, TTL changes, flushes) go
//! to all members concurrently. With `ack = "all"` (the default) the client
//! is answered once every member has succeeded, with the first member's
//! answer; if any member fails the client gets that error (the members that
//! succeeded keep the write). With `ack = "first"` the client is answered
//! as soon as one member has succeeded; the others finish in the background.
//! Reads go to the first member, and to the next when one fails; a get's
//! misses are asked of the next member too, so a member that restarted empty
//! does not hide what the others hold.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::future::join_all;

use super::{BoxFuture, Member};
use crate::backend::{Backend, BackendError, Result};
use crate::config::Ack;
use crate::op::{
    Arith, ArithOutcome, Db, ExpireCondition, Expiry, Item, ScanPage, Store, StoreOutcome, Ttl,
};

pub struct Replicate {
    members: Vec<Member>,
    ack: Ack,
}

type Owned<T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>;

impl Replicate {
    pub fn new(members: Vec<Member>, ack: Ack) -> Self {
        Self { members, ack }
    }

    /// A read: the first member, then the next when one fails.
    async fn read<'a, T>(&'a self, op: impl Fn(&'a Member) -> BoxFuture<'a, T>) -> Result<T> {
        let mut last = None;
        for member in &self.members {
            match op(member).await {
                Err(error @ BackendError::Unavailable { .. }) => last = Some(error),
                other => return other,
            }
        }
        Err(last.expect("a policy has members"))
    }

    /// A write on every member. `op` builds each member's call from owned
    /// arguments, so that with `ack = "first"` the others can finish after
    /// the client has its answer.
    async fn write<T: Send + 'static>(&self, op: impl Fn(Member) -> Owned<T>) -> Result<T> {
        match self.ack {
            Ack::All => {
                let results = join_all(self.members.iter().cloned().map(&op)).await;
                let mut answer = None;
                for result in results {
                    let value = result?;
                    answer.get_or_insert(value);
                }
                Ok(answer.expect("a policy has members"))
            }
            Ack::First => {
                let (sender, mut results) = tokio::sync::mpsc::unbounded_channel();
                for member in self.members.iter().cloned() {
                    let call = op(member);
                    let sender = sender.clone();
                    tokio::spawn(async move {
                        let _ = sender.send(call.await);
                    });
                }
                drop(sender);
                let mut last = None;
                while let Some(result) = results.recv().await {
                    match result {
                        Ok(value) => return Ok(value),
                        Err(error) => last = Some(error),
                    }
                }
                Err(last.expect("a policy has members"))
            }
        }
    }
}

impl Backend for Replicate {
    /// Misses on one member are asked of the next: a member that restarted
    /// empty (memcached) still lets the others answer.
    async fn get(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        let mut items: Vec<Option<Item>> = vec![None; keys.len()];
        let mut missing: Vec<usize> = (0..keys.len()).collect();
        let mut answered = false;
        let mut last = None;
        for member in &self.members {
            let asked: Vec<Bytes> = missing.iter().map(|&i| keys[i].clone()).collect();
            match member.get(db, &asked).await {
                Ok(found) => {
                    answered = true;
                    for (&position, item) in missing.iter().zip(found) {
                        items[position] = item;
                    }
                    missing.retain(|&position| items[position].is_none());
                    if missing.is_empty() {
                        break;
                    }
                }
                Err(error @ BackendError::Unavailable { .. }) => last = Some(error),
                Err(error) => return Err(error),
            }
        }
        match (answered, last) {
            (false, Some(error)) => Err(error),
            _ => Ok(items),
        }
    }

    async fn get_and_touch(
        &self,
        db: Db,
        keys: &[Bytes],
        expiry: Expiry,
    ) -> Result<Vec<Option<Item>>> {
        let keys = keys.to_vec();
        self.write(move |m| {
            let keys = keys.clone();
            Box::pin(async move { m.get_and_touch(db, &keys, expiry).await })
        })
        .await
    }

    async fn get_and_delete(&self, db: Db, key: &Bytes) -> Result<Option<Item>> {
        let key = key.clone();
        self.write(move |m| {
            let key = key.clone();
            Box::pin(async move { m.get_and_delete(db, &key).await })
        })
        .await
    }

    async fn store(&self, db: Db, store: Store) -> Result<StoreOutcome> {
        self.write(move |m| {
            let store = store.clone();
            Box::pin(async move { m.store(db, store).await })
        })
        .await
    }

    async fn store_all_if_absent(&self, db: Db, pairs: Vec<(Bytes, Bytes)>) -> Result<bool> {
        self.write(move |m| {
            let pairs = pairs.clone();
            Box::pin(async move { m.store_all_if_absent(db, pairs).await })
        })
        .await
    }

    async fn delete(&self, db: Db, keys: &[Bytes]) -> Result<Vec<bool>> {
        let keys = keys.to_vec();
        self.write(move |m| {
            let keys = keys.clone();
            Box::pin(async move { m.delete(db, &keys).await })
        })
        .await
    }

    async fn arith(&self, db: Db, key: &Bytes, arith: Arith) -> Result<ArithOutcome> {
        let key = key.clone();
        self.write(move |m| {
            let key = key.clone();
            Box::pin(async move { m.arith(db, &key, arith).await })
        })
        .await
    }

    async fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Result<bool> {
        let key = key.clone();
        self.write(move |m| {
            let key = key.clone();
            Box::pin(async move { m.expire(db, &key, expiry, condition).await })
        })
        .await
    }

    async fn ttl(&self, db: Db, key: &Bytes) -> Result<Ttl> {
        self.read(|member| member.ttl(db, key)).await
    }

    async fn scan(
        &self,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<ScanPage> {
        self.read(|member| member.scan(db, cursor, pattern, count))
            .await
    }

    async fn len(&self, db: Db) -> Result<usize> {
        self.read(|member| member.len(db)).await
    }

    async fn flush(&self, db: Option<Db>) -> Result<()> {
        self.write(move |m| Box::pin(async move { m.flush(db).await }))
            .await
    }
}
