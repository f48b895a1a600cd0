//! `[policies.*]`: what a policy is built from, with its defaults.

use serde::{Deserialize, Serialize};

/// How a route's keys are spread over several members (backends or other
/// policies, by name). docs/configuration.md "Routing policies" gives each one's exact
/// read, write, delete, TTL and error semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// Django's `cached_db` at the proxy: writes commit to `durable` first,
    /// then reach `cache`; reads come from `cache`, refilled from `durable`.
    WriteThrough {
        cache: String,
        durable: String,
        /// How the cache learns of other Keyways' writes to `durable`:
        /// `"watch"` (read the SQL store's change log) or `"none"` (only
        /// this Keyway writes the store).
        #[serde(default)]
        coherence: Coherence,
        /// The longest a cached value may lag a write another Keyway has
        /// acknowledged; past it, reads skip the cache.
        #[serde(default = "default_max_staleness_ms")]
        max_staleness_ms: u64,
    },
    /// Moving a live store: writes go to `to`, deletes to both, reads try
    /// `to` then `from`, copying what they find with its remaining TTL.
    Migrate {
        from: String,
        to: String,
        /// `"watch"`: a per-host `to` over a shared `from` is refused (other
        /// Keyways' deletes would not reach this host's copies); `"none"`:
        /// only this Keyway uses `from`.
        #[serde(default)]
        coherence: Coherence,
    },
    /// Ordered members: requests go to the first one that is up.
    Failover {
        members: Vec<String>,
        /// Consecutive failures (errors, timeouts) that mark a member down.
        #[serde(default = "default_failures_to_mark_down")]
        failures_to_mark_down: u32,
        /// How often a down member is probed to bring it back.
        #[serde(default = "default_probe_interval_ms")]
        probe_interval_ms: u64,
        /// Longest TTL a set gets when it lands on a fallback member
        /// (mcrouter's failover expiry); no cap when omitted.
        fallback_ttl_seconds: Option<u64>,
    },
    /// Serve from `primary`; repeat a share of requests on `shadow` in the
    /// background and count where its answers differ.
    Shadow {
        primary: String,
        shadow: String,
        /// Share of requests mirrored, 0.0 to 1.0.
        #[serde(default = "default_fraction")]
        fraction: f64,
        /// Mirror writes only (reads are then served and not compared).
        #[serde(default)]
        writes_only: bool,
    },
    /// Every write to every member; reads from the first that answers.
    Replicate {
        members: Vec<String>,
        /// `"all"`: answer once every member has the write; `"first"`: once one has.
        #[serde(default)]
        ack: Ack,
    },
}

/// How a write-through cache stays true to writes made through other
/// Keyways (docs/deployments.md "One host or several").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coherence {
    /// Read the durable SQL store's change log and drop changed keys.
    #[default]
    Watch,
    /// Trust that no other Keyway writes the durable store.
    None,
}

fn default_max_staleness_ms() -> u64 {
    100
}

/// When a replicated write is acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ack {
    #[default]
    All,
    First,
}

fn default_fraction() -> f64 {
    1.0
}

fn default_failures_to_mark_down() -> u32 {
    3
}

fn default_probe_interval_ms() -> u64 {
    1000
}

impl PolicyConfig {
    /// The names this policy is built on, with the field naming each.
    pub fn members(&self) -> Vec<(String, &str)> {
        match self {
            PolicyConfig::WriteThrough { cache, durable, .. } => {
                vec![("cache".into(), cache), ("durable".into(), durable)]
            }
            PolicyConfig::Migrate { from, to, .. } => {
                vec![("from".into(), from), ("to".into(), to)]
            }
            PolicyConfig::Shadow {
                primary, shadow, ..
            } => vec![("primary".into(), primary), ("shadow".into(), shadow)],
            PolicyConfig::Failover { members, .. } | PolicyConfig::Replicate { members, .. } => {
                members
                    .iter()
                    .enumerate()
                    .map(|(i, member)| (format!("members[{i}]"), member.as_str()))
                    .collect()
            }
        }
    }
}
