//! The item dumps memcached's tools read: `stats cachedump <class> <limit>`
//! and `lru_crawler metadump <all|hash|classes>`. Memory backends answer
//! them as memcached's slab classes would, numbered as `stats items`
//! numbers them (one class per memory backend, from 1 in configuration
//! order); a listener whose routes reach memcached pools and no memory
//! backend forwards them to every server of those pools (memcached's own
//! answers, one `END`).

use bytes::{Bytes, BytesMut};

use super::DB;
use crate::backend::{AnyBackend, Ops};
use crate::op::{now_ms, Expiry, Item};
use crate::session::Shared;

/// memcached's slab classes are numbered below 64.
const CLASSES: u64 = 64;
/// What memcached's cachedump buffer holds at most.
const CACHEDUMP_BYTES: usize = 2 * 1024 * 1024;
/// Keys read per listing step.
const PAGE: usize = 1000;

/// `stats cachedump <class> <limit>`.
pub(super) async fn cachedump(shared: &Shared, args: &[Bytes], out: &mut BytesMut) {
    if args.len() != 3 {
        return out.extend_from_slice(b"CLIENT_ERROR bad command line\r\n");
    }
    let (Some(class), Some(limit)) = (number(&args[1]), number(&args[2])) else {
        return out.extend_from_slice(b"CLIENT_ERROR bad command line format\r\n");
    };
    if class >= CLASSES {
        return out.extend_from_slice(b"CLIENT_ERROR Illegal slab id\r\n");
    }
    let command = format!("stats cachedump {class} {limit}");
    if forwarded(shared, &command, out).await {
        return;
    }
    let mut dump = Vec::new();
    if let Some(memory) = memory_backend(shared, class) {
        let limit = if limit == 0 {
            usize::MAX
        } else {
            limit as usize
        };
        let mut shown = 0;
        let _ = each_item(memory, |key, item| {
            let line = format!(
                "ITEM {} [{} b; {} s]\r\n",
                String::from_utf8_lossy(key),
                item.value.len(),
                expiry_seconds(item.expiry).unwrap_or(0)
            );
            if shown == limit || dump.len() + line.len() + 5 > CACHEDUMP_BYTES {
                return false;
            }
            dump.extend_from_slice(line.as_bytes());
            shown += 1;
            true
        })
        .await;
    }
    out.extend_from_slice(&dump);
    out.extend_from_slice(b"END\r\n");
}

/// `lru_crawler <subcommand> [arg]`: `metadump` answered; the crawler's
/// controls accepted (Keyway has no crawler to start, stop or pace); other
/// forms `ERROR`, as memcached.
pub(super) async fn lru_crawler(shared: &Shared, args: &[Bytes], out: &mut BytesMut) {
    match (args.first().map(|a| &a[..]), args.len()) {
        (Some(b"metadump"), 2) => metadump(shared, &args[1], out).await,
        (Some(b"crawl" | b"tocrawl" | b"sleep"), 2) | (Some(b"enable" | b"disable"), 1) => {
            out.extend_from_slice(b"OK\r\n")
        }
        _ => out.extend_from_slice(b"ERROR\r\n"),
    }
}

/// `lru_crawler metadump all|hash|<class>[,<class>...]`: a
/// `key=... exp=... la=... cas=... fetch=... cls=... size=...` line per
/// item (memcached's format: newline only), then `END`.
async fn metadump(shared: &Shared, what: &[u8], out: &mut BytesMut) {
    let classes: Option<Vec<u64>> = match what {
        b"all" | b"hash" => Some((1..CLASSES).collect()),
        list => list
            .split(|&b| b == b',')
            .map(|class| number(class).filter(|c| (1..CLASSES).contains(c)))
            .collect(),
    };
    let Some(classes) = classes else {
        return out.extend_from_slice(b"BADCLASS invalid class id\r\n");
    };
    let command = format!("lru_crawler metadump {}", String::from_utf8_lossy(what));
    if forwarded(shared, &command, out).await {
        return;
    }
    let now = now_ms() / 1000;
    for class in classes {
        let Some(memory) = memory_backend(shared, class) else {
            continue;
        };
        let _ = each_item(memory, |key, item| {
            let exp = expiry_seconds(item.expiry).map_or(-1, |at| at as i64);
            let line = format!(
                "key={} exp={exp} la={now} cas={} fetch=no cls={class} size={}\n",
                uri_encode(key),
                item.cas,
                key.len() + item.value.len() + 48
            );
            out.extend_from_slice(line.as_bytes());
            true
        })
        .await;
    }
    out.extend_from_slice(b"END\r\n");
}

/// Sends `command` to every server of the memcached pools this listener's
/// routes reach, when it reaches no memory backend; true if it answered.
async fn forwarded(shared: &Shared, command: &str, out: &mut BytesMut) -> bool {
    if memory_backend(shared, 1).is_some() {
        return false;
    }
    let pools: Vec<_> = shared
        .memcache_router
        .reached_backends()
        .filter_map(|(_, backend)| match backend {
            AnyBackend::Memcached(memcached) => Some(memcached),
            _ => None,
        })
        .collect();
    if pools.is_empty() {
        return false;
    }
    let mut lines = Vec::new();
    for pool in pools {
        match pool.dump(command).await {
            Ok(dump) => match dump.strip_suffix(b"END\r\n") {
                Some(items) => lines.extend_from_slice(items),
                None => {
                    out.extend_from_slice(&dump);
                    return true;
                }
            },
            Err(error) => {
                out.extend_from_slice(format!("SERVER_ERROR {error}\r\n").as_bytes());
                return true;
            }
        }
    }
    out.extend_from_slice(&lines);
    out.extend_from_slice(b"END\r\n");
    true
}

/// The memory backend `stats items` numbers `class` (from 1).
fn memory_backend(shared: &Shared, class: u64) -> Option<&AnyBackend> {
    let index = usize::try_from(class.checked_sub(1)?).ok()?;
    shared
        .router
        .backends()
        .filter(|(_, backend)| backend.kind() == "memory")
        .nth(index)
        .map(|(_, backend)| backend)
}

/// Calls `each` with every live item of the memcached namespace, page by
/// page, until it returns false.
async fn each_item(
    backend: &AnyBackend,
    mut each: impl FnMut(&Bytes, &Item) -> bool,
) -> crate::backend::Result<()> {
    let mut cursor = 0;
    loop {
        let page = backend.scan(DB, cursor, None, PAGE).await?;
        let items = backend.get(DB, &page.keys).await?;
        for (key, item) in page.keys.iter().zip(items) {
            if let Some(item) = item {
                if !each(key, &item) {
                    return Ok(());
                }
            }
        }
        cursor = page.cursor;
        if cursor == 0 {
            return Ok(());
        }
    }
}

/// An expiry as memcached shows it: unix seconds, `None` for never.
fn expiry_seconds(expiry: Expiry) -> Option<u64> {
    match expiry {
        Expiry::Never => None,
        Expiry::At(ms) => Some(ms / 1000),
    }
}

/// memcached's `uriencode`: every byte but `A-Z a-z 0-9 - . _ ~` as `%XX`.
fn uri_encode(key: &[u8]) -> String {
    let mut text = String::with_capacity(key.len());
    for &byte in key {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            text.push(byte as char);
        } else {
            text.push_str(&format!("%{byte:02X}"));
        }
    }
    text
}

/// memcached's `safe_strtoul`.
fn number(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}
