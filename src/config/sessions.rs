//! `[sessions]`: what Keyway does with the Django sessions it stores
//! (`crate::django_sessions`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    /// An ended session stays ended: a session key deleted through Keyway
    /// (a logout, a revoke) leaves a marker in its store, and a later write
    /// of that key is refused (memcached `NOT_STORED`, RESP nil) instead of
    /// bringing the session back.
    pub keep_ended: bool,
    /// How long the marker lasts (capped, like the session itself, by its
    /// route's `max_ttl_seconds`). Default: Django's SESSION_COOKIE_AGE.
    pub ended_seconds: u64,
    /// Most users `/sessions` lists (the largest first).
    pub max_users_listed: usize,
    /// Seconds between inventories that refresh the session gauges in
    /// `/metrics` (each lists every session store); 0: only when
    /// `/sessions` or a revoke runs one.
    pub inventory_interval_seconds: u64,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            keep_ended: true,
            ended_seconds: 1_209_600,
            max_users_listed: 100,
            inventory_interval_seconds: 300,
        }
    }
}
