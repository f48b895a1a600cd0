//! The memcached pool backend (`memcached://host:port[,host:port...]`).
//!
//! Work in progress (issue 3): key distribution ([`ketama`]) and pipelined
//! connections ([`connection`]) exist and are tested against real servers;
//! the `Backend` implementation comes next, and config validation refuses
//! the URL scheme until it does.

pub mod connection;
pub mod ketama;
