//! What a RESP client sees of the values a redis backend stores: a value
//! written over memcached carries its flags in a header
//! ([`FLAGS_MARKER`](crate::backend::redis::FLAGS_MARKER)), which replies to
//! redis clients must not show. Forwarded commands' replies pass through
//! here on their way to the client: the backend returns redis's bytes, the
//! frontend writes what the client should see.

use bytes::{Bytes, BytesMut};
use keyway_protocol::resp::{encode, parse_backend_reply, Reply, Version};

use super::commands::{Cmd, CommandSpec, StringCmd};
use crate::backend::redis::{client_value, FLAGS_MARKER};

/// Whether the command replies with stored string values (which may carry
/// the flags header of a value written over memcached).
fn returns_values(spec: &CommandSpec) -> bool {
    use StringCmd::{Get, GetDel, GetEx, GetSet, MGet, Set};
    matches!(
        spec.runs(),
        Some(Cmd::Strings(Get | GetDel | GetEx | GetSet | MGet | Set))
    )
}

/// Writes redis's reply (`raw`, in the client's version) to a forwarded
/// command (`spec`) as the client should see it: as redis sent it, unless it
/// holds a value written over memcached with flags, whose header is removed.
pub fn write_reply(spec: &CommandSpec, raw: &Bytes, version: Version, out: &mut BytesMut) {
    if !(returns_values(spec) && has_flags_header(raw)) {
        out.extend_from_slice(raw);
        return;
    }
    match parse_backend_reply(raw, version) {
        Ok(reply) => encode(&client_reply(spec, reply), version, out),
        Err(_) => out.extend_from_slice(raw),
    }
}

/// Whether a raw reply might hold a value with a flags header.
pub fn has_flags_header(raw: &[u8]) -> bool {
    memchr::memmem::find(raw, FLAGS_MARKER).is_some()
}

/// [`write_reply`] on a parsed reply.
pub fn client_reply(spec: &CommandSpec, reply: Reply) -> Reply {
    if !returns_values(spec) {
        return reply;
    }
    match reply {
        Reply::Bulk(value) => Reply::Bulk(client_value(&value)),
        Reply::Array(values) => Reply::Array(
            values
                .into_iter()
                .map(|v| match v {
                    Reply::Bulk(value) => Reply::Bulk(client_value(&value)),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}
