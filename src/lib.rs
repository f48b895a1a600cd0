//! Keyway: a cache and session proxy that speaks the memcached text protocol
//! and RESP, and routes every key by rule to a backend.
//!
//! Flow: `server` (sockets) → `frontend` (wire ⇄ `op`) → `router` (key →
//! backend or `policy`) → `backend`. The wire codecs live in the `keyway-protocol` crate.
#![forbid(unsafe_code)]

pub mod admin;
pub mod backend;
pub mod config;
pub mod django_sessions;
pub mod frontend;
pub mod metrics;
pub mod op;
pub mod pattern;
pub mod policy;
pub mod router;
pub mod server;
pub mod session;
pub mod tls;
pub mod workers;
