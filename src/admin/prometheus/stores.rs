//! The stores' and policies' figures: backend health and pools, memory
//! stores, SQL batches and change logs, write-through tiers' coherence,
//! policy counters.

use std::fmt::Error;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{backend_labels, family, Labels, Sample};
use crate::backend::AnyBackend;
use crate::policy::{Policy, Target};
use crate::session::Shared;

/// A counter family: name, help, and how to read it from `F`.
type Counted<F> = (&'static str, &'static str, fn(&F) -> u64);

/// One counter family per entry of `counters`, its samples made by
/// `samples` from the entry's reader.
fn counter_families<'a, F, S>(
    encoder: &mut DescriptorEncoder,
    counters: &[Counted<F>],
    samples: impl Fn(fn(&F) -> u64) -> S,
) -> Result<(), Error>
where
    S: IntoIterator<Item = (Labels<'a>, Sample)>,
{
    for &(name, help, which) in counters {
        family(
            encoder,
            name,
            help,
            None,
            MetricType::Counter,
            samples(which),
        )?;
    }
    Ok(())
}

/// Health, pools and SQL batches per backend.
pub(super) fn backends(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
    let leaves: Vec<&Target> = shared
        .router
        .targets()
        .filter(|t| t.backend().is_some())
        .collect();
    let labels = backend_labels;
    family(
        encoder,
        "keyway_backend_up",
        "0 when the backend's last request failed because it was unreachable or timed out, 1 otherwise (GET /readyz probes it).",
        None,
        MetricType::Gauge,
        leaves.iter().map(|t| {
            let down = t.stats.health() == crate::metrics::Health::Down;
            (labels(t), Sample::Gauge(i64::from(!down)))
        }),
    )?;
    let pools: Vec<_> = leaves
        .iter()
        .filter_map(|t| Some((*t, t.backend()?.connections()?)))
        .collect();
    family(
        encoder,
        "keyway_backend_connections",
        "Connections to the backend open now (memcached: over every server; redis: RESP3 and RESP2 pools).",
        None,
        MetricType::Gauge,
        pools
            .iter()
            .map(|(t, (open, _))| (labels(t), Sample::Gauge(*open as i64))),
    )?;
    family(
        encoder,
        "keyway_backend_connections_max",
        "The most connections the backend's pools keep.",
        None,
        MetricType::Gauge,
        pools
            .iter()
            .map(|(t, (_, max))| (labels(t), Sample::Gauge(*max as i64))),
    )?;
    clusters(encoder, &leaves)?;
    sql_batches(encoder, &leaves)
}

/// A Redis Cluster backend's redirects followed and slot maps taken.
fn clusters(encoder: &mut DescriptorEncoder, leaves: &[&Target]) -> Result<(), Error> {
    let clusters: Vec<_> = leaves
        .iter()
        .filter_map(|t| match t.backend()? {
            AnyBackend::Redis(redis) => Some((*t, redis.cluster_figures()?)),
            _ => None,
        })
        .collect();
    family(
        encoder,
        "keyway_redis_cluster_redirects",
        "Replies a Redis Cluster backend followed instead of answering: MOVED (a slot has moved), ASK (a slot is migrating), TRYAGAIN (retried after a pause), and rerouted (sent to a slot's new owner after the old one could not be reached).",
        None,
        MetricType::Counter,
        clusters.iter().flat_map(|(t, figures)| {
            use std::sync::atomic::Ordering::Relaxed;
            [
                ("moved", &figures.moved),
                ("ask", &figures.ask),
                ("tryagain", &figures.try_again),
                ("rerouted", &figures.rerouted),
            ]
            .map(|(kind, counter)| {
                let mut labels = vec![("backend", t.stats.name())];
                labels.push(("redirect", kind));
                (labels, Sample::Counter(counter.load(Relaxed)))
            })
        }),
    )?;
    family(
        encoder,
        "keyway_redis_cluster_slot_maps",
        "Slot maps a Redis Cluster backend took from CLUSTER SLOTS (the first, and one after each change it noticed).",
        None,
        MetricType::Counter,
        clusters.iter().map(|(t, figures)| {
            let slot_maps = figures.slot_maps.load(std::sync::atomic::Ordering::Relaxed);
            (vec![("backend", t.stats.name())], Sample::Counter(slot_maps))
        }),
    )?;
    Ok(())
}

/// Writes per transaction of each SQL backend's batching writer.
fn sql_batches(encoder: &mut DescriptorEncoder, leaves: &[&Target]) -> Result<(), Error> {
    let labels = backend_labels;
    let sql: Vec<_> = leaves
        .iter()
        .filter_map(|t| match t.backend()? {
            AnyBackend::Sql(sql) => Some((*t, sql.batch_sizes())),
            _ => None,
        })
        .collect();
    family(
        encoder,
        "keyway_sql_batch_size",
        "Writes committed per SQL transaction by a backend's batching writer.",
        None,
        MetricType::Histogram,
        sql.iter().map(|(t, (sum, counts))| {
            let buckets = crate::backend::sql::BATCH_BOUNDS
                .iter()
                .map(|&b| b as f64)
                .chain([f64::INFINITY])
                .zip(counts.iter().copied())
                .collect();
            let count = counts.iter().sum();
            let sample = Sample::Histogram {
                sum: *sum as f64,
                count,
                buckets,
            };
            (labels(t), sample)
        }),
    )
}

/// Memory backends' items, bytes and evictions.
pub(super) fn memory(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
    let memories: Vec<_> = shared
        .router
        .backends()
        .filter(|(_, b)| matches!(b, AnyBackend::Memory(_)))
        .map(|(name, b)| (vec![("backend", name)], b.usage()))
        .collect();
    let series = |value: fn(&crate::backend::memory::Usage) -> u64| {
        memories
            .iter()
            .map(move |(labels, usage)| (labels.clone(), value(usage)))
    };
    family(
        encoder,
        "keyway_memory_items",
        "Items held by a memory backend.",
        None,
        MetricType::Gauge,
        series(|u| u.items).map(|(l, v)| (l, Sample::Gauge(v as i64))),
    )?;
    family(
        encoder,
        "keyway_memory_used",
        "Bytes a memory backend's items take (as memcached counts them).",
        Some(&Unit::Bytes),
        MetricType::Gauge,
        series(|u| u.bytes).map(|(l, v)| (l, Sample::Gauge(v as i64))),
    )?;
    family(
        encoder,
        "keyway_memory_capacity",
        "A memory backend's capacity.",
        Some(&Unit::Bytes),
        MetricType::Gauge,
        series(|u| u.capacity).map(|(l, v)| (l, Sample::Gauge(v as i64))),
    )?;
    family(
        encoder,
        "keyway_memory_evictions",
        "Items a memory backend evicted to make room.",
        None,
        MetricType::Counter,
        series(|u| u.evictions).map(|(l, v)| (l, Sample::Counter(v))),
    )
}

/// Failover members' state and shadow comparisons.
pub(super) fn policies(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
    let mut members = Vec::new();
    let mut shadows = Vec::new();
    for (name, policy) in shared.router.policies() {
        match policy {
            Policy::Failover(failover) => {
                for i in 0..failover.member_count() {
                    members.push((name, failover.member_name(i), failover.is_up(i)));
                }
            }
            Policy::Shadow(shadow) => shadows.push((name, shadow.counts())),
            _ => {}
        }
    }
    family(
        encoder,
        "keyway_failover_member_up",
        "1 while a failover policy sends requests to the member, 0 while it is marked down and probed.",
        None,
        MetricType::Gauge,
        members.iter().map(|(policy, member, up)| {
            (
                vec![("policy", *policy), ("member", *member)],
                Sample::Gauge(i64::from(*up)),
            )
        }),
    )?;
    let shadow_counter = |which: fn(&crate::policy::ShadowCounts) -> u64| {
        shadows.iter().map(move |(policy, counts)| {
            (vec![("policy", *policy)], Sample::Counter(which(counts)))
        })
    };
    family(
        encoder,
        "keyway_shadow_mirrored",
        "Requests a shadow policy repeated on its shadow member.",
        None,
        MetricType::Counter,
        shadow_counter(|c| c.mirrored.load(Relaxed)),
    )?;
    family(
        encoder,
        "keyway_shadow_mismatches",
        "Mirrored requests whose shadow answer differed from the primary's.",
        None,
        MetricType::Counter,
        shadow_counter(|c| c.mismatches.load(Relaxed)),
    )?;
    family(
        encoder,
        "keyway_shadow_errors",
        "Mirrored requests the shadow member failed.",
        None,
        MetricType::Counter,
        shadow_counter(|c| c.errors.load(Relaxed)),
    )
}

/// SQL change logs and the write-through caches that follow them.
/// Each SQL backend's change log: what this Keyway wrote to it and read from it.
pub(super) fn change_log(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
    let sql: Vec<(&Target, &crate::backend::sql::SqlBackend)> = shared
        .router
        .targets()
        .filter_map(|t| match t.backend()? {
            AnyBackend::Sql(sql) => Some((t, sql)),
            _ => None,
        })
        .collect();
    family(
        encoder,
        "keyway_change_log_written",
        "Change-log entries (one per changed key) this Keyway wrote with its SQL writes: the invalidations it sent to other Keyways.",
        None,
        MetricType::Counter,
        sql.iter()
            .map(|(t, sql)| (backend_labels(t), Sample::Counter(sql.changes_logged()))),
    )?;
    let feeds: Vec<_> = sql.iter().filter(|(_, sql)| sql.feed().started()).collect();
    let feed_figure = |which: fn(&crate::backend::sql::changes::FeedFigures) -> u64| {
        feeds.iter().map(move |(t, sql)| {
            (
                backend_labels(t),
                Sample::Counter(which(&sql.feed().figures)),
            )
        })
    };
    family(
        encoder,
        "keyway_change_feed_up",
        "1 while the SQL backend's change log is read successfully, 0 while polls fail (tiers in front of it are then skipped).",
        None,
        MetricType::Gauge,
        feeds.iter().map(|(t, sql)| {
            let up = sql.feed().figures.up.load(Relaxed);
            (backend_labels(t), Sample::Gauge(i64::from(up)))
        }),
    )?;
    #[rustfmt::skip]
    let counters: [Counted<crate::backend::sql::changes::FeedFigures>; 3] = [
        ("keyway_change_feed_polls", "Polls of the SQL backend's change log.", |f| f.polls.load(Relaxed)),
        ("keyway_change_feed_poll_errors", "Polls of the change log that failed.", |f| f.poll_errors.load(Relaxed)),
        ("keyway_change_feed_read", "Change-log entries read (every writer's, this Keyway's included).", |f| f.changes_read.load(Relaxed)),
    ];
    counter_families(encoder, &counters, feed_figure)?;
    Ok(())
}

/// What each write-through cache that follows a change log makes of it.
pub(super) fn coherence(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
    let watching: Vec<(&str, &crate::policy::Coherence)> = shared
        .router
        .policies()
        .filter_map(|(name, policy)| match policy {
            Policy::WriteThrough(wt) if wt.coherence().is_watching() => {
                Some((name, wt.coherence()))
            }
            _ => None,
        })
        .collect();
    let policy_figure = |which: fn(&crate::policy::CoherenceFigures) -> u64| {
        watching
            .iter()
            .map(move |(name, c)| (vec![("policy", *name)], Sample::Counter(which(&c.figures))))
    };
    family(
        encoder,
        "keyway_coherence_trusted",
        "1 while a write-through cache answers reads (its change feed is current within max_staleness_ms), 0 while reads go to the durable store.",
        None,
        MetricType::Gauge,
        watching
            .iter()
            .map(|(name, c)| (vec![("policy", *name)], Sample::Gauge(i64::from(c.trusted())))),
    )?;
    family(
        encoder,
        "keyway_coherence_lag",
        "Age of the last change-log poll a write-through cache applied: how stale it could be now.",
        Some(&Unit::Seconds),
        MetricType::Gauge,
        watching.iter().map(|(name, c)| {
            let lag = c.lag().map_or(0.0, |lag| lag.as_secs_f64().min(1e9));
            (vec![("policy", *name)], Sample::GaugeF(lag))
        }),
    )?;
    #[rustfmt::skip]
    let counters: [Counted<crate::policy::CoherenceFigures>; 3] = [
        ("keyway_coherence_invalidations", "Keys other Keyways changed that a write-through cache dropped: the invalidations it received.", |f| f.invalidations.load(Relaxed)),
        ("keyway_coherence_fallback_reads", "Reads a write-through policy sent to its durable store because its cache was not current.", |f| f.fallback_reads.load(Relaxed)),
        ("keyway_coherence_resets", "Times a write-through cache was emptied because changes may have been missed (feed started or fell behind).", |f| f.resets.load(Relaxed)),
    ];
    counter_families(encoder, &counters, policy_figure)?;
    Ok(())
}
