//! memcached clients' requests on keys a `memcached://` route owns go to
//! that pool as they came, and its replies back as they came (see
//! `backend::memcached::forward`). Everything else (other backends, keys
//! memcached holds under another name, Keyway's own commands such as
//! `flush_all` and `stats`) runs as operations.

use bytes::{Bytes, BytesMut};
use keyway_protocol::memcache::{encode, MetaCommand, Request, Response};

use super::error_reply;
use crate::backend::memcached::MemcachedBackend;
use crate::metrics::Family;
use crate::router::{Access, Passage, RouteError};
use crate::session::Shared;

/// Forwards `request` (whose bytes are `raw`) if a memcached route owns its
/// keys, writing memcached's reply to `out`. False: run it as operations.
pub async fn forward(shared: &Shared, request: &Request, raw: &Bytes, out: &mut BytesMut) -> bool {
    match request {
        Request::Get { keys, with_cas } => {
            let command: &[u8] = if *with_cas { b"gets" } else { b"get" };
            retrieval(shared, command, keys, Access::Read, raw, out).await
        }
        Request::GetAndTouch {
            exptime,
            keys,
            with_cas,
        } => {
            let command = format!("{} {exptime}", if *with_cas { "gats" } else { "gat" });
            retrieval(shared, command.as_bytes(), keys, Access::Write, raw, out).await
        }
        Request::Store { key, noreply, .. } => {
            let forwarded = one_key(shared, Family::Set, key, *noreply, raw, out).await;
            if forwarded {
                shared.stats.sets.add(1);
            }
            forwarded
        }
        Request::Delete { key, noreply } => {
            one_key(shared, Family::Delete, key, *noreply, raw, out).await
        }
        Request::Arith { key, noreply, .. } => {
            one_key(shared, Family::Arith, key, *noreply, raw, out).await
        }
        Request::Touch { key, noreply, .. } => {
            one_key(shared, Family::Touch, key, *noreply, raw, out).await
        }
        // Text keys only: a `b` key is forwarded too when it decodes to one.
        Request::Meta(meta) => meta_command(shared, meta, raw, out).await,
        _ => false,
    }
}

/// A meta command on a memcached route, forwarded as it came (leases and
/// stale items are memcached's own then). `q` is taken off the line and
/// applied here, as memcached applies it: the nominal reply (`EN` for mg,
/// `HD` for ms/md, any success for ma) is dropped, others are shown — a
/// reply nobody waits for would shift every later one on the shared
/// connection.
async fn meta_command(
    shared: &Shared,
    meta: &keyway_protocol::memcache::Meta,
    raw: &Bytes,
    out: &mut BytesMut,
) -> bool {
    // `me` is answered by Keyway on every route (its figures: meta.rs).
    if meta.command == MetaCommand::Debug {
        return false;
    }
    // `mg` may create (N) or touch (T): meta commands count as writes.
    let Some(passage) = passage(shared, std::slice::from_ref(&meta.key), Access::Write) else {
        return false;
    };
    let family = match meta.command {
        MetaCommand::Get | MetaCommand::Debug => Family::Get,
        MetaCommand::Set => Family::Set,
        MetaCommand::Delete => Family::Delete,
        MetaCommand::Arith => Family::Arith,
    };
    // Flags follow the key (and ms's data length).
    let first_flag = if meta.command == MetaCommand::Set {
        3
    } else {
        2
    };
    let request = if meta.quiet {
        without_quiet(raw, first_flag)
    } else {
        raw.clone()
    };
    let send = passage.backend().forward_one(&meta.key, request);
    let reply = passage.call([family], send).await;
    match reply {
        Ok(reply) => {
            let nominal = match meta.command {
                MetaCommand::Get => reply.raw.starts_with(b"EN"),
                MetaCommand::Set | MetaCommand::Delete => reply.raw.starts_with(b"HD"),
                MetaCommand::Arith => reply.raw.starts_with(b"HD") || reply.raw.starts_with(b"VA"),
                MetaCommand::Debug => false,
            };
            if !(meta.quiet && nominal) {
                out.extend_from_slice(&reply.raw);
            }
        }
        Err(error) => encode(&error_reply(&RouteError::Backend(error)), out),
    }
    true
}

/// `raw` with its `q` flag token taken off the line (a key named `q` stays).
fn without_quiet(raw: &Bytes, first_flag: usize) -> Bytes {
    let line_end = memchr::memchr(b'\n', raw).expect("a request is a line first");
    let line = raw[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&raw[..line_end]);
    let kept: Vec<&[u8]> = line
        .split(|&b| b == b' ')
        .filter(|token| !token.is_empty())
        .enumerate()
        .filter(|(i, token)| *i < first_flag || *token != b"q")
        .map(|(_, token)| token)
        .collect();
    with_line(raw, line_end, &kept.join(&b' '))
}

/// `raw` with its command line (ending at `line_end`, the `\n`) replaced
/// by `line`; the data block after it kept as it came.
fn with_line(raw: &Bytes, line_end: usize, line: &[u8]) -> Bytes {
    let mut request = BytesMut::with_capacity(raw.len());
    request.extend_from_slice(line);
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(&raw[line_end + 1..]);
    request.freeze()
}

/// The memcached pool `keys` can be forwarded to as they came, if any.
fn passage<'a>(
    shared: &'a Shared,
    keys: &[Bytes],
    access: Access,
) -> Option<Passage<'a, MemcachedBackend>> {
    if !keys.iter().all(|key| MemcachedBackend::forwards(key)) {
        return None;
    }
    shared
        .memcache_router
        .memcached_passage(keys.iter().map(|key| &key[..]), access)
}

async fn retrieval(
    shared: &Shared,
    command: &[u8],
    keys: &[Bytes],
    access: Access,
    raw: &Bytes,
    out: &mut BytesMut,
) -> bool {
    let Some(passage) = passage(shared, keys, access) else {
        return false;
    };
    let send = passage
        .backend()
        .forward_retrieval(command, keys, raw.clone());
    let result = passage.call([Family::Get], send).await;
    match result {
        Ok(replies) => {
            let hits = replies
                .iter()
                .filter(|reply| matches!(reply.response, Response::Value { .. }))
                .count() as u64;
            passage.record_reads(hits, keys.len() as u64 - hits);
            if hits > 0 {
                shared.stats.get_hits.add(hits);
            }
            if hits < keys.len() as u64 {
                shared.stats.get_misses.add(keys.len() as u64 - hits);
            }
            for reply in replies {
                out.extend_from_slice(&reply.raw);
            }
        }
        Err(error) => encode(&error_reply(&RouteError::Backend(error)), out),
    }
    true
}

async fn one_key(
    shared: &Shared,
    family: Family,
    key: &Bytes,
    noreply: bool,
    raw: &Bytes,
    out: &mut BytesMut,
) -> bool {
    let Some(passage) = passage(shared, std::slice::from_ref(key), Access::Write) else {
        return false;
    };
    // Under noreply memcached still answers some errors, and a reply nobody
    // waits for would shift every later reply on the shared connection: ask
    // for the reply, and drop it.
    let request = if noreply {
        without_noreply(raw)
    } else {
        raw.clone()
    };
    let reply = passage
        .call([family], passage.backend().forward_one(key, request))
        .await;
    if !noreply {
        match reply {
            Ok(reply) => out.extend_from_slice(&reply.raw),
            Err(error) => encode(&error_reply(&RouteError::Backend(error)), out),
        }
    }
    true
}

/// `raw` without its trailing `noreply` token (the line's last token).
fn without_noreply(raw: &Bytes) -> Bytes {
    let line_end = memchr::memchr(b'\n', raw).expect("a request is a line first");
    let at = memchr::memmem::rfind(&raw[..line_end], b"noreply").expect("the request said noreply");
    with_line(raw, line_end, &raw[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_is_cut_from_the_line_only() {
        let cut =
            |raw: &'static str, first| without_quiet(&Bytes::from_static(raw.as_bytes()), first);
        assert_eq!(cut("ms q 1 q T0\r\nq\r\n", 3), "ms q 1 T0\r\nq\r\n");
        assert_eq!(cut("mg q v q\n", 2), "mg q v\r\n");
    }

    #[test]
    fn noreply_is_cut_from_the_line_only() {
        let cut = |raw: &'static str| without_noreply(&Bytes::from_static(raw.as_bytes()));
        assert_eq!(
            cut("set k 1 0 7 noreply\r\nnoreply\r\n"),
            "set k 1 0 7 \r\nnoreply\r\n"
        );
        assert_eq!(cut("delete noreply noreply\n"), "delete noreply \r\n");
        assert_eq!(cut("incr k 5 noreply  \r\n"), "incr k 5 \r\n");
    }
}
