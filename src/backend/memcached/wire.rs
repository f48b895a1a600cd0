//! Translating operations into memcached meta commands and back.
//!
//! Keys memcached can hold as text (db 0, 1..=250 bytes, no spaces or control
//! bytes) are sent as they are, so Keyway shares a pool's items with the
//! other memcached clients of that pool. Any other key (a RESP key with a
//! space, binary bytes, or a key in redis db 1..15, which gets a prefix no
//! text client can type) is sent base64-encoded with the meta `b` flag.
//!
//! A key whose token would still be over memcached's 250 bytes (a RESP or
//! Django RedisCache key of 188 bytes or more) is stored under a digest
//! form: [`LONG_PREFIX`] and the SHA-256 of the key, and the value is kept
//! behind a header holding the whole key ([`LongKey`]). A read compares that
//! key with the one asked for, so two keys sharing a digest would read as a
//! miss, never as each other's value.

use base64::Engine;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use keyway_protocol::memcache::Response;
use sha2::{Digest, Sha256};

use crate::backend::{BackendError, Result};
use crate::op::{now_ms, Db, Expiry, Item};

use keyway_protocol::memcache::MAX_KEY;
/// Prefix of keys in redis databases 1..15: bytes no text client can send.
const DB_PREFIX: &[u8] = b"\xffkw";
const RELATIVE_MAX_SECONDS: u64 = 60 * 60 * 24 * 30;

/// Prefix of the digest form of long keys (bytes no text client can send).
pub const LONG_PREFIX: &[u8] = b"\xffkw\xffL";

/// A key as memcached sees it, and the bytes hashed to pick its server.
pub struct WireKey {
    pub token: Bytes,
    pub base64: bool,
    pub hashed: Bytes,
    /// For a key in digest form: the whole key (with its db prefix), kept in
    /// a header before the value.
    pub long: Option<Bytes>,
}

impl WireKey {
    /// The bytes memcached stores for `value`: the value itself, or for a
    /// long key its header first (`u32` key length, big-endian, and the key).
    pub fn stored_value(&self, value: &[u8]) -> Bytes {
        let Some(long) = &self.long else {
            return Bytes::copy_from_slice(value);
        };
        let mut stored = BytesMut::with_capacity(4 + long.len() + value.len());
        stored.put_u32(long.len() as u32);
        stored.put_slice(long);
        stored.put_slice(value);
        stored.freeze()
    }

    /// How many bytes before the value [`Self::stored_value`] adds.
    pub fn header_len(&self) -> usize {
        self.long.as_ref().map_or(0, |long| 4 + long.len())
    }

    /// The value in stored bytes: `None` when a long key's header names
    /// another key (a digest collision) or is missing.
    pub fn value_of(&self, stored: Bytes) -> Option<Bytes> {
        let Some(long) = &self.long else {
            return Some(stored);
        };
        long_key_of(&stored)
            .filter(|key| key == long)
            .map(|_| stored.slice(4 + long.len()..))
    }
}

/// The whole key in a long key's stored value.
pub fn long_key_of(stored: &Bytes) -> Option<Bytes> {
    let mut header = &stored[..];
    if header.len() < 4 {
        return None;
    }
    let len = header.get_u32() as usize;
    (header.len() >= len).then(|| stored.slice(4..4 + len))
}

/// Whether memcached holds `key` (in db 0) under its own name: then a
/// memcached client's request on it can be forwarded as it came.
pub use keyway_protocol::memcache::is_text_key;

pub fn wire_key(db: Db, key: &Bytes) -> Result<WireKey> {
    if db == 0 && is_text_key(key) {
        return Ok(WireKey {
            token: key.clone(),
            base64: false,
            hashed: key.clone(),
            long: None,
        });
    }
    let mut raw = Vec::with_capacity(key.len() + 4);
    if db != 0 {
        raw.extend_from_slice(DB_PREFIX);
        raw.push(db);
    }
    raw.extend_from_slice(key);
    if raw.is_empty() {
        return Err(BackendError::Unsupported(
            "memcached cannot hold an empty key".into(),
        ));
    }
    let engine = base64::engine::general_purpose::STANDARD;
    // memcached checks the token's length before decoding it.
    if base64::encoded_len(raw.len(), true).is_some_and(|len| len <= MAX_KEY) {
        return Ok(WireKey {
            token: Bytes::from(engine.encode(&raw)),
            base64: true,
            hashed: Bytes::from(raw),
            long: None,
        });
    }
    let mut digest = LONG_PREFIX.to_vec();
    digest.extend_from_slice(&Sha256::digest(&raw));
    Ok(WireKey {
        token: Bytes::from(engine.encode(&digest)),
        base64: true,
        hashed: Bytes::from(digest),
        long: Some(Bytes::from(raw)),
    })
}

/// The database and key a memcached key stands for: the inverse of
/// [`wire_key`] (after base64 decoding).
/// (A long key's digest form is resolved from its value first: see
/// [`long_key_of`].)
pub fn from_wire(raw: &[u8]) -> (Db, Bytes) {
    match raw.strip_prefix(DB_PREFIX) {
        Some([db, key @ ..]) => (*db, Bytes::copy_from_slice(key)),
        _ => (0, Bytes::copy_from_slice(raw)),
    }
}

/// memcached's exptime for an expiry: 0 never, -1 already expired, relative
/// seconds up to 30 days, absolute unix seconds beyond. Rounded up, so an
/// item never expires before it was asked to.
pub fn exptime(expiry: Expiry) -> i64 {
    let Expiry::At(at) = expiry else { return 0 };
    let now = now_ms();
    if at <= now {
        return -1;
    }
    let seconds = (at - now).div_ceil(1000);
    if seconds > RELATIVE_MAX_SECONDS {
        at.div_ceil(1000) as i64
    } else {
        seconds as i64
    }
}

/// Appends one meta command: `<cmd> <key> [b] <flags...>`.
pub fn meta(buf: &mut BytesMut, cmd: &str, key: &WireKey, flags: &[&str]) {
    buf.put_slice(cmd.as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(&key.token);
    // After the flags: `ms` wants its data length right after the key.
    for flag in flags {
        buf.put_u8(b' ');
        buf.put_slice(flag.as_bytes());
    }
    if key.base64 {
        buf.put_slice(b" b");
    }
    buf.put_slice(b"\r\n");
}

/// The value of a meta flag token such as `t120` or `f16` in a reply.
pub fn flag(flags: &[Bytes], name: u8) -> Option<&[u8]> {
    flags
        .iter()
        .find(|f| f.first() == Some(&name))
        .map(|f| &f[1..])
}

pub fn number<T: std::str::FromStr>(text: Option<&[u8]>) -> Option<T> {
    std::str::from_utf8(text?).ok()?.parse().ok()
}

/// The expiry a `t` flag reports: -1 never, else seconds from now.
pub fn expiry_from_ttl(ttl: Option<i64>) -> Expiry {
    match ttl {
        Some(seconds) if seconds >= 0 => Expiry::At(now_ms() + seconds as u64 * 1000),
        _ => Expiry::Never,
    }
}

/// An `mg ... v f c t` reply for `key` as an item.
pub fn item(key: &WireKey, response: Response) -> Result<Option<Item>> {
    match response {
        Response::Meta { code, flags, data } if &code == b"VA" => {
            let Some(value) = key.value_of(data.unwrap_or_default()) else {
                return Ok(None);
            };
            Ok(Some(Item {
                value,
                flags: number(flag(&flags, b'f')).unwrap_or(0),
                cas: number(flag(&flags, b'c')).unwrap_or(0),
                expiry: expiry_from_ttl(number(flag(&flags, b't'))),
            }))
        }
        Response::Meta { code, .. } if &code == b"EN" => Ok(None),
        other => Err(unexpected(other)),
    }
}

pub fn unexpected(response: Response) -> BackendError {
    match response {
        Response::ClientError(why) if why.starts_with(b"cannot increment") => {
            BackendError::NotANumber
        }
        Response::ServerError(why) if why.starts_with(b"out of memory") => {
            BackendError::OutOfMemory
        }
        Response::ServerError(why) | Response::ClientError(why) => BackendError::Unavailable {
            backend: "memcached".into(),
            message: String::from_utf8_lossy(&why).into_owned(),
        },
        other => BackendError::Unavailable {
            backend: "memcached".into(),
            message: format!("unexpected reply {other:?}"),
        },
    }
}
