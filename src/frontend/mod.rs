//! Frontends: wire commands in, [`crate::op`] operations to the router, wire
//! replies out. Only this layer turns errors into protocol bytes.

pub mod memcache;
pub mod resp;
