//! `/metrics`: every figure Keyway keeps, in the OpenMetrics text format
//! (which Prometheus scrapes natively), encoded by `prometheus-client` from
//! the current generation's counters at scrape time.
//!
//! Label design: `target` is a backend or policy by its configured name
//! (routes name targets, so a dashboard filters by the names in its
//! config); `kind` is the store (memory, memcached, redis, sqlite, postgres,
//! mysql) or the policy kind; `family` is the command family
//! ([`Family`]). `keyway_route_info` maps each route to its target.

use std::fmt::Error;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::backend::AnyBackend;
use crate::metrics::{Family, LATENCY_BOUNDS_US};
use crate::policy::{Policy, Target};
use crate::session::Shared;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition of `shared`'s figures.
pub fn render(shared: Arc<Shared>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures(shared)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

struct Figures(Arc<Shared>);

impl std::fmt::Debug for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Figures")
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One metric family: its descriptor, then one sample set per label set.
fn family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels<'a>, Sample)>,
) -> Result<(), Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    for (labels, sample) in samples {
        match sample {
            // An info's labels are its value.
            Sample::Info => metric.encode_info(&labels)?,
            // A metric without labels has one sample, written bare.
            sample if labels.is_empty() => return sample.encode(metric),
            sample => sample.encode(metric.encode_family(&labels)?)?,
        }
    }
    Ok(())
}

enum Sample {
    Counter(u64),
    Gauge(i64),
    GaugeF(f64),
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
    Info,
}

impl Sample {
    fn encode(self, mut encoder: MetricEncoder) -> Result<(), Error> {
        match self {
            Sample::Counter(value) => ConstCounter::new(value).encode(encoder),
            Sample::Gauge(value) => ConstGauge::new(value).encode(encoder),
            Sample::GaugeF(value) => ConstGauge::new(value).encode(encoder),
            Sample::Histogram {
                sum,
                count,
                buckets,
            } => encoder.encode_histogram::<Vec<(String, String)>>(sum, count, &buckets, None),
            Sample::Info => unreachable!("encoded by family()"),
        }
    }
}

fn kind_of(target: &Target) -> &'static str {
    match (target.backend(), target.policy()) {
        (Some(backend), _) => backend.kind(),
        (_, Some(Policy::WriteThrough(_))) => "write-through",
        (_, Some(Policy::Migrate(_))) => "migrate",
        (_, Some(Policy::Failover(_))) => "failover",
        (_, Some(Policy::Replicate(_))) => "replicate",
        (_, Some(Policy::Shadow(_))) => "shadow",
        _ => unreachable!("a target is a backend or a policy"),
    }
}

fn target_labels(target: &Target) -> Labels<'_> {
    vec![("target", target.stats.name()), ("kind", kind_of(target))]
}

fn family_labels(target: &Target, family: Family) -> Labels<'_> {
    let mut labels = target_labels(target);
    labels.push(("family", family.name()));
    labels
}

fn backend_labels(target: &Target) -> Labels<'_> {
    vec![("backend", target.stats.name()), ("kind", kind_of(target))]
}

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let shared = &self.0;
        requests(&mut encoder, shared)?;
        backends(&mut encoder, shared)?;
        clients(&mut encoder, shared)?;
        memory(&mut encoder, shared)?;
        policies(&mut encoder, shared)?;
        change_log(&mut encoder, shared)?;
        coherence(&mut encoder, shared)?;
        sessions(&mut encoder)?;
        reloads(&mut encoder, shared)
    }
}

/// Requests, errors, latency, hits and misses per target and family, and
/// which route leads where.
fn requests(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
    let targets: Vec<&Target> = shared.router.targets().collect();
    let snapshots: Vec<_> = targets
        .iter()
        .flat_map(|target| {
            Family::ALL
                .into_iter()
                .map(move |family| (*target, family, target.stats.family(family)))
        })
        .filter(|(_, _, snapshot)| snapshot.requests > 0)
        .collect();
    let labels = family_labels;
    family(
        encoder,
        "keyway_requests",
        "Requests to a backend or policy, by command family (a multi-key request split over targets counts once on each).",
        None,
        MetricType::Counter,
        snapshots
            .iter()
            .map(|(t, f, s)| (labels(t, *f), Sample::Counter(s.requests))),
    )?;
    family(
        encoder,
        "keyway_request_errors",
        "Requests that failed in the backend (unreachable, timed out, refused); not client errors such as incr on a non-number.",
        None,
        MetricType::Counter,
        snapshots
            .iter()
            .map(|(t, f, s)| (labels(t, *f), Sample::Counter(s.errors))),
    )?;
    family(
        encoder,
        "keyway_request_duration",
        "Time from handing a request to a backend or policy to its answer.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
        snapshots.iter().map(|(t, f, s)| {
            let buckets = LATENCY_BOUNDS_US
                .iter()
                .map(|&us| us as f64 / 1e6)
                .chain([f64::INFINITY])
                .zip(s.buckets.iter().copied())
                .collect();
            let sample = Sample::Histogram {
                sum: s.seconds,
                count: s.requests,
                buckets,
            };
            (labels(t, *f), sample)
        }),
    )?;
    reads(encoder, &targets)?;
    routes(encoder, shared)
}

/// Hits and misses by target.
fn reads(encoder: &mut DescriptorEncoder, targets: &[&Target]) -> Result<(), Error> {
    let reads: Vec<_> = targets
        .iter()
        .map(|target| (*target, target.stats.hits_and_misses()))
        .filter(|(_, (hits, misses))| hits + misses > 0)
        .collect();
    family(
        encoder,
        "keyway_hits",
        "Keys found by reads (get, gets, gat, MGET...).",
        None,
        MetricType::Counter,
        reads
            .iter()
            .map(|(t, (hits, _))| (target_labels(t), Sample::Counter(*hits))),
    )?;
    family(
        encoder,
        "keyway_misses",
        "Keys not found by reads.",
        None,
        MetricType::Counter,
        reads
            .iter()
            .map(|(t, (_, misses))| (target_labels(t), Sample::Counter(*misses))),
    )
}

/// Each route, as an info metric.
fn routes(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
    let routes: Vec<(String, String, String)> = shared
        .config
        .routes
        .iter()
        .enumerate()
        .map(|(i, route)| (i.to_string(), route.matcher(), route.target().to_string()))
        .collect();
    family(
        encoder,
        "keyway_route",
        "Each route (by position in the config), its matcher and the backend or policy it names.",
        None,
        MetricType::Info,
        routes.iter().map(|(index, matcher, target)| {
            let labels = vec![
                ("route", index.as_str()),
                ("matcher", matcher.as_str()),
                ("target", target.as_str()),
            ];
            (labels, Sample::Info)
        }),
    )
}

/// Health, pools and SQL batches per backend.
fn backends(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
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

/// Client connections, commands and bytes.
fn clients(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
    let report = shared.report();
    let none = || Vec::<(&str, &str)>::new();
    let one = |name: &str, help: &str, unit: Option<&Unit>, kind: MetricType, sample: Sample| {
        (
            name.to_string(),
            help.to_string(),
            unit.cloned(),
            kind,
            sample,
        )
    };
    let singles = [
        one(
            "keyway_client_connections",
            "Client connections open now (memcached and RESP listeners).",
            None,
            MetricType::Gauge,
            Sample::Gauge(report.current_connections as i64),
        ),
        one(
            "keyway_client_connections_accepted",
            "Client connections accepted since start.",
            None,
            MetricType::Counter,
            Sample::Counter(report.total_connections),
        ),
        one(
            "keyway_client_connections_rejected",
            "Client connections refused at limits.max_connections.",
            None,
            MetricType::Counter,
            Sample::Counter(report.rejected_connections),
        ),
        one(
            "keyway_client_request_buffers",
            "Bytes connections hold in requests not yet read whole (limited by limits.request_buffers).",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            Sample::Gauge(crate::session::request_buffers::REQUEST_BUFFERS.held() as i64),
        ),
        one(
            "keyway_client_commands",
            "Client commands read (both protocols).",
            None,
            MetricType::Counter,
            Sample::Counter(report.commands),
        ),
        one(
            "keyway_client_read",
            "Bytes read from clients.",
            Some(&Unit::Bytes),
            MetricType::Counter,
            Sample::Counter(report.bytes_read),
        ),
        one(
            "keyway_client_written",
            "Bytes written to clients.",
            Some(&Unit::Bytes),
            MetricType::Counter,
            Sample::Counter(report.bytes_written),
        ),
        one(
            "keyway_auth_failures",
            "AUTH and HELLO AUTH attempts with a wrong user or password.",
            None,
            MetricType::Counter,
            Sample::Counter(report.auth_failures),
        ),
        one(
            "keyway_uptime",
            "Seconds since Keyway started.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            Sample::Gauge(report.uptime_seconds as i64),
        ),
    ];
    for (name, help, unit, kind, sample) in singles {
        family(
            encoder,
            &name,
            &help,
            unit.as_ref(),
            kind,
            [(none(), sample)],
        )?;
    }
    family(
        encoder,
        "keyway_build",
        "Keyway's version.",
        None,
        MetricType::Info,
        [(vec![("version", env!("CARGO_PKG_VERSION"))], Sample::Info)],
    )
}

/// Memory backends' items, bytes and evictions.
fn memory(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
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
fn policies(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
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
fn change_log(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
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
    family(
        encoder,
        "keyway_change_feed_polls",
        "Polls of the SQL backend's change log.",
        None,
        MetricType::Counter,
        feed_figure(|f| f.polls.load(Relaxed)),
    )?;
    family(
        encoder,
        "keyway_change_feed_poll_errors",
        "Polls of the change log that failed.",
        None,
        MetricType::Counter,
        feed_figure(|f| f.poll_errors.load(Relaxed)),
    )?;
    family(
        encoder,
        "keyway_change_feed_read",
        "Change-log entries read (every writer's, this Keyway's included).",
        None,
        MetricType::Counter,
        feed_figure(|f| f.changes_read.load(Relaxed)),
    )?;
    Ok(())
}

/// What each write-through cache that follows a change log makes of it.
fn coherence(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
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
    family(
        encoder,
        "keyway_coherence_invalidations",
        "Keys other Keyways changed that a write-through cache dropped: the invalidations it received.",
        None,
        MetricType::Counter,
        policy_figure(|f| f.invalidations.load(Relaxed)),
    )?;
    family(
        encoder,
        "keyway_coherence_fallback_reads",
        "Reads a write-through policy sent to its durable store because its cache was not current.",
        None,
        MetricType::Counter,
        policy_figure(|f| f.fallback_reads.load(Relaxed)),
    )?;
    family(
        encoder,
        "keyway_coherence_resets",
        "Times a write-through cache was emptied because changes may have been missed (feed started or fell behind).",
        None,
        MetricType::Counter,
        policy_figure(|f| f.resets.load(Relaxed)),
    )
}

/// Django sessions: from the last inventory (-1 before the first), and
/// the sessions Keyway ended and the late writes it refused.
fn sessions(encoder: &mut DescriptorEncoder) -> Result<(), Error> {
    use crate::django_sessions::{Reason, FIGURES};
    let gauges = [
        (
            "keyway_sessions",
            "Django sessions in every store, at the last inventory (-1: none yet).",
            &FIGURES.sessions,
        ),
        (
            "keyway_sessions_users",
            "Users with at least one session, at the last inventory.",
            &FIGURES.users,
        ),
        (
            "keyway_sessions_anonymous",
            "Sessions without a signed-in user, at the last inventory.",
            &FIGURES.anonymous,
        ),
        (
            "keyway_sessions_unreadable",
            "Sessions whose owner could not be read, at the last inventory.",
            &FIGURES.unreadable,
        ),
    ];
    for (name, help, value) in gauges {
        family(
            encoder,
            name,
            help,
            None,
            MetricType::Gauge,
            [(Vec::new(), Sample::Gauge(value.load(Relaxed)))],
        )?;
    }
    family(
        encoder,
        "keyway_sessions_inventory_timestamp",
        "Unix time of the last inventory (0: none yet).",
        Some(&Unit::Seconds),
        MetricType::Gauge,
        [(
            Vec::new(),
            Sample::GaugeF(FIGURES.inventory_timestamp.load(Relaxed) as f64),
        )],
    )?;
    family(
        encoder,
        "keyway_sessions_ended",
        "Sessions Keyway ended, by reason (logout: a client deleted it; revoke: an operator).",
        None,
        MetricType::Counter,
        Reason::ALL.map(|reason| {
            (
                vec![("reason", reason.as_str())],
                Sample::Counter(FIGURES.ended(reason)),
            )
        }),
    )?;
    family(
        encoder,
        "keyway_sessions_late_writes_refused",
        "Writes of an ended session refused (a request in flight when its user logged out).",
        None,
        MetricType::Counter,
        [(
            Vec::new(),
            Sample::Counter(FIGURES.late_writes_refused.load(Relaxed)),
        )],
    )
}

/// Configuration reloads and their outcome.
fn reloads(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
    let stats = &shared.stats;
    family(
        encoder,
        "keyway_config_reloads",
        "Configuration reloads (SIGHUP), by outcome; a failed one leaves the running configuration in place.",
        None,
        MetricType::Counter,
        [
            (
                vec![("outcome", "success")],
                Sample::Counter(stats.reloads_succeeded.get()),
            ),
            (
                vec![("outcome", "failure")],
                Sample::Counter(stats.reloads_failed.get()),
            ),
        ],
    )?;
    family(
        encoder,
        "keyway_config_last_reload_success_timestamp",
        "Unix time of the last successful reload (0: none since start).",
        Some(&Unit::Seconds),
        MetricType::Gauge,
        [(
            Vec::new(),
            Sample::GaugeF(stats.last_reload_success.load(Relaxed) as f64),
        )],
    )
}
