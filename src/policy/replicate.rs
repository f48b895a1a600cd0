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

use super::Member;
use crate::backend::{Answer, BackendError, Call, Execute, Ops, Result};
use crate::config::Ack;
use crate::op::{Db, Item};

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
    async fn read<'a, Fut>(&'a self, op: impl Fn(&'a Member) -> Fut) -> Result<Answer>
    where
        Fut: Future<Output = Result<Answer>>,
    {
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
    async fn write(&self, op: impl Fn(Member) -> Owned<Answer>) -> Result<Answer> {
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

impl Execute for Replicate {
    async fn execute(&self, call: Call<'_>) -> Result<Answer> {
        match call {
            Call::Get { db, keys } => self.get_from_any(db, &keys).await.map(Answer::Items),
            call if call.writes() => {
                let call = call.into_owned();
                self.write(move |member| {
                    let call = call.clone();
                    Box::pin(async move { member.execute(call).await })
                })
                .await
            }
            call => self.read(|member| member.execute(call.clone())).await,
        }
    }
}

impl Replicate {
    /// Each key from the first member that has it: misses on one member are
    /// asked of the next, so a member that restarted empty (memcached) still
    /// lets the others answer.
    async fn get_from_any(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
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
}
