//! RESP2/RESP3 reply encoding through redis-protocol.
//!
//! Keyway builds one protocol-neutral [`Reply`] tree; the version the client
//! negotiated with HELLO decides how it is written: under RESP2 a null is `$-1`,
//! a map is a flat array, a double a bulk string and a boolean an integer, as
//! redis itself downgrades them.

use bytes::{Bytes, BytesMut};
use bytes_utils::Str;
use redis_protocol::{resp2, resp3};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    #[default]
    Resp2,
    Resp3,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(Bytes),
    /// The whole error line, code included: `ERR unknown command ...`.
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    Null,
    /// A null array (`*-1` under RESP2, `_` under RESP3), as SENTINEL
    /// get-master-addr-by-name answers an unknown name. Top level only.
    NullArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    Boolean(bool),
    /// Verbatim text (`INFO`, `CLIENT INFO`); a bulk string under RESP2.
    Verbatim(String),
}

impl Reply {
    pub fn ok() -> Self {
        Reply::Simple(Bytes::from_static(b"OK"))
    }

    pub fn simple(text: &'static str) -> Self {
        Reply::Simple(Bytes::from_static(text.as_bytes()))
    }

    pub fn error(text: impl Into<String>) -> Self {
        Reply::Error(text.into())
    }

    /// A bulk string: text, a `String`, bytes.
    pub fn bulk(value: impl Into<Bytes>) -> Self {
        Reply::Bulk(value.into())
    }

    pub fn bulk_or_null(value: Option<Bytes>) -> Self {
        value.map_or(Reply::Null, Reply::Bulk)
    }
}

pub fn encode(reply: &Reply, version: Version, buf: &mut BytesMut) {
    if let (Reply::NullArray, Version::Resp2) = (reply, version) {
        buf.extend_from_slice(b"*-1\r\n");
        return;
    }
    // Encoding into a growable buffer cannot fail for frames we build ourselves.
    match version {
        Version::Resp2 => {
            let frame = to_resp2(reply);
            resp2::encode::extend_encode(buf, &frame, false).expect("RESP2 frame encodes");
        }
        Version::Resp3 => {
            let frame = to_resp3(reply);
            resp3::encode::complete::extend_encode(buf, &frame, false)
                .expect("RESP3 frame encodes");
        }
    }
}

fn to_resp2(reply: &Reply) -> resp2::types::BytesFrame {
    use resp2::types::BytesFrame as F;
    match reply {
        Reply::Simple(s) => F::SimpleString(s.clone()),
        Reply::Error(e) => F::Error(Str::from(e.as_str())),
        Reply::Integer(n) => F::Integer(*n),
        Reply::Bulk(b) => F::BulkString(b.clone()),
        Reply::Null | Reply::NullArray => F::Null,
        Reply::Array(items) | Reply::Set(items) => F::Array(items.iter().map(to_resp2).collect()),
        Reply::Map(pairs) => F::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| [to_resp2(k), to_resp2(v)])
                .collect(),
        ),
        Reply::Double(d) => F::BulkString(Bytes::from(format_double(*d))),
        Reply::Boolean(b) => F::Integer(i64::from(*b)),
        Reply::Verbatim(text) => F::BulkString(Bytes::from(text.clone())),
    }
}

fn to_resp3(reply: &Reply) -> resp3::types::BytesFrame {
    use resp3::types::BytesFrame as F;
    match reply {
        Reply::Simple(s) => F::SimpleString {
            data: s.clone(),
            attributes: None,
        },
        Reply::Error(e) => F::SimpleError {
            data: Str::from(e.as_str()),
            attributes: None,
        },
        Reply::Integer(n) => F::Number {
            data: *n,
            attributes: None,
        },
        Reply::Bulk(b) => F::BlobString {
            data: b.clone(),
            attributes: None,
        },
        Reply::Null | Reply::NullArray => F::Null,
        Reply::Array(items) => F::Array {
            data: items.iter().map(to_resp3).collect(),
            attributes: None,
        },
        Reply::Set(items) => F::Set {
            data: items.iter().map(to_resp3).collect(),
            attributes: None,
        },
        Reply::Map(pairs) => F::Map {
            data: pairs
                .iter()
                .map(|(k, v)| (to_resp3(k), to_resp3(v)))
                .collect(),
            attributes: None,
        },
        Reply::Double(d) => F::Double {
            data: *d,
            attributes: None,
        },
        Reply::Boolean(b) => F::Boolean {
            data: *b,
            attributes: None,
        },
        Reply::Verbatim(text) => F::VerbatimString {
            data: Bytes::from(text.clone()),
            format: resp3::types::VerbatimStringFormat::Text,
            attributes: None,
        },
    }
}

/// redis prints doubles with `%.17g`; shortest round-trip is what clients parse
/// back identically, and integers print without a fraction, as redis does.
fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    format!("{d}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(reply: Reply) -> (Vec<u8>, Vec<u8>) {
        let mut two = BytesMut::new();
        let mut three = BytesMut::new();
        encode(&reply, Version::Resp2, &mut two);
        encode(&reply, Version::Resp3, &mut three);
        (two.to_vec(), three.to_vec())
    }

    #[test]
    fn encodes_like_redis() {
        let table: Vec<(Reply, &[u8], &[u8])> = vec![
            (Reply::ok(), b"+OK\r\n", b"+OK\r\n"),
            (Reply::error("ERR x"), b"-ERR x\r\n", b"-ERR x\r\n"),
            (Reply::Integer(-3), b":-3\r\n", b":-3\r\n"),
            (
                Reply::Bulk(Bytes::from_static(b"a\r\nb")),
                b"$4\r\na\r\nb\r\n",
                b"$4\r\na\r\nb\r\n",
            ),
            (Reply::Null, b"$-1\r\n", b"_\r\n"),
            (
                Reply::Array(vec![Reply::Null, Reply::Integer(1)]),
                b"*2\r\n$-1\r\n:1\r\n",
                b"*2\r\n_\r\n:1\r\n",
            ),
            (
                Reply::Map(vec![(Reply::simple("proto"), Reply::Integer(3))]),
                b"*2\r\n+proto\r\n:3\r\n",
                b"%1\r\n+proto\r\n:3\r\n",
            ),
            (Reply::Boolean(true), b":1\r\n", b"#t\r\n"),
            (
                Reply::Verbatim("a".into()),
                b"$1\r\na\r\n",
                b"=5\r\ntxt:a\r\n",
            ),
        ];
        for (reply, resp2, resp3) in table {
            let (two, three) = both(reply.clone());
            assert_eq!(two, resp2, "{reply:?} RESP2");
            assert_eq!(three, resp3, "{reply:?} RESP3");
        }
    }
}
