//! The memcached text protocol: request decoding and reply encoding.
//!
//! The reference is memcached 1.6's `proto_text.c`: tokens are split on spaces
//! only, numbers are parsed like its `safe_strto*` helpers (exptime wraps to a
//! signed 32-bit int), keys are at most 250 bytes, and data blocks are framed by
//! their declared length, never by scanning for a terminator.

mod auth;
mod meta;
mod number;
mod reply;
mod request;
mod response;

pub use auth::{AuthDecoder, AuthFrame, AUTH_FAILED, AUTH_STORED, MAX_AUTH_TOKEN};
pub use meta::{Meta, MetaCommand, MetaItem};
pub use reply::{encode, Reply};
pub use request::{DecodeError, Decoder, Limits, Request, StoreCommand};
pub use response::{decode_response, decode_response_raw, Response, ResponseError};
