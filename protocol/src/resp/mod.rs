//! RESP: request decoding (our own flat parser with limits) and RESP2/RESP3
//! reply encoding (through redis-protocol).

mod reply;
mod request;

pub use reply::{encode, Reply, Version};
pub use request::{Command, DecodeError, Decoder, Limits};
