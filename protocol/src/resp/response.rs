//! Framing a redis server's replies (the backend side), through
//! redis-protocol's decoders, into the same [`Reply`] tree the frontend
//! encodes. Keyway keeps RESP2 and RESP3 connections to redis and forwards a
//! client's commands on a connection of the client's version, because redis
//! shapes some replies differently per version (ZRANGE WITHSCORES is a flat
//! array in RESP2 and pairs in RESP3), so each client gets redis's own reply.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp3::types::BytesFrame;
use redis_protocol::{resp2, resp3};

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
        Version::Resp2 => resp2::decode::decode_range(buf).map(|r| r.map(|(_, n)| n)),
        Version::Resp3 => resp3::decode::complete::decode_range(buf).map(|r| r.map(|(_, n)| n)),
    };
    match length {
        Ok(Some(length)) => Ok(Some(buf.split_to(length).freeze())),
        Ok(None) if buf.len() > max_bytes => Err(BackendReplyError::TooLarge(max_bytes)),
        Ok(None) => Ok(None),
        Err(error) => Err(BackendReplyError::Malformed(error.to_string())),
    }
}

/// The [`Reply`] tree of one reply framed by [`frame_backend_reply`].
pub fn parse_backend_reply(raw: &Bytes, version: Version) -> Result<Reply, BackendReplyError> {
    let parsed = match version {
        Version::Resp2 => {
            resp2::decode::decode_bytes(raw).map(|f| f.map(|(f, _)| reply_of_resp2(f)))
        }
        Version::Resp3 => {
            resp3::decode::complete::decode_bytes(raw).map(|f| f.map(|(f, _)| reply_of(f)))
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

fn reply_of(frame: BytesFrame) -> Reply {
    match frame {
        BytesFrame::SimpleString { data, .. } => Reply::Simple(data),
        BytesFrame::SimpleError { data, .. } => Reply::Error(data.to_string()),
        BytesFrame::BlobError { data, .. } => {
            Reply::Error(String::from_utf8_lossy(&data).into_owned())
        }
        BytesFrame::Number { data, .. } => Reply::Integer(data),
        BytesFrame::BlobString { data, .. } | BytesFrame::BigNumber { data, .. } => {
            Reply::Bulk(data)
        }
        BytesFrame::ChunkedString(data) => Reply::Bulk(data),
        BytesFrame::VerbatimString { data, .. } => {
            Reply::Verbatim(String::from_utf8_lossy(&data).into_owned())
        }
        BytesFrame::Boolean { data, .. } => Reply::Boolean(data),
        BytesFrame::Double { data, .. } => Reply::Double(data),
        BytesFrame::Null => Reply::Null,
        BytesFrame::Array { data, .. } | BytesFrame::Push { data, .. } => {
            Reply::Array(data.into_iter().map(reply_of).collect())
        }
        BytesFrame::Set { data, .. } => Reply::Set(data.into_iter().map(reply_of).collect()),
        // redis-protocol 6 builds a map by popping pairs off the end, so its
        // IndexMap holds them last to first: reverse to get redis's order
        // (the unit test below and the byte-for-byte forwarding tests check it).
        BytesFrame::Map { data, .. } => Reply::Map(
            data.into_iter()
                .rev()
                .map(|(k, v)| (reply_of(k), reply_of(v)))
                .collect(),
        ),
        // Clients send HELLO; servers never do.
        BytesFrame::Hello { .. } => Reply::Error("ERR unexpected HELLO frame from redis".into()),
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
