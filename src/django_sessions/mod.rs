//! Django sessions as objects: Keyway knows a session key when it routes
//! one (`keyway_protocol::django`), keeps an ended session ended
//! ([`ended`]), and writes one audit line per session it ends. Finding
//! every session of a user across every store (`/sessions`, `keyway
//! sessions`) is the admin listener's (`admin::sessions`).
//!
//! Sits below the router: the router calls [`ended`] for session keys (it
//! owns the routes and their TTL limits). Keys and values are credentials (the cookie, the
//! Keystone token): neither is ever logged or shown, only a [`digest`].

pub mod ended;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use sha2::Digest;

/// Why a session ended, in the audit line and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A client deleted it: Django's logout, `flush()` or `cycle_key()`.
    Logout,
    /// `POST /sessions/revoke` or `keyway sessions revoke`.
    Revoke,
}

impl Reason {
    pub const ALL: [Reason; 2] = [Reason::Logout, Reason::Revoke];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Logout => "logout",
            Reason::Revoke => "revoke",
        }
    }
}

/// Process-wide session figures (they outlive configuration generations).
#[derive(Debug, Default)]
pub struct Figures {
    ended: [AtomicU64; 2],
    /// Writes of an ended session refused.
    pub late_writes_refused: AtomicU64,
    /// From the last inventory: sessions, signed-in users, when (unix s).
    pub sessions: AtomicI64,
    pub users: AtomicI64,
    pub anonymous: AtomicI64,
    pub unreadable: AtomicI64,
    pub inventory_timestamp: AtomicU64,
}

impl Figures {
    pub fn ended(&self, reason: Reason) -> u64 {
        self.ended[reason as usize].load(Relaxed)
    }
}

pub static FIGURES: Figures = Figures {
    ended: [AtomicU64::new(0), AtomicU64::new(0)],
    late_writes_refused: AtomicU64::new(0),
    sessions: AtomicI64::new(-1),
    users: AtomicI64::new(-1),
    anonymous: AtomicI64::new(-1),
    unreadable: AtomicI64::new(-1),
    inventory_timestamp: AtomicU64::new(0),
};

/// Who is asking: the listener and client address of the connection a
/// request came on (the audit line's `listener` and `client`).
#[derive(Debug, Clone)]
pub struct Origin {
    pub listener: &'static str,
    pub client: String,
}

tokio::task_local! {
    /// Set around each client connection's task (`server`).
    pub static ORIGIN: Origin;
}

/// A short digest of a session key: lets an operator match audit lines
/// and `/sessions` entries without the key, which is a credential.
pub fn digest(key: &[u8]) -> String {
    hex::encode(&sha2::Sha256::digest(key)[..8])
}

/// One audit line for a session that ended (JSON with `--log-format json`).
pub fn audit_ended(reason: Reason, key: &[u8], owner: Option<&str>, store: &str) {
    FIGURES.ended[reason as usize].fetch_add(1, Relaxed);
    let origin = ORIGIN.try_with(Clone::clone).ok();
    tracing::info!(
        target: "keyway::audit",
        event = "session_ended",
        reason = reason.as_str(),
        owner = owner.unwrap_or(""),
        store,
        listener = origin.as_ref().map_or("admin", |o| o.listener),
        client = origin.as_ref().map_or("", |o| o.client.as_str()),
        session = %digest(key),
        "session ended"
    );
}

/// One audit line for a write of an ended session that was refused.
pub fn audit_late_write(key: &[u8], store: &str) {
    FIGURES.late_writes_refused.fetch_add(1, Relaxed);
    let origin = ORIGIN.try_with(Clone::clone).ok();
    tracing::info!(
        target: "keyway::audit",
        event = "late_write_refused",
        store,
        listener = origin.as_ref().map_or("admin", |o| o.listener),
        client = origin.as_ref().map_or("", |o| o.client.as_str()),
        session = %digest(key),
        "write of an ended session refused"
    );
}
