//! The memcached pool backend (`memcached://host:port[,host:port...]`).
//!
//! Work in progress (issue 3): so far only key distribution exists
//! ([`ketama`]); connections and the `Backend` implementation come next, and
//! the URL scheme is refused by config validation until they do.

pub mod ketama;
