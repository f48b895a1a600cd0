//! `failover`: ordered members; every request goes to the first member that
//! is up, and to the next when that one fails.
//!
//! A member that fails `failures_to_mark_down` requests in a row (errors
//! from the backend or its connection, timeouts) is marked down: requests
//! skip it without waiting out its timeouts, and a background probe (a TTL
//! lookup every `probe_interval_ms`) brings it back once it answers. A
//! request that fails on a member is retried on the next one at once. Sets
//! that land on a fallback member can get a shorter TTL
//! (`fallback_ttl_seconds`), as with mcrouter's failover expiry, so what was
//! written during an outage does not outlive it by much. Deletes go to every
//! member that is up, so a value deleted during an outage is not served
//! from the fallback afterwards. Errors the client caused (incr on a
//! non-number, say) are answered at once, not failed over.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Member;
use crate::backend::{Answer, BackendError, Call, Execute, Ops, Result};
use crate::op::{now_ms, Expiry, ExpiryUpdate, Store};

/// Settings of a [`Failover`].
pub struct FailoverOptions {
    pub failures_to_mark_down: u32,
    pub probe_interval: Duration,
    pub fallback_ttl: Option<Duration>,
}

#[derive(Default)]
struct Health {
    failures: AtomicU32,
    down: AtomicBool,
}

pub struct Failover {
    members: Vec<(Member, Arc<Health>)>,
    options: FailoverOptions,
}

/// The key the probe asks a down member about; any answer, hit or miss, means it is back.
const PROBE_KEY: &[u8] = b"keyway:failover:probe";

impl Failover {
    pub fn new(members: Vec<Member>, options: FailoverOptions) -> Self {
        Self {
            members: members
                .into_iter()
                .map(|member| (member, Arc::default()))
                .collect(),
            options,
        }
    }

    /// How many members there are.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The configured name of the member at `index`.
    pub fn member_name(&self, index: usize) -> &str {
        self.members[index].0 .0.stats.name()
    }

    /// Whether the member at `index` is up.
    pub fn is_up(&self, index: usize) -> bool {
        !self.members[index].1.down.load(Ordering::Relaxed)
    }

    fn succeeded(&self, health: &Health) {
        if health.failures.load(Ordering::Relaxed) != 0 {
            health.failures.store(0, Ordering::Relaxed);
        }
    }

    fn failed(&self, index: usize, error: &BackendError) {
        let (member, health) = &self.members[index];
        let failures = health.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.options.failures_to_mark_down || health.down.swap(true, Ordering::AcqRel)
        {
            return;
        }
        tracing::warn!(member = member.0.stats.name(), %error, failures, "failover: member marked down; probing it");
        let (member, health) = (member.clone(), health.clone());
        let interval = self.options.probe_interval;
        tokio::spawn(async move {
            let key = Bytes::from_static(PROBE_KEY);
            loop {
                tokio::time::sleep(interval).await;
                // The policy was replaced by a reload: nobody reads this health.
                if Arc::strong_count(&health) == 1 {
                    return;
                }
                if member.ttl(0, &key).await.is_ok() {
                    health.failures.store(0, Ordering::Relaxed);
                    health.down.store(false, Ordering::Release);
                    tracing::warn!(
                        member = member.0.stats.name(),
                        "failover: member answers again; back in use"
                    );
                    return;
                }
            }
        });
    }

    /// Runs `op` on the first member that is up; on a backend failure, on
    /// the next one that is up. When every member is down, the first is
    /// tried anyway: better a request that may fail than one refused unasked.
    async fn call<'a, F, Fut>(&'a self, op: F) -> Result<Answer>
    where
        F: Fn(usize, &'a Member) -> Fut,
        Fut: std::future::Future<Output = Result<Answer>>,
    {
        let mut order: Vec<usize> = (0..self.members.len()).filter(|&i| self.is_up(i)).collect();
        if order.is_empty() {
            order.push(0);
        }
        let mut last = None;
        for index in order {
            let (member, health) = &self.members[index];
            match op(index, member).await {
                Ok(value) => {
                    self.succeeded(health);
                    return Ok(value);
                }
                Err(error @ BackendError::Unavailable { .. }) => {
                    self.failed(index, &error);
                    last = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last.expect("at least one member was tried"))
    }

    /// Runs `op` on every member that is up, concurrently, and answers with
    /// the first of them that succeeded.
    async fn on_all<'a, F, Fut>(&'a self, op: F) -> Result<Answer>
    where
        F: Fn(usize, &'a Member) -> Fut,
        Fut: std::future::Future<Output = Result<Answer>>,
    {
        let up: Vec<usize> = (0..self.members.len()).filter(|&i| self.is_up(i)).collect();
        if up.is_empty() {
            return self.call(op).await;
        }
        let calls = up.iter().map(|&i| op(i, &self.members[i].0));
        let results = futures_util::future::join_all(calls).await;
        let mut answer = None;
        let mut last = None;
        for (index, result) in up.into_iter().zip(results) {
            match result {
                Ok(value) => {
                    self.succeeded(&self.members[index].1);
                    answer.get_or_insert(value);
                }
                Err(error @ BackendError::Unavailable { .. }) => {
                    self.failed(index, &error);
                    last = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        answer.ok_or_else(|| last.expect("a member failed"))
    }

    /// A set for member `index`: on a fallback, its TTL capped when configured.
    fn capped(&self, index: usize, mut store: Store) -> Store {
        let Some(cap) = self.options.fallback_ttl.filter(|_| index > 0) else {
            return store;
        };
        let latest = now_ms().saturating_add(cap.as_millis() as u64);
        let expiry = match store.expiry {
            ExpiryUpdate::Set(Expiry::At(at)) => at.min(latest),
            ExpiryUpdate::Set(Expiry::Never) | ExpiryUpdate::Keep => latest,
        };
        store.expiry = ExpiryUpdate::Set(Expiry::At(expiry));
        store
    }
}

impl Execute for Failover {
    async fn execute(&self, call: Call<'_>) -> Result<Answer> {
        match call {
            Call::Store { db, store } => {
                self.call(|index, member| {
                    let store = self.capped(index, store.clone());
                    member.execute(Call::Store { db, store })
                })
                .await
            }
            call if call.removes() => self.on_all(|_, member| member.execute(call.clone())).await,
            call => self.call(|_, member| member.execute(call.clone())).await,
        }
    }
}
