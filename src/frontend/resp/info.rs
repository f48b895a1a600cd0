//! INFO: the sections redis answers, with Keyway's figures (and a
//! `keyway` section: routes and policies).

use bytes::Bytes;

use super::connection::REDIS_VERSION;
use super::RespSession;
use crate::op::DATABASES;
use crate::session::Report;

impl RespSession {
    pub(super) async fn info(&self, args: &[Bytes]) -> String {
        fn borrowed(lines: &[(String, String)]) -> Vec<(&str, String)> {
            lines.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
        }
        let wanted: Vec<String> = args[1..]
            .iter()
            .map(|a| String::from_utf8_lossy(a).to_lowercase())
            .collect();
        // As redis 7: no argument or `default` is every section but
        // Commandstats; `all` and `everything` add it.
        let everything = wanted.iter().any(|w| w == "all" || w == "everything");
        let default = wanted.is_empty() || wanted.iter().any(|w| w == "default");
        let include = |section: &str| {
            everything
                || (default && section != "commandstats")
                || wanted.iter().any(|w| w == section)
        };
        let mut out = String::new();
        let mut section = |title: &str, lines: Vec<(&str, String)>| {
            if include(&title.to_lowercase()) {
                if !out.is_empty() {
                    out.push_str("\r\n");
                }
                out.push_str(&format!("# {title}\r\n"));
                for (key, value) in lines {
                    out.push_str(&format!("{key}:{value}\r\n"));
                }
            }
        };
        let report = self.shared.report();
        section("Server", self.server_lines(&report));
        section("Clients", Self::client_lines(&report));
        section("Memory", Self::memory_lines(&report));
        section("Persistence", self.persistence_lines());
        section("Stats", Self::stats_lines(&report));
        section("Replication", Self::replication_lines());
        section("CPU", Self::cpu_lines());
        let commands = super::figures::command_lines();
        section("Commandstats", borrowed(&commands));
        let errors = super::figures::error_lines();
        section("Errorstats", borrowed(&errors));
        let mut keyway = route_lines(&self.shared);
        keyway.extend(policy_lines(&self.shared.router));
        section("Keyway", keyway);
        if include("keyspace") {
            let lines = self.keyspace_lines().await;
            section("Keyspace", borrowed(&lines));
        }
        out
    }

    fn server_lines(&self, report: &Report) -> Vec<(&'static str, String)> {
        let port = self.shared.resp_addr.map_or(0, |a| a.port());
        vec![
            ("redis_version", REDIS_VERSION.into()),
            ("keyway_version", env!("CARGO_PKG_VERSION").into()),
            ("redis_mode", "standalone".into()),
            ("process_id", std::process::id().to_string()),
            ("tcp_port", port.to_string()),
            ("uptime_in_seconds", report.uptime_seconds.to_string()),
            (
                "uptime_in_days",
                (report.uptime_seconds / 86400).to_string(),
            ),
        ]
    }

    fn client_lines(report: &Report) -> Vec<(&'static str, String)> {
        vec![
            ("connected_clients", report.current_connections.to_string()),
            ("maxclients", report.max_connections.to_string()),
            ("blocked_clients", "0".into()),
        ]
    }

    fn memory_lines(report: &Report) -> Vec<(&'static str, String)> {
        let usage = report.memory;
        vec![
            ("used_memory", usage.bytes.to_string()),
            ("used_memory_human", human_bytes(usage.bytes)),
            ("used_memory_rss", resident_bytes().to_string()),
            ("maxmemory", usage.capacity.to_string()),
            ("maxmemory_human", human_bytes(usage.capacity)),
            ("maxmemory_policy", "allkeys-lru".into()),
        ]
    }

    fn stats_lines(report: &Report) -> Vec<(&'static str, String)> {
        vec![
            (
                "total_connections_received",
                report.total_connections.to_string(),
            ),
            ("total_commands_processed", report.commands.to_string()),
            ("total_net_input_bytes", report.bytes_read.to_string()),
            ("total_net_output_bytes", report.bytes_written.to_string()),
            (
                "rejected_connections",
                report.rejected_connections.to_string(),
            ),
            ("evicted_keys", report.memory.evictions.to_string()),
            ("acl_access_denied_auth", report.auth_failures.to_string()),
            ("keyspace_hits", report.get_hits.to_string()),
            ("keyspace_misses", report.get_misses.to_string()),
        ]
    }

    /// `db<n>:keys=<count>,expires=0,avg_ttl=0` for every database holding
    /// keys, in redis's format (redis_exporter and other tools parse all
    /// three). Keyway's stores count keys, not keys with a TTL: `expires`
    /// and `avg_ttl` are 0.
    async fn keyspace_lines(&self) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        for db in 0..DATABASES {
            if let Ok(keys) = self.shared.resp_router.len(db).await {
                if keys > 0 {
                    lines.push((
                        format!("db{db}"),
                        format!("keys={keys},expires=0,avg_ttl=0"),
                    ));
                }
            }
        }
        lines
    }
}

/// Sizes as redis prints them (`1.50M`).
fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes}B"),
        1024..1_048_576 => format!("{:.2}K", b / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.2}M", b / 1_048_576.0),
        _ => format!("{:.2}G", b / 1_073_741_824.0),
    }
}

/// The process's resident memory, from /proc (0 where there is none).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// INFO's keyway section: each route (matcher, target, its figures) and each backend.
fn route_lines(shared: &crate::session::Shared) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    for (i, route) in shared.config.routes.iter().enumerate() {
        let Some(target) = shared.router.target(route.target()) else {
            continue;
        };
        let (mut requests, mut errors) = (0, 0);
        for family in crate::metrics::Family::ALL {
            let snapshot = target.stats.family(family);
            requests += snapshot.requests;
            errors += snapshot.errors;
        }
        let (hits, misses) = target.stats.hits_and_misses();
        lines.push((
            "route",
            format!(
                "{i},{},target={},requests={requests},errors={errors},hits={hits},misses={misses}",
                route.matcher().replace(' ', ""),
                route.target()
            ),
        ));
    }
    for target in shared.router.targets() {
        let Some(backend) = target.backend() else {
            continue;
        };
        let up = target.stats.health() != crate::metrics::Health::Down;
        let mut line = format!(
            "{},kind={},up={}",
            target.stats.name(),
            backend.kind(),
            u8::from(up)
        );
        if let Some((open, max)) = backend.connections() {
            line.push_str(&format!(",connections={open},max_connections={max}"));
        }
        if let crate::backend::AnyBackend::Sql(sql) = backend {
            line.push_str(&format!(
                ",change_log_written={},change_feed={}",
                sql.changes_logged(),
                sql.feed().state()
            ));
        }
        lines.push(("backend", line));
    }
    lines
}

/// INFO's keyway section: how each policy is doing.
fn policy_lines(router: &crate::router::Router) -> Vec<(&'static str, String)> {
    use crate::policy::Policy;
    use std::sync::atomic::Ordering::Relaxed;
    let mut lines = Vec::new();
    for (name, policy) in router.policies() {
        match policy {
            Policy::Failover(failover) => {
                let up = (0..failover.member_count())
                    .filter(|&i| failover.is_up(i))
                    .count();
                let down = failover.member_count() - up;
                lines.push((
                    "policy",
                    format!("{name},kind=failover,members_up={up},members_down={down}"),
                ));
            }
            Policy::Shadow(shadow) => {
                let counts = shadow.counts();
                lines.push((
                    "policy",
                    format!(
                        "{name},kind=shadow,mirrored={},mismatches={},errors={}",
                        counts.mirrored.load(Relaxed),
                        counts.mismatches.load(Relaxed),
                        counts.errors.load(Relaxed)
                    ),
                ));
            }
            Policy::WriteThrough(wt) => {
                let c = wt.coherence();
                let line = if c.is_watching() {
                    let f = &c.figures;
                    format!(
                        "{name},kind=write-through,coherence=watch,trusted={},lag_ms={},invalidations={},fallback_reads={},resets={}",
                        u8::from(c.trusted()),
                        c.lag().map_or(0, |lag| lag.as_millis().min(u128::from(u32::MAX))),
                        f.invalidations.load(Relaxed),
                        f.fallback_reads.load(Relaxed),
                        f.resets.load(Relaxed)
                    )
                } else {
                    format!("{name},kind=write-through,coherence=none")
                };
                lines.push(("policy", line));
            }
            Policy::Migrate(_) => lines.push(("policy", format!("{name},kind=migrate"))),
            Policy::Replicate(_) => lines.push(("policy", format!("{name},kind=replicate"))),
        }
    }
    lines
}
