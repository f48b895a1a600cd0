//! Routing policies: a route's keys spread over several members (backends
//! or other policies) by a rule — tiers ([`write_through`]), moving a live
//! store ([`migrate`]), standing in for a failed member ([`failover`]),
//! copies on several members ([`replicate`]), trying out a store on mirrored
//! traffic ([`shadow`]). A policy is itself a [`Backend`], so the router
//! treats a route to a policy like a route to a backend, and policies nest.
//!
//! Members are called through boxed futures ([`Member`]): a policy's future
//! contains its members' futures, which may be policies' futures, and a
//! type cannot contain itself; boxing at the member boundary breaks the
//! cycle. Routes to plain backends never pay for it.

pub mod bulk_copy;
mod coherence;
mod failover;
mod migrate;
mod replicate;
mod shadow;
mod write_through;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use coherence::{Coherence, CoherenceFigures};
pub use failover::{Failover, FailoverOptions};
pub use migrate::Migrate;
pub use replicate::Replicate;
pub use shadow::{Shadow, ShadowCounts, ShadowOptions};
pub use write_through::WriteThrough;

use crate::backend::{execute_typed, Answer, AnyBackend, Call, Execute, Result};
use crate::config::PolicyConfig;
use crate::metrics::TargetStats;
use crate::op::{Item, Store};

/// What a route (or a policy member) sends keys to, with its figures.
#[derive(Clone)]
pub struct Target {
    pub node: Node,
    pub stats: Arc<TargetStats>,
}

#[derive(Clone)]
pub enum Node {
    Backend(Arc<AnyBackend>),
    Policy(Arc<Policy>),
}

pub enum Policy {
    WriteThrough(WriteThrough),
    Migrate(Migrate),
    Failover(Failover),
    Replicate(Replicate),
    Shadow(Shadow),
}

impl Policy {
    /// Builds a configured policy; `member` finds a member by name (None
    /// while it is not built yet: policies are built after their members).
    /// `watches`: a write-through cache follows its durable store's change
    /// log (`Config::watches`).
    pub fn build(
        config: &PolicyConfig,
        watches: bool,
        member: impl Fn(&str) -> Option<Member>,
    ) -> Option<Self> {
        let all = |names: &[String]| {
            names
                .iter()
                .map(|name| member(name))
                .collect::<Option<Vec<_>>>()
        };
        Some(match config {
            PolicyConfig::WriteThrough {
                cache,
                durable,
                max_staleness_ms,
                ..
            } => {
                let (cache, durable) = (member(cache)?, member(durable)?);
                write_through(cache, durable, watches, *max_staleness_ms)
            }
            PolicyConfig::Migrate { from, to, .. } => {
                Policy::Migrate(Migrate::new(member(from)?, member(to)?))
            }
            PolicyConfig::Failover {
                members,
                failures_to_mark_down,
                probe_interval_ms,
                fallback_ttl_seconds,
            } => {
                let options = FailoverOptions {
                    failures_to_mark_down: *failures_to_mark_down,
                    probe_interval: Duration::from_millis(*probe_interval_ms),
                    fallback_ttl: fallback_ttl_seconds.map(Duration::from_secs),
                };
                Policy::Failover(Failover::new(all(members)?, options))
            }
            PolicyConfig::Replicate { members, ack } => {
                Policy::Replicate(Replicate::new(all(members)?, *ack))
            }
            PolicyConfig::Shadow {
                primary,
                shadow,
                fraction,
                writes_only,
            } => {
                let options = ShadowOptions {
                    fraction: *fraction,
                    writes_only: *writes_only,
                };
                Policy::Shadow(Shadow::new(member(primary)?, member(shadow)?, options))
            }
        })
    }
}

/// A write-through tier: its cache follows the durable store's change log
/// when `watches` and that store is SQL, else trusts only its own writes.
fn write_through(cache: Member, durable: Member, watches: bool, max_staleness_ms: u64) -> Policy {
    let coherence = match durable.0.backend() {
        Some(AnyBackend::Sql(sql)) if watches => Coherence::watching(
            cache.clone(),
            sql.subscribe(),
            Duration::from_millis(max_staleness_ms),
        ),
        _ => Coherence::local(),
    };
    Policy::WriteThrough(WriteThrough::new(cache, durable, coherence))
}

impl Target {
    /// A target named `name` with fresh figures.
    pub fn new(name: &str, node: Node) -> Self {
        Self {
            node,
            stats: Arc::new(TargetStats::new(name)),
        }
    }

    /// The plain backend, when this is not a policy.
    pub fn backend(&self) -> Option<&AnyBackend> {
        match &self.node {
            Node::Backend(backend) => Some(backend),
            Node::Policy(_) => None,
        }
    }

    /// Whether a plain set carrying [`Store::unless_ended`] is checked
    /// and written in one step here: on one redis server (a script), and
    /// through a write-through tier whose durable member is one. Elsewhere
    /// the check is separate reads of the marker around the write.
    pub fn stores_unless_ended(&self) -> bool {
        match &self.node {
            Node::Backend(backend) => match &**backend {
                AnyBackend::Redis(redis) => !redis.is_cluster(),
                _ => false,
            },
            Node::Policy(policy) => match &**policy {
                Policy::WriteThrough(tier) => tier.stores_unless_ended(),
                _ => false,
            },
        }
    }

    pub fn policy(&self) -> Option<&Policy> {
        match &self.node {
            Node::Policy(policy) => Some(policy),
            Node::Backend(_) => None,
        }
    }
}

/// Every call through a target is counted (requests, errors, latency, hits
/// and misses by command family); a backend's answers also track its health.
impl Execute for Target {
    async fn execute(&self, call: Call<'_>) -> Result<Answer> {
        let started = std::time::Instant::now();
        let family = call.family();
        let result = match &self.node {
            Node::Backend(backend) => {
                let result = backend.execute(call).await;
                self.stats.observe_health(&result);
                result
            }
            // Boxed, as a member's calls are: a policy's future is large
            // and would otherwise size every route's.
            Node::Policy(policy) => Box::pin(policy.execute(call)).await,
        };
        self.stats.record_result(family, started, &result);
        result
    }
}

impl Execute for Policy {
    async fn execute(&self, call: Call<'_>) -> Result<Answer> {
        match self {
            Policy::WriteThrough(policy) => execute_typed(policy, call).await,
            Policy::Migrate(policy) => execute_typed(policy, call).await,
            Policy::Failover(policy) => policy.execute(call).await,
            Policy::Replicate(policy) => policy.execute(call).await,
            Policy::Shadow(policy) => policy.execute(call).await,
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A policy's member, called through boxed futures (see the module docs).
/// A plain function, not an `async fn`: the coercion to a trait object must
/// sit outside the async body whose type it erases.
#[derive(Clone)]
pub struct Member(pub Target);

impl Member {
    fn boxed<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Answer> {
        Box::pin(self.0.execute(call))
    }
}

impl Execute for Member {
    fn execute<'a>(&'a self, call: Call<'a>) -> impl Future<Output = Result<Answer>> + Send + 'a {
        self.boxed(call)
    }
}

/// Where `items` (answers for `keys`) are misses: their positions and keys.
pub fn misses(keys: &[Bytes], items: &[Option<Item>]) -> (Vec<usize>, Vec<Bytes>) {
    let positions: Vec<usize> = (0..keys.len()).filter(|&i| items[i].is_none()).collect();
    let keys = positions.iter().map(|&i| keys[i].clone()).collect();
    (positions, keys)
}

/// Puts the answers `found` for the miss `positions` into `items`.
pub fn fill(items: &mut [Option<Item>], positions: Vec<usize>, found: Vec<Option<Item>>) {
    for (position, item) in positions.into_iter().zip(found) {
        items[position] = item;
    }
}

/// A copy of `item` for another member: the same value, flags and absolute
/// expiry (so the remaining TTL carries over), stored only where the key is
/// absent, so it never overwrites a newer write that got there first.
pub fn copy_of(key: &Bytes, item: &Item) -> Store {
    let mut store = Store::new(
        key.clone(),
        item.value.clone(),
        crate::op::StoreMode::Add,
        crate::op::ExpiryUpdate::Set(item.expiry),
    );
    store.flags = item.flags;
    store
}
