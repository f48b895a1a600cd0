//! RESP: request decoding (our own flat parser with limits) and RESP2/RESP3
//! reply encoding (through redis-protocol).

mod inline;
mod reply;
mod request;
mod resp3;
mod response;

/// The Redis Cluster hash slot of a key (hash tags honoured), as `CLUSTER KEYSLOT`.
pub use redis_protocol::redis_keyslot as key_slot;
pub use reply::{encode, Reply, Version};
pub use request::{Command, DecodeError, Decoder, Limits};
pub use response::{
    decode_backend_reply, frame_backend_reply, parse_backend_reply, BackendReply, BackendReplyError,
};
