//! `stats` and its sections (`settings`, `items`, `slabs`), with memcached's
//! field names and Keyway's figures.

use bytes::{Bytes, BytesMut};
use keyway_protocol::memcache::{encode, Reply};

use super::VERSION;
use crate::metrics::Family;
use crate::op::now_ms;
use crate::session::{Flow, Shared};

/// The figures of a `stats` group (`None`: the general one), as (name,
/// value) pairs; `None` for a group Keyway does not list this way.
pub(super) fn stats_group(shared: &Shared, group: Option<&[u8]>) -> Option<Vec<(String, String)>> {
    let named = |lines: Vec<(&'static str, String)>| {
        lines
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect()
    };
    Some(match group {
        None => named(general_stats(shared)),
        Some(b"settings") => named(settings_stats(shared)),
        Some(b"items") => item_stats(shared),
        Some(b"slabs") => named(slab_stats(shared)),
        Some(_) => return None,
    })
}

pub(super) async fn write_stats(shared: &Shared, args: &[Bytes], out: &mut BytesMut) -> Flow {
    let group = args.first().map(|a| &a[..]);
    if let Some(lines) = stats_group(shared, group) {
        return write_numbered(lines, out);
    }
    match group {
        Some(b"reset") => {
            shared.stats.reset();
            encode(&Reply::Reset, out);
            return Flow::Continue;
        }
        Some(b"detail") => {
            // Keyway keeps no per-prefix figures: on and off are accepted,
            // and the dump is empty.
            let reply = match args.get(1).map(|a| &a[..]) {
                Some(b"on" | b"off") => Reply::Ok,
                Some(b"dump") => Reply::End,
                _ => Reply::ClientError("usage: stats detail on|off|dump".into()),
            };
            encode(&reply, out);
            return Flow::Continue;
        }
        _ => encode(&Reply::Error, out),
    }
    Flow::Continue
}

/// Writes `STAT name value` lines, then END.
fn write_numbered(lines: Vec<(String, String)>, out: &mut BytesMut) -> Flow {
    for (name, value) in lines {
        encode(&Reply::Stat(name, value), out);
    }
    encode(&Reply::End, out);
    Flow::Continue
}

/// `stats items`: memcached reports per slab class; Keyway has no slab
/// classes, so each memory backend is reported as one class, numbered from
/// 1 in configuration order (other backends report their own).
fn item_stats(shared: &Shared) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    let memories = shared
        .router
        .backends()
        .filter(|(_, b)| b.kind() == "memory");
    for (class, (_, backend)) in (1..).zip(memories) {
        let usage = backend.usage();
        lines.push((format!("items:{class}:number"), usage.items.to_string()));
        lines.push((
            format!("items:{class}:evicted"),
            usage.evictions.to_string(),
        ));
        lines.push((
            format!("items:{class}:mem_requested"),
            usage.bytes.to_string(),
        ));
    }
    lines
}

/// `stats slabs`: no slab allocator here; the totals memcached ends with.
fn slab_stats(shared: &Shared) -> Vec<(&'static str, String)> {
    let usage = shared.memory_usage();
    vec![
        ("active_slabs", "0".into()),
        ("total_malloced", usage.bytes.to_string()),
    ]
}

fn general_stats(shared: &Shared) -> Vec<(&'static str, String)> {
    let report = shared.report();
    let usage = report.memory;
    let routed = |family: Family| shared.router.routed_requests(family).to_string();
    vec![
        ("pid", std::process::id().to_string()),
        ("uptime", report.uptime_seconds.to_string()),
        ("time", (now_ms() / 1000).to_string()),
        ("version", VERSION.to_string()),
        ("curr_connections", report.current_connections.to_string()),
        ("total_connections", report.total_connections.to_string()),
        (
            "rejected_connections",
            report.rejected_connections.to_string(),
        ),
        ("cmd_get", (report.get_hits + report.get_misses).to_string()),
        ("cmd_set", report.sets.to_string()),
        ("cmd_flush", routed(Family::Flush)),
        ("cmd_touch", routed(Family::Touch)),
        ("threads", report.worker_threads.to_string()),
        ("auth_cmds", report.auth_attempts.to_string()),
        ("auth_errors", report.auth_failures.to_string()),
        ("get_hits", report.get_hits.to_string()),
        ("get_misses", report.get_misses.to_string()),
        ("bytes_read", report.bytes_read.to_string()),
        ("bytes_written", report.bytes_written.to_string()),
        ("limit_maxbytes", usage.capacity.to_string()),
        ("curr_items", usage.items.to_string()),
        ("bytes", usage.bytes.to_string()),
        ("evictions", usage.evictions.to_string()),
    ]
}

fn settings_stats(shared: &Shared) -> Vec<(&'static str, String)> {
    let usage = shared.memory_usage();
    vec![
        ("maxbytes", usage.capacity.to_string()),
        ("maxconns", shared.config.limits.max_connections.to_string()),
        (
            "item_size_max",
            shared.config.limits.item_size.as_u64().to_string(),
        ),
        ("evictions", "on".into()),
        ("cas_enabled", "yes".into()),
    ]
}
