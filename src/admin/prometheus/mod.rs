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
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::metrics::{Family, LATENCY_BOUNDS_US};
use crate::policy::{Policy, Target};
use crate::session::Shared;

mod process;
mod stores;

use process::{clients, reloads, sessions};
use stores::{backends, change_log, coherence, memory, policies};

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
