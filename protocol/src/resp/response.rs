//! Framing a redis server's replies (the backend side) — RESP2 through
//! redis-protocol's decoder, RESP3 through Keyway's own (resp3.rs) — into
//! the same [`Reply`] tree the frontend encodes. Keyway keeps RESP2 and RESP3 connections to redis and forwards a
//! client's commands on a connection of the client's version, because redis
//! shapes some replies differently per version (ZRANGE WITHSCORES is a flat
//! array in RESP2 and pairs in RESP3), so each client gets redis's own reply.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2;

use super::{Reply, Version};

/// A reply from a redis backend.
pub type BackendReply = Reply;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendReplyError {
    #[error("malformed reply from redis: {0}")]
    Malformed(String),
    #[error("reply larger than {0} bytes")]
    TooLarge(usize),
}

/// Takes one whole reply in `version` off the front of `buf`, as the bytes
/// the server sent (to pass on to a client as they are); `None` until it has
/// arrived. A reply still incomplete after `max_bytes` buffered bytes is an
/// error.
pub fn frame_backend_reply(
    buf: &mut BytesMut,
    max_bytes: usize,
    version: Version,
) -> Result<Option<Bytes>, BackendReplyError> {
    let length = match version {
        Version::Resp2 => resp2::decode::decode_range(buf)
            .map(|r| r.map(|(_, n)| n))
            .map_err(|error| error.to_string()),
        // Keyway's own RESP3 framer (see resp3.rs).
        Version::Resp3 => super::resp3::reply_len(buf),
    };
    match length {
        Ok(Some(length)) => Ok(Some(buf.split_to(length).freeze())),
        Ok(None) if buf.len() > max_bytes => Err(BackendReplyError::TooLarge(max_bytes)),
        Ok(None) => Ok(None),
        Err(error) => Err(BackendReplyError::Malformed(error)),
    }
}

/// The [`Reply`] tree of one reply framed by [`frame_backend_reply`].
pub fn parse_backend_reply(raw: &Bytes, version: Version) -> Result<Reply, BackendReplyError> {
    let parsed = match version {
        Version::Resp2 => {
            resp2::decode::decode_bytes(raw).map(|f| f.map(|(f, _)| reply_of_resp2(f)))
        }
        Version::Resp3 => {
            return super::resp3::parse(raw).map_err(BackendReplyError::Malformed);
        }
    };
    match parsed {
        Ok(Some(reply)) => Ok(reply),
        Ok(None) => Err(BackendReplyError::Malformed("incomplete reply".into())),
        Err(error) => Err(BackendReplyError::Malformed(error.to_string())),
    }
}

/// [`frame_backend_reply`] and [`parse_backend_reply`] in one.
pub fn decode_backend_reply(
    buf: &mut BytesMut,
    max_bytes: usize,
    version: Version,
) -> Result<Option<BackendReply>, BackendReplyError> {
    match frame_backend_reply(buf, max_bytes, version)? {
        Some(raw) => parse_backend_reply(&raw, version).map(Some),
        None => Ok(None),
    }
}

fn reply_of_resp2(frame: resp2::types::BytesFrame) -> Reply {
    use resp2::types::BytesFrame as F;
    match frame {
        F::SimpleString(s) => Reply::Simple(s),
        F::Error(e) => Reply::Error(e.to_string()),
        F::Integer(i) => Reply::Integer(i),
        F::BulkString(b) => Reply::Bulk(b),
        F::Array(items) => Reply::Array(items.into_iter().map(reply_of_resp2).collect()),
        F::Null => Reply::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_whole_replies_only() {
        let mut buf =
            BytesMut::from(
            &b"+OK\r\n*2\r\n$3\r\nabc\r\n_\r\n:7\r\n-ERR no\r\n%2\r\n+f\r\n,1.5\r\n+g\r\n:2\r\n#t\r\n$4\r\nab"[..],
        );
        let mut got = Vec::new();
        while let Some(reply) = decode_backend_reply(&mut buf, 1 << 20, Version::Resp3).unwrap() {
            got.push(reply);
        }
        assert_eq!(
            got,
            [
                Reply::Simple("OK".into()),
                Reply::Array(vec![Reply::Bulk("abc".into()), Reply::Null]),
                Reply::Integer(7),
                Reply::Error("ERR no".into()),
                Reply::Map(vec![
                    (Reply::Simple("f".into()), Reply::Double(1.5)),
                    (Reply::Simple("g".into()), Reply::Integer(2)),
                ]),
                Reply::Boolean(true),
            ]
        );
        assert_eq!(&buf[..], b"$4\r\nab");
        assert!(decode_backend_reply(&mut buf, 4, Version::Resp3).is_err());
        let mut buf = BytesMut::from(&b"$-1\r\n*1\r\n:1\r\n"[..]);
        assert_eq!(
            decode_backend_reply(&mut buf, 64, Version::Resp2).unwrap(),
            Some(Reply::Null)
        );
        assert_eq!(
            decode_backend_reply(&mut buf, 64, Version::Resp2).unwrap(),
            Some(Reply::Array(vec![Reply::Integer(1)]))
        );
    }
}
