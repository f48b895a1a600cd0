//! memcached's meta commands (`mg`, `ms`, `md`, `ma`, `me`) on routes other
//! than memcached ones (those forward them as they came: `forward.rs`),
//! translated into router operations and answered as memcached 1.6.18
//! answers them: return flags in the request's order, `q` hiding the
//! nominal reply, opaque and key echoed.
//!
//! Leases and stale items (mg `N` and `R`, ms/md `I`, ms `N`) need a store
//! that keeps per-item win/stale bits; only memcached does, so elsewhere
//! those flags are refused with a `CLIENT_ERROR` that says so. `mg`'s `l` and `h`
//! report 0 (no access times or fetched bits are kept). A CAS compare on
//! `md` and `ma` is a read then the change, not atomic against other
//! clients.

use bytes::{BufMut, Bytes, BytesMut};
use keyway_protocol::memcache::{Meta, MetaCommand, MetaItem};

use super::{expiry_from_exptime, DB};
use crate::backend::BackendError;
use crate::op::{
    now_ms, Arith, ArithOutcome, ExpireCondition, Expiry, ExpiryUpdate, Item, Store, StoreMode,
    StoreStatus,
};
use crate::router::RouteError;
use crate::session::Shared;

const UNSUPPORTED: &str =
    "CLIENT_ERROR meta flags N, R and I (leases, stale items) need a memcached route";

pub async fn execute(shared: &Shared, meta: &Meta, out: &mut BytesMut) {
    let result = match meta.command {
        MetaCommand::Get => get(shared, meta, out).await,
        MetaCommand::Set => set(shared, meta, out).await,
        MetaCommand::Delete => delete(shared, meta, out).await,
        MetaCommand::Arith => arith(shared, meta, out).await,
        MetaCommand::Debug => debug(shared, meta, out).await,
    };
    if let Err(error) = result {
        let line = match error {
            Refusal::Unsupported => UNSUPPORTED.to_string(),
            Refusal::Route(RouteError::Backend(BackendError::NotANumber)) => {
                "CLIENT_ERROR cannot increment or decrement non-numeric value".into()
            }
            Refusal::Route(RouteError::Backend(e)) if e.is_client_error() => {
                format!("CLIENT_ERROR {e}")
            }
            Refusal::Route(e) => format!("SERVER_ERROR {e}"),
        };
        out.put_slice(line.as_bytes());
        out.put_slice(b"\r\n");
    }
}

enum Refusal {
    Unsupported,
    Route(RouteError),
}

impl From<RouteError> for Refusal {
    fn from(error: RouteError) -> Self {
        Refusal::Route(error)
    }
}

/// An item as meta return flags show it.
fn shown(item: &Item) -> MetaItem {
    MetaItem {
        value: item.value.clone(),
        client_flags: item.flags,
        cas: item.cas,
        ttl: seconds_left(item.expiry),
    }
}

/// memcached's `t`: whole seconds left, -1 for no expiry. Rounded up:
/// memcached's clock ticks in seconds, so a TTL just set reads back whole.
fn seconds_left(expiry: Expiry) -> i64 {
    match expiry {
        Expiry::Never => -1,
        Expiry::At(at) => at.saturating_sub(now_ms()).div_ceil(1000) as i64,
    }
}

fn wants(meta: &Meta, flag: u8) -> bool {
    meta.flags.iter().any(|f| f[0] == flag)
}

async fn read(shared: &Shared, key: &Bytes) -> Result<Option<Item>, RouteError> {
    Ok(shared
        .memcache_router
        .get(DB, std::slice::from_ref(key))
        .await?
        .remove(0))
}

async fn get(shared: &Shared, meta: &Meta, out: &mut BytesMut) -> Result<(), Refusal> {
    if meta.vivify.is_some() || meta.recache.is_some() {
        return Err(Refusal::Unsupported);
    }
    let keys = std::slice::from_ref(&meta.key);
    let items = match meta.ttl {
        Some(ttl) => {
            shared
                .memcache_router
                .get_and_touch(DB, keys, expiry_from_exptime(ttl))
                .await?
        }
        None => shared.memcache_router.get(DB, keys).await?,
    };
    shared.stats.record_reads(&items);
    match items.into_iter().next().flatten() {
        Some(item) => {
            let value = meta.value.then_some(&item.value[..]);
            meta.write_reply("HD", Some(&shown(&item)), value, out);
        }
        None if meta.quiet => {}
        None => meta.write_reply("EN", None, None, out),
    }
    Ok(())
}

async fn set(shared: &Shared, meta: &Meta, out: &mut BytesMut) -> Result<(), Refusal> {
    if meta.invalidate || meta.vivify.is_some() {
        return Err(Refusal::Unsupported);
    }
    shared.stats.sets.add(1);
    let data = meta.data.clone().unwrap_or_default();
    let mode = match (meta.mode, meta.cas) {
        (None | Some(b'S') | Some(b'R'), Some(cas)) => StoreMode::Cas(cas),
        (None | Some(b'S'), None) => StoreMode::Set,
        (Some(b'E'), _) => StoreMode::Add,
        (Some(b'A'), _) => StoreMode::Append,
        (Some(b'P'), _) => StoreMode::Prepend,
        (Some(b'R'), None) => StoreMode::Replace,
        _ => unreachable!("the parser refuses other modes"),
    };
    let expiry = match mode {
        // memcached keeps an appended item's flags and expiry.
        StoreMode::Append | StoreMode::Prepend => ExpiryUpdate::Keep,
        _ => ExpiryUpdate::Set(expiry_from_exptime(meta.ttl.unwrap_or(0))),
    };
    let mut store = Store::new(meta.key.clone(), data, mode, expiry);
    store.flags = meta.client_flags;
    let outcome = shared.memcache_router.store(DB, store).await?;
    let code = match outcome.status {
        StoreStatus::Stored => "HD",
        StoreStatus::NotStored => "NS",
        StoreStatus::Exists => "EX",
        StoreStatus::NotFound => "NF",
    };
    if code == "HD" && meta.quiet {
        return Ok(());
    }
    // `c` shows the stored item's CAS id: read back after the write.
    let item = match (code, wants(meta, b'c')) {
        ("HD", true) => read(shared, &meta.key).await?.map(|item| shown(&item)),
        _ => None,
    };
    meta.write_reply(code, item.as_ref(), None, out);
    Ok(())
}

async fn delete(shared: &Shared, meta: &Meta, out: &mut BytesMut) -> Result<(), Refusal> {
    if meta.invalidate {
        return Err(Refusal::Unsupported);
    }
    if let Some(cas) = meta.cas {
        match read(shared, &meta.key).await? {
            None => {
                meta.write_reply("NF", None, None, out);
                return Ok(());
            }
            Some(item) if item.cas != cas => {
                meta.write_reply("EX", None, None, out);
                return Ok(());
            }
            Some(_) => {}
        }
    }
    let deleted = shared
        .memcache_router
        .delete(DB, std::slice::from_ref(&meta.key))
        .await?;
    match deleted[0] {
        true if meta.quiet => {}
        true => meta.write_reply("HD", None, None, out),
        false => meta.write_reply("NF", None, None, out),
    }
    Ok(())
}

async fn arith(shared: &Shared, meta: &Meta, out: &mut BytesMut) -> Result<(), Refusal> {
    let router = &shared.memcache_router;
    if let Some(cas) = meta.cas {
        if let Some(item) = read(shared, &meta.key).await? {
            if item.cas != cas {
                meta.write_reply("EX", None, None, out);
                return Ok(());
            }
        }
    }
    let incr = !matches!(meta.mode, Some(b'D' | b'-'));
    let arith = Arith::Memcache {
        delta: meta.delta,
        incr,
    };
    let number = match router.arith(DB, &meta.key, arith).await? {
        ArithOutcome::Unsigned(n) => n,
        ArithOutcome::Signed(n) => n as u64,
        ArithOutcome::NotFound => match meta.vivify {
            None => {
                meta.write_reply("NF", None, None, out);
                return Ok(());
            }
            Some(ttl) => {
                // Created with J (memcached's autovivify: an add).
                let value = Bytes::from(meta.initial.to_string());
                let expiry = ExpiryUpdate::Set(expiry_from_exptime(ttl));
                let store = Store::new(meta.key.clone(), value, StoreMode::Add, expiry);
                if router.store(DB, store).await?.status != StoreStatus::Stored {
                    meta.write_reply("NS", None, None, out);
                    return Ok(());
                }
                return write_number(shared, meta, meta.initial, true, out).await;
            }
        },
    };
    if let Some(ttl) = meta.ttl {
        let expiry = expiry_from_exptime(ttl);
        router
            .expire(DB, &meta.key, expiry, ExpireCondition::Always)
            .await?;
    }
    write_number(shared, meta, number, false, out).await
}

/// ma's answer: `HD` or `VA <len>` with the number (hidden by `q` unless
/// the item was just created), with `c` and `t` read back when asked.
async fn write_number(
    shared: &Shared,
    meta: &Meta,
    number: u64,
    created: bool,
    out: &mut BytesMut,
) -> Result<(), Refusal> {
    if meta.quiet && !created {
        return Ok(());
    }
    let item = match wants(meta, b'c') || wants(meta, b't') {
        true => read(shared, &meta.key).await?.map(|item| shown(&item)),
        false => None,
    };
    let digits = number.to_string();
    let value = meta.value.then_some(digits.as_bytes());
    meta.write_reply("HD", item.as_ref(), value, out);
    Ok(())
}

/// `me`: memcached's debug line. `exp` is as memcached prints it (the
/// negated seconds left; -1 for none); `la`, `fetch` and `cls` are
/// constants and `size` Keyway's own estimate of the item (key, value and
/// memcached's 48-byte header), as Keyway keeps none of those figures.
async fn debug(shared: &Shared, meta: &Meta, out: &mut BytesMut) -> Result<(), Refusal> {
    let Some(item) = read(shared, &meta.key).await? else {
        out.put_slice(b"EN\r\n");
        return Ok(());
    };
    out.put_slice(b"ME ");
    if meta.key_shown_binary(true) {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode(&meta.key);
        out.put_slice(key.as_bytes());
    } else {
        out.put_slice(&meta.key);
    }
    let exp = match seconds_left(item.expiry) {
        -1 => -1,
        left => -left,
    };
    let size = 48 + meta.key.len() + 1 + item.value.len() + 2 + 8;
    let line = format!(
        " exp={exp} la=0 cas={} fetch=no cls=1 size={size}\r\n",
        item.cas
    );
    out.put_slice(line.as_bytes());
    Ok(())
}
