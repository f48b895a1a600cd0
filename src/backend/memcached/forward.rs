//! Forwarding memcached clients' requests as they came.
//!
//! A request from a memcached client whose keys memcached holds under their
//! own names (see [`is_text_key`]) goes to the server owning them byte for
//! byte, and memcached's reply comes back byte for byte: nothing is parsed
//! into an operation or re-encoded, and the client sees exactly what
//! memcached says. A multi-key get whose keys live on several servers is
//! split into one get per server and the hits merged back in request order,
//! as memcached would list them.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::try_join_all;
use keyway_protocol::memcache::Response;

use super::wire::is_text_key;
use super::{call_raw, unexpected, MemcachedBackend};
use crate::backend::pipeline::{Expect, MemcacheReply};
use crate::backend::Result;
use crate::op::groups;

impl MemcachedBackend {
    /// Whether memcached clients' requests on `key` can be forwarded as they
    /// came: Keyway stores it under the same name (db 0, text-safe).
    pub fn forwards(key: &[u8]) -> bool {
        is_text_key(key)
    }

    fn server_of(&self, key: &[u8]) -> usize {
        self.placement.server_for(key)
    }

    /// Sends a one-key request (storage, delete, incr/decr, touch) to the
    /// server owning `key`; returns its one reply.
    pub async fn forward_one(&self, key: &[u8], request: Bytes) -> Result<MemcacheReply> {
        let pool = &self.pools[self.server_of(key)];
        let mut replies = call_raw(pool, request, Expect::One).await?;
        Ok(replies.remove(0))
    }

    /// Sends a retrieval (`get`, `gets`, `gat`, `gats`) for `keys`: as it
    /// came when one server owns every key, otherwise `command` (the words
    /// before the keys, such as `gat 60`) with each server's share of the
    /// keys. Returns the reply: the hits in request order, then `END`; or
    /// the first error a server answered.
    pub async fn forward_retrieval(
        &self,
        command: &[u8],
        keys: &[Bytes],
        request: Bytes,
    ) -> Result<Vec<MemcacheReply>> {
        let first = self.server_of(&keys[0]);
        if keys[1..].iter().all(|key| self.server_of(key) == first) {
            return call_raw(&self.pools[first], request, Expect::UntilEnd).await;
        }
        let servers = keys
            .iter()
            .enumerate()
            .map(|(position, key)| (self.server_of(key), position));
        let calls = groups::by_owner(servers, |a, b| a == b).into_iter().map(
            |(server, positions)| async move {
                let mut line = BytesMut::from(command);
                for &position in &positions {
                    line.put_u8(b' ');
                    line.put_slice(&keys[position]);
                }
                line.put_slice(b"\r\n");
                let replies = call_raw(&self.pools[server], line.freeze(), Expect::UntilEnd).await;
                replies.map(|replies| (positions, replies))
            },
        );
        let answers = try_join_all(calls).await?;
        let mut hits: Vec<Option<MemcacheReply>> = vec![None; keys.len()];
        let mut end = None;
        for (positions, replies) in answers {
            let mut replies = replies.into_iter().peekable();
            // A server lists its hits in the order of its share of the keys.
            for position in positions {
                let is_hit = matches!(
                    replies.peek().map(|r| &r.response),
                    Some(Response::Value { key, .. }) if *key == keys[position]
                );
                if is_hit {
                    hits[position] = replies.next();
                }
            }
            match replies.next() {
                Some(reply) if reply.response == Response::End => end = Some(reply),
                // memcached's objection, as it said it.
                Some(reply)
                    if matches!(
                        reply.response,
                        Response::Error | Response::ClientError(_) | Response::ServerError(_)
                    ) =>
                {
                    return Ok(vec![reply])
                }
                other => return Err(unexpected(other.map_or(Response::Error, |r| r.response))),
            }
        }
        let mut reply: Vec<MemcacheReply> = hits.into_iter().flatten().collect();
        reply.extend(end);
        Ok(reply)
    }
}
