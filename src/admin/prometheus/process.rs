//! The process's own figures: clients and connections, sessions, reloads.

use std::fmt::Error;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{family, Sample};
use crate::session::Shared;

/// A figure with one sample: name, help, unit, type, sample.
type Single = (&'static str, &'static str, Option<Unit>, MetricType, Sample);

/// The process-wide client figures, one sample each.
#[rustfmt::skip]
fn client_figures(report: &crate::session::Report) -> [Single; 9] {
    [
        ("keyway_client_connections", "Client connections open now (memcached and RESP listeners).", None, MetricType::Gauge, Sample::Gauge(report.current_connections as i64)),
        ("keyway_client_connections_accepted", "Client connections accepted since start.", None, MetricType::Counter, Sample::Counter(report.total_connections)),
        ("keyway_client_connections_rejected", "Client connections refused at limits.max_connections.", None, MetricType::Counter, Sample::Counter(report.rejected_connections)),
        ("keyway_client_request_buffers", "Bytes connections hold in requests not yet read whole (limited by limits.request_buffers).", Some(Unit::Bytes), MetricType::Gauge, Sample::Gauge(crate::session::request_buffers::REQUEST_BUFFERS.held() as i64)),
        ("keyway_client_commands", "Client commands read (both protocols).", None, MetricType::Counter, Sample::Counter(report.commands)),
        ("keyway_client_read", "Bytes read from clients.", Some(Unit::Bytes), MetricType::Counter, Sample::Counter(report.bytes_read)),
        ("keyway_client_written", "Bytes written to clients.", Some(Unit::Bytes), MetricType::Counter, Sample::Counter(report.bytes_written)),
        ("keyway_auth_failures", "AUTH and HELLO AUTH attempts with a wrong user or password.", None, MetricType::Counter, Sample::Counter(report.auth_failures)),
        ("keyway_uptime", "Seconds since Keyway started.", Some(Unit::Seconds), MetricType::Gauge, Sample::Gauge(report.uptime_seconds as i64)),
    ]
}

/// Client connections, commands and bytes.
pub(super) fn clients(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
    let report = shared.report();
    for (name, help, unit, kind, sample) in client_figures(&report) {
        family(
            encoder,
            name,
            help,
            unit.as_ref(),
            kind,
            [(Vec::<(&str, &str)>::new(), sample)],
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

/// Django sessions: from the last inventory (-1 before the first), and
/// the sessions Keyway ended and the late writes it refused.
pub(super) fn sessions(encoder: &mut DescriptorEncoder) -> Result<(), Error> {
    use crate::django_sessions::{Reason, FIGURES};
    #[rustfmt::skip]
    let gauges = [
        ("keyway_sessions", "Django sessions in every store, at the last inventory (-1: none yet).", &FIGURES.sessions),
        ("keyway_sessions_users", "Users with at least one session, at the last inventory.", &FIGURES.users),
        ("keyway_sessions_anonymous", "Sessions without a signed-in user, at the last inventory.", &FIGURES.anonymous),
        ("keyway_sessions_unreadable", "Sessions whose owner could not be read, at the last inventory.", &FIGURES.unreadable),
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
pub(super) fn reloads(encoder: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
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
