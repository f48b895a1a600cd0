//! memcached text reply encoding, byte for byte what memcached 1.6 writes.

use bytes::{BufMut, Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `VALUE <key> <flags> <bytes> [<cas>]` followed by the data block.
    Value {
        key: Bytes,
        flags: u32,
        data: Bytes,
        cas: Option<u64>,
    },
    End,
    Stored,
    NotStored,
    Exists,
    NotFound,
    Deleted,
    Touched,
    Ok,
    /// The new value after incr/decr.
    Number(u64),
    Version(String),
    /// `stats reset`'s answer.
    Reset,
    /// `mn`'s answer (meta no-op).
    MetaNoOp,
    /// A fixed line memcached answers as it is (`ERROR: shutdown not enabled`).
    Line(&'static str),
    /// One `STAT <name> <value>` line; a stats reply is these then `End`.
    Stat(String, String),
    /// Unknown command.
    Error,
    ClientError(String),
    ServerError(String),
}

pub fn encode(reply: &Reply, buf: &mut BytesMut) {
    match reply {
        Reply::Value {
            key,
            flags,
            data,
            cas,
        } => {
            buf.reserve(key.len() + data.len() + 48);
            buf.put_slice(b"VALUE ");
            buf.put_slice(key);
            buf.put_u8(b' ');
            put_decimal(buf, u64::from(*flags));
            buf.put_u8(b' ');
            put_decimal(buf, data.len() as u64);
            if let Some(cas) = cas {
                buf.put_u8(b' ');
                put_decimal(buf, *cas);
            }
            buf.put_slice(b"\r\n");
            buf.put_slice(data);
            buf.put_slice(b"\r\n");
        }
        Reply::End => buf.put_slice(b"END\r\n"),
        Reply::Stored => buf.put_slice(b"STORED\r\n"),
        Reply::NotStored => buf.put_slice(b"NOT_STORED\r\n"),
        Reply::Exists => buf.put_slice(b"EXISTS\r\n"),
        Reply::NotFound => buf.put_slice(b"NOT_FOUND\r\n"),
        Reply::Deleted => buf.put_slice(b"DELETED\r\n"),
        Reply::Touched => buf.put_slice(b"TOUCHED\r\n"),
        Reply::Ok => buf.put_slice(b"OK\r\n"),
        Reply::Number(n) => {
            put_decimal(buf, *n);
            buf.put_slice(b"\r\n");
        }
        Reply::Version(v) => put_line(buf, &["VERSION ", v]),
        Reply::Reset => buf.put_slice(b"RESET\r\n"),
        Reply::MetaNoOp => buf.put_slice(b"MN\r\n"),
        Reply::Line(line) => put_line(buf, &[line]),
        Reply::Stat(name, value) => put_line(buf, &["STAT ", name, " ", value]),
        Reply::Error => buf.put_slice(b"ERROR\r\n"),
        Reply::ClientError(why) => put_line(buf, &["CLIENT_ERROR ", why]),
        Reply::ServerError(why) => put_line(buf, &["SERVER_ERROR ", why]),
    }
}

fn put_line(buf: &mut BytesMut, parts: &[&str]) {
    for part in parts {
        buf.put_slice(part.as_bytes());
    }
    buf.put_slice(b"\r\n");
}

fn put_decimal(buf: &mut BytesMut, n: u64) {
    let mut digits = itoa::Buffer::new();
    buf.put_slice(digits.format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(reply: Reply) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode(&reply, &mut buf);
        buf.to_vec()
    }

    #[test]
    fn replies_are_byte_exact() {
        let table: Vec<(Reply, &[u8])> = vec![
            (
                Reply::Value {
                    key: Bytes::from_static(b"k"),
                    flags: 16,
                    data: Bytes::from_static(b"a\r\nEND\r\n"),
                    cas: None,
                },
                b"VALUE k 16 8\r\na\r\nEND\r\n\r\n",
            ),
            (
                Reply::Value {
                    key: Bytes::from_static(b"k"),
                    flags: 0,
                    data: Bytes::new(),
                    cas: Some(42),
                },
                b"VALUE k 0 0 42\r\n\r\n",
            ),
            (Reply::End, b"END\r\n"),
            (Reply::Stored, b"STORED\r\n"),
            (Reply::NotStored, b"NOT_STORED\r\n"),
            (Reply::Exists, b"EXISTS\r\n"),
            (Reply::NotFound, b"NOT_FOUND\r\n"),
            (Reply::Deleted, b"DELETED\r\n"),
            (Reply::Touched, b"TOUCHED\r\n"),
            (Reply::Ok, b"OK\r\n"),
            (Reply::Number(u64::MAX), b"18446744073709551615\r\n"),
            (Reply::Version("1.6.18".into()), b"VERSION 1.6.18\r\n"),
            (Reply::Stat("pid".into(), "7".into()), b"STAT pid 7\r\n"),
            (Reply::Error, b"ERROR\r\n"),
            (
                Reply::ClientError("bad data chunk".into()),
                b"CLIENT_ERROR bad data chunk\r\n",
            ),
            (
                Reply::ServerError("object too large for cache".into()),
                b"SERVER_ERROR object too large for cache\r\n",
            ),
        ];
        for (reply, want) in table {
            assert_eq!(encoded(reply.clone()), want, "{reply:?}");
        }
    }
}
