//! keyway-protocol: sans-IO codecs for the two wire protocols Keyway speaks.
//!
//! Sits at the very edge of the data flow: client bytes are decoded here into
//! requests, and replies are encoded here into bytes. Nothing in this crate does
//! I/O, spawns tasks or knows about backends, so every parser can be fuzzed,
//! property-tested and benchmarked on plain byte buffers.
//!
//! Every decoder follows one contract: `decode(&mut BytesMut)` returns
//! `Ok(None)` when more bytes are needed (and consumes nothing), `Ok(Some(_))`
//! after consuming exactly one request, or a typed error. Limits are set on the
//! codec; exceeding one is an error, never an allocation.
#![forbid(unsafe_code)]

pub mod memcache;
pub mod resp;
