//! Listing a memcached pool's keys (what `keyway migrate` copies from):
//! `lru_crawler metadump hash` (or `all`) on each server, over a connection of its own
//! made as the backend's are (TLS included).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wire::{from_wire, long_key_of, LONG_PREFIX};
use super::ServerPool;
use crate::backend::pipeline::Expect;
use crate::op::Db;

/// A key a server's dump listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The server's position in the pool's URL.
    pub server: usize,
    pub db: Db,
    pub key: Bytes,
    /// Unix seconds it expires at (`None`: never).
    pub expires: Option<u64>,
}

/// Every key of every server of a memcached pool, from `lru_crawler
/// metadump hash` (memcached 1.6.9+: walks the hash table, so an item the
/// LRU maintainer moves between queues meanwhile is not missed), or
/// `lru_crawler metadump all` (older ones: walks the LRU queues) where
/// `hash` is unknown: one `key=<url-encoded> exp=...` line per item, then
/// `END`. Keys are mapped back to Keyway's databases.
pub(super) async fn list_keys(pools: &[Arc<ServerPool>]) -> Result<Vec<Listed>, String> {
    let mut keys = Vec::new();
    for (index, pool) in pools.iter().enumerate() {
        let dump = match metadump(pool, "hash").await? {
            Some(dump) => dump,
            None => metadump(pool, "all").await?.ok_or_else(|| {
                format!(
                    "{}: lru_crawler metadump refused; memcached 1.5+ with the LRU crawler \
                     enabled is needed to list keys",
                    pool.addr()
                )
            })?,
        };
        for line in dump.split(|&b| b == b'\n') {
            let Some(encoded) = line
                .strip_prefix(b"key=")
                .and_then(|rest| rest.split(|&b| b == b' ').next())
            else {
                continue;
            };
            let raw = percent_decode(encoded);
            let base64 = line.split(|&b| b == b' ').any(|token| token == b"b");
            let raw = if base64 {
                use base64::Engine;
                match base64::engine::general_purpose::STANDARD.decode(&raw) {
                    Ok(raw) => raw,
                    Err(_) => continue,
                }
            } else {
                raw
            };
            let (db, key) = if raw.starts_with(LONG_PREFIX) {
                // The whole key is in the value's header.
                match whole_key(pool, &raw).await? {
                    Some(whole) => from_wire(&whole),
                    None => continue,
                }
            } else {
                from_wire(&raw)
            };
            let expires = line
                .split(|&b| b == b' ')
                .find_map(|token| token.strip_prefix(b"exp="))
                .and_then(|exp| std::str::from_utf8(exp).ok()?.parse::<i64>().ok())
                .filter(|&exp| exp >= 0)
                .map(|exp| exp as u64);
            keys.push(Listed {
                server: index,
                db,
                key,
                expires,
            });
        }
    }
    Ok(keys)
}

/// `lru_crawler metadump <what>` on a connection of its own, made as the
/// backend's are (TLS included): the dump is long and must not hold up the
/// pipelined requests. `None` if the server does not know `<what>`; an
/// error (naming the server) if it refuses otherwise (BUSY: another dump
/// is running).
async fn metadump(pool: &ServerPool, what: &str) -> Result<Option<Vec<u8>>, String> {
    let dump = dump(pool, &format!("lru_crawler metadump {what}")).await?;
    let server = pool.addr();
    if dump.starts_with(b"ERROR") || dump.starts_with(b"CLIENT_ERROR") {
        return Ok(None);
    }
    if dump.starts_with(b"BUSY") {
        let line = String::from_utf8_lossy(&dump).trim_end().to_string();
        return Err(format!(
            "{server}: lru_crawler metadump refused ({line}); another listing is running, try again"
        ));
    }
    Ok(Some(dump))
}

/// A dump command (`lru_crawler metadump ...`, `stats cachedump ...`) on a
/// connection of its own: the reply up to its `END`, or the one line a
/// refusal is.
pub(super) async fn dump(pool: &ServerPool, command: &str) -> Result<Vec<u8>, String> {
    let server = pool.addr();
    let mut stream = pool.dedicated().await.map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let mut dump = Vec::new();
    let started = Instant::now();
    while !dump.ends_with(b"END\r\n") {
        // Read straight into the dump: a 64 KiB array here would sit in
        // every future that may await this one (the memcached listener's
        // turn, 66 KB before), allocated and copied for every request.
        dump.reserve(64 * 1024);
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read_buf(&mut dump))
            .await
            .map_err(|_| format!("{server}: {command} stalled"))?
            .map_err(|e| format!("{server}: {e}"))?;
        if n == 0 {
            break;
        }
        let refused = [
            &b"ERROR"[..],
            b"CLIENT_ERROR",
            b"SERVER_ERROR",
            b"BUSY",
            b"BADCLASS",
        ]
        .iter()
        .any(|word| dump.starts_with(word));
        if refused && dump.ends_with(b"\n") {
            break;
        }
    }
    tracing::debug!(%server, command, bytes = dump.len(), elapsed = ?started.elapsed(), "dump read");
    Ok(dump)
}

/// The whole key (with its db prefix) a long key's digest form stands for,
/// read from its value's header; `None` if it is gone meanwhile.
async fn whole_key(pool: &ServerPool, digest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    use base64::Engine;
    let mut request = bytes::BytesMut::from(&b"mg "[..]);
    request.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(digest)
            .as_bytes(),
    );
    request.extend_from_slice(b" b v\r\n");
    let reply = super::call(pool, request, Expect::Count(1))
        .await
        .map_err(|e| e.to_string())?;
    Ok(match reply.into_iter().next() {
        Some(keyway_protocol::memcache::Response::Meta {
            data: Some(data), ..
        }) => long_key_of(&data).map(|key| key.to_vec()),
        _ => None,
    })
}

fn percent_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if text[i] == b'%' && i + 2 < text.len() {
            if let (Some(h), Some(l)) = (hex(text[i + 1]), hex(text[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"a%20b%2"), b"a b%2");
        assert_eq!(percent_decode(b"%ffkw%01x"), b"\xffkw\x01x");
        assert_eq!(percent_decode(b"plain"), b"plain");
    }
}
