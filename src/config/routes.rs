//! `[[routes]]`: which keys go where.

use serde::{Deserialize, Serialize};

/// One routing rule: exactly one matcher, and the backend or the policy its
/// keys go to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub prefix: Option<String>,
    pub glob: Option<String>,
    pub regex: Option<String>,
    /// Django cache keys (`KEY_PREFIX:VERSION:key`) whose key starts with
    /// this, at any version: one rule for every `VERSION`.
    pub django: Option<String>,
    /// With `django`: the `KEY_PREFIX` of Django's CACHES setting (default "").
    pub key_prefix: Option<String>,
    /// TTLs set on this route are raised to at least this many seconds.
    pub min_ttl_seconds: Option<u64>,
    /// TTLs set on this route are capped at this many seconds; items that
    /// would never expire get this TTL.
    pub max_ttl_seconds: Option<u64>,
    pub backend: Option<String>,
    pub policy: Option<String>,
    /// Whether FLUSHDB/FLUSHALL/flush_all skip this route's backend. Defaults
    /// to true for SQL backends (a durable session table must not vanish
    /// because Django's cache.clear() ran) and false for the others.
    pub protected: Option<bool>,
    /// The listener whose clients this route serves (`"memcache"` or
    /// `"resp"`); both when absent. Routes for one listener are a keyspace
    /// the other listener's clients never see.
    pub listener: Option<RouteListener>,
}

/// A listener a route can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteListener {
    Memcache,
    Resp,
}

impl RouteConfig {
    /// Whether this route serves `listener`'s clients.
    pub fn serves(&self, listener: RouteListener) -> bool {
        self.listener.is_none_or(|only| only == listener)
    }
}

impl RouteConfig {
    /// The matcher as written, e.g. `prefix = "session:"`.
    pub fn matcher(&self) -> String {
        let written = [
            ("prefix", &self.prefix),
            ("glob", &self.glob),
            ("regex", &self.regex),
            ("django", &self.django),
        ];
        written
            .iter()
            .find_map(|(field, value)| Some(format!("{field} = {:?}", value.as_ref()?)))
            .unwrap_or_default()
    }

    /// The backend or policy this route names (validated: exactly one).
    pub fn target(&self) -> &str {
        self.backend
            .as_deref()
            .or(self.policy.as_deref())
            .expect("validated by Config::validate")
    }
}
