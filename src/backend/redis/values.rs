//! How a value with memcached flags is stored in redis, and read back.

use bytes::{BufMut, Bytes, BytesMut};

use super::MARKER;
use crate::op::{Expiry, Item};

/// The stored form of a value with memcached `flags`.
pub fn encode_value(value: &Bytes, flags: u32) -> Bytes {
    // Most values are stored as they are: shared, not copied.
    if flags == 0 && !value.starts_with(MARKER) {
        return value.clone();
    }
    let mut out = BytesMut::with_capacity(MARKER.len() + 4 + value.len());
    out.put_slice(MARKER);
    out.put_u32(flags);
    out.put_slice(value);
    out.freeze()
}

/// A reply to a RESP client for a stored value: the value without any flags header.
pub fn client_value(stored: &Bytes) -> Bytes {
    decode_value(stored).0
}

/// The value and flags a stored form holds.
pub fn decode_value(stored: &Bytes) -> (Bytes, u32) {
    if stored.len() >= MARKER.len() + 4 && stored.starts_with(MARKER) {
        let flags = u32::from_be_bytes(stored[4..8].try_into().expect("4 bytes"));
        (stored.slice(8..), flags)
    } else {
        (stored.clone(), 0)
    }
}

/// A CAS id for stored bytes: FNV-1a, stable across processes and restarts.
fn cas_of(stored: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in stored {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash & (u64::MAX >> 1)
}

pub(super) fn item_of(stored: &Bytes, expiry: Expiry) -> Item {
    let (value, flags) = decode_value(stored);
    Item {
        value,
        flags,
        cas: cas_of(stored),
        expiry,
    }
}
