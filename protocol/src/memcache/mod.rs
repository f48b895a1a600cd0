//! The memcached text protocol: request decoding and reply encoding; and
//! its binary protocol's framing (binary.rs).
//!
//! The reference is memcached 1.6's `proto_text.c`: tokens are split on spaces
//! only, numbers are parsed like its `safe_strto*` helpers (exptime wraps to a
//! signed 32-bit int), keys are at most 250 bytes, and data blocks are framed by
//! their declared length, never by scanning for a terminator.

mod auth;
mod binary;
mod meta;
mod number;
mod reply;
mod request;
mod response;

pub use auth::{AuthDecoder, AuthFrame, AUTH_FAILED, AUTH_STORED, MAX_AUTH_TOKEN};
pub use binary::{
    encode_response, encode_status, BinaryDecoder, BinaryError, BinaryRequest, BinaryResponse,
    Opcode, Status, REQUEST_MAGIC,
};
pub use meta::{Meta, MetaCommand, MetaItem};
pub use reply::{encode, Reply};
pub use request::{DecodeError, Decoder, Limits, Request, StoreCommand};
pub use response::{decode_response, decode_response_raw, Response, ResponseError};

/// memcached's longest key, in bytes.
pub const MAX_KEY: usize = 250;

/// Whether memcached's text protocol carries `key` as it is: 1 to 250
/// bytes, none of them a space, a control character or DEL.
pub fn is_text_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY && key.iter().all(|&b| b > b' ' && b != 0x7f)
}
