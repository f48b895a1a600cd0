//! Framing a redis server's replies (the backend side), through
//! redis-protocol's RESP2 decoder, into the same [`Reply`] tree the frontend
//! encodes, so a reply can go on to a client in either protocol version.

use bytes::BytesMut;
use redis_protocol::resp2;
use redis_protocol::resp2::types::BytesFrame;

use super::Reply;

/// A reply from a redis backend.
pub type BackendReply = Reply;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendReplyError {
    #[error("malformed reply from redis: {0}")]
    Malformed(String),
    #[error("reply larger than {0} bytes")]
    TooLarge(usize),
}

/// Takes one whole reply off the front of `buf`; `None` until it has arrived.
/// A reply still incomplete after `max_bytes` buffered bytes is an error.
pub fn decode_backend_reply(
    buf: &mut BytesMut,
    max_bytes: usize,
) -> Result<Option<BackendReply>, BackendReplyError> {
    match resp2::decode::decode_bytes_mut(buf) {
        Ok(Some((frame, _, _))) => Ok(Some(reply_of(frame))),
        Ok(None) if buf.len() > max_bytes => Err(BackendReplyError::TooLarge(max_bytes)),
        Ok(None) => Ok(None),
        Err(error) => Err(BackendReplyError::Malformed(error.to_string())),
    }
}

fn reply_of(frame: BytesFrame) -> Reply {
    match frame {
        BytesFrame::SimpleString(s) => Reply::Simple(s),
        BytesFrame::Error(e) => Reply::Error(e.to_string()),
        BytesFrame::Integer(i) => Reply::Integer(i),
        BytesFrame::BulkString(b) => Reply::Bulk(b),
        BytesFrame::Array(items) => Reply::Array(items.into_iter().map(reply_of).collect()),
        BytesFrame::Null => Reply::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_whole_replies_only() {
        let mut buf =
            BytesMut::from(&b"+OK\r\n*2\r\n$3\r\nabc\r\n$-1\r\n:7\r\n-ERR no\r\n$4\r\nab"[..]);
        let mut got = Vec::new();
        while let Some(reply) = decode_backend_reply(&mut buf, 1 << 20).unwrap() {
            got.push(reply);
        }
        assert_eq!(
            got,
            [
                Reply::Simple("OK".into()),
                Reply::Array(vec![Reply::Bulk("abc".into()), Reply::Null]),
                Reply::Integer(7),
                Reply::Error("ERR no".into()),
            ]
        );
        assert_eq!(&buf[..], b"$4\r\nab");
        assert!(decode_backend_reply(&mut buf, 4).is_err());
    }
}
