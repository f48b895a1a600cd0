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
        section("Modules", Vec::new());
        let commands = super::figures::command_lines();
        section("Commandstats", borrowed(&commands));
        let errors = super::figures::error_lines();
        section("Errorstats", borrowed(&errors));
        section("Cluster", vec![("cluster_enabled", "0".into())]);
        let mut keyway = route_lines(&self.shared);
        keyway.extend(policy_lines(&self.shared.router));
        section("Keyway", keyway);
        if include("keyspace") {
            let lines = self.keyspace_lines().await;
            section("Keyspace", borrowed(&lines));
        }
        out
    }

    /// Every field of redis 7.0's Server section, in its order: Keyway's
    /// own where it has one (process, port, uptime, executable), otherwise
    /// what redis reports for a build and platform like this one.
    fn server_lines(&self, report: &Report) -> Vec<(&'static str, String)> {
        let port = self.shared.resp_addr.map_or(0, |a| a.port());
        let now_us = crate::op::now_ms() * 1000;
        let supervised = if std::env::var_os("NOTIFY_SOCKET").is_some() {
            "systemd"
        } else {
            "no"
        };
        let executable = std::env::current_exe()
            .map(|path| path.display().to_string())
            .unwrap_or_default();
        vec![
            ("redis_version", REDIS_VERSION.into()),
            ("keyway_version", env!("CARGO_PKG_VERSION").into()),
            ("redis_git_sha1", "00000000".into()),
            ("redis_git_dirty", "0".into()),
            ("redis_build_id", "0".into()),
            ("redis_mode", "standalone".into()),
            ("os", operating_system()),
            ("arch_bits", usize::BITS.to_string()),
            ("monotonic_clock", "POSIX clock_gettime".into()),
            ("multiplexing_api", "epoll".into()),
            ("atomicvar_api", "c11-builtin".into()),
            ("gcc_version", "0.0.0".into()),
            ("process_id", std::process::id().to_string()),
            ("process_supervised", supervised.into()),
            ("run_id", super::sentinel::run_id().into()),
            ("tcp_port", port.to_string()),
            ("server_time_usec", now_us.to_string()),
            ("uptime_in_seconds", report.uptime_seconds.to_string()),
            (
                "uptime_in_days",
                (report.uptime_seconds / 86400).to_string(),
            ),
            ("hz", "10".into()),
            ("configured_hz", "10".into()),
            ("lru_clock", ((now_us / 1_000_000) % (1 << 24)).to_string()),
            ("executable", executable),
            ("config_file", String::new()),
            ("io_threads_active", "0".into()),
        ]
    }

    fn client_lines(report: &Report) -> Vec<(&'static str, String)> {
        vec![
            ("connected_clients", report.current_connections.to_string()),
            ("cluster_connections", "0".into()),
            ("maxclients", report.max_connections.to_string()),
            ("client_recent_max_input_buffer", "0".into()),
            ("client_recent_max_output_buffer", "0".into()),
            ("blocked_clients", "0".into()),
            ("tracking_clients", "0".into()),
            ("clients_in_timeout_table", "0".into()),
        ]
    }

    /// redis 7.0's Memory fields: the stores' bytes as used memory, the
    /// process's resident set as RSS; the allocator's and Lua's own
    /// figures, which Keyway has no counterpart for, are 0.
    fn memory_lines(report: &Report) -> Vec<(&'static str, String)> {
        let usage = report.memory;
        let rss = resident_bytes();
        let system = system_memory();
        let mut lines = vec![
            ("used_memory", usage.bytes.to_string()),
            ("used_memory_human", human_bytes(usage.bytes)),
            ("used_memory_rss", rss.to_string()),
            ("used_memory_rss_human", human_bytes(rss)),
            ("used_memory_peak", usage.bytes.to_string()),
            ("used_memory_peak_human", human_bytes(usage.bytes)),
            ("used_memory_peak_perc", "100.00%".into()),
            ("used_memory_dataset", usage.bytes.to_string()),
            ("total_system_memory", system.to_string()),
            ("total_system_memory_human", human_bytes(system)),
            ("maxmemory", usage.capacity.to_string()),
            ("maxmemory_human", human_bytes(usage.capacity)),
            ("maxmemory_policy", "allkeys-lru".into()),
            ("mem_allocator", "libc".into()),
            ("used_memory_dataset_perc", "100.00%".into()),
            ("used_memory_lua_human", "0B".into()),
            ("used_memory_scripts_human", "0B".into()),
            ("used_memory_vm_total_human", "0B".into()),
            ("mem_fragmentation_ratio", "1.00".into()),
            ("allocator_frag_ratio", "1.00".into()),
            ("allocator_rss_ratio", "1.00".into()),
            ("rss_overhead_ratio", "1.00".into()),
        ];
        for &zero in MEMORY_NEVER {
            lines.push((zero, "0".into()));
        }
        lines
    }

    /// redis 7.0's Stats fields: Keyway's counts where it keeps them;
    /// forks, defragmentation, replication, pub/sub and tracking, which a
    /// Keyway process never does, are 0.
    fn stats_lines(report: &Report) -> Vec<(&'static str, String)> {
        let mut lines = vec![
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
            (
                "total_error_replies",
                super::figures::error_total().to_string(),
            ),
        ];
        for &zero in STATS_NEVER {
            lines.push((zero, "0".into()));
        }
        lines
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

/// Memory fields of redis's allocator, Lua and replication, which Keyway
/// has no counterpart for: 0.
const MEMORY_NEVER: &[&str] = &[
    "allocator_allocated",
    "allocator_active",
    "allocator_resident",
    "allocator_frag_bytes",
    "allocator_rss_bytes",
    "rss_overhead_bytes",
    "used_memory_overhead",
    "used_memory_startup",
    "used_memory_lua",
    "used_memory_vm_eval",
    "used_memory_scripts_eval",
    "number_of_cached_scripts",
    "number_of_functions",
    "number_of_libraries",
    "used_memory_vm_functions",
    "used_memory_vm_total",
    "used_memory_functions",
    "used_memory_scripts",
    "mem_fragmentation_bytes",
    "mem_not_counted_for_evict",
    "mem_replication_backlog",
    "mem_total_replication_buffers",
    "mem_clients_slaves",
    "mem_clients_normal",
    "mem_cluster_links",
    "mem_aof_buffer",
    "active_defrag_running",
    "lazyfree_pending_objects",
    "lazyfreed_objects",
];

/// Stats fields of what a Keyway process never does (forks,
/// defragmentation, replication, pub/sub, tracking, expiry cycles) or does
/// not measure (instantaneous rates): 0.
const STATS_NEVER: &[&str] = &[
    "instantaneous_ops_per_sec",
    "instantaneous_input_kbps",
    "instantaneous_output_kbps",
    "total_net_repl_input_bytes",
    "total_net_repl_output_bytes",
    "instantaneous_input_repl_kbps",
    "instantaneous_output_repl_kbps",
    "sync_full",
    "sync_partial_ok",
    "sync_partial_err",
    "expired_keys",
    "expired_stale_perc",
    "expired_time_cap_reached_count",
    "expire_cycle_cpu_milliseconds",
    "evicted_clients",
    "total_eviction_exceeded_time",
    "current_eviction_exceeded_time",
    "pubsub_channels",
    "pubsub_patterns",
    "pubsubshard_channels",
    "latest_fork_usec",
    "total_forks",
    "migrate_cached_sockets",
    "slave_expires_tracked_keys",
    "active_defrag_hits",
    "active_defrag_misses",
    "active_defrag_key_hits",
    "active_defrag_key_misses",
    "total_active_defrag_time",
    "current_active_defrag_time",
    "tracking_total_keys",
    "tracking_total_items",
    "tracking_total_prefixes",
    "unexpected_error_replies",
    "dump_payload_sanitizations",
    "total_reads_processed",
    "total_writes_processed",
    "io_threaded_reads_processed",
    "io_threaded_writes_processed",
    "reply_buffer_shrinks",
    "reply_buffer_expands",
];

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

/// `os` as redis prints it (`uname`'s system, release and machine).
fn operating_system() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let system = match std::env::consts::OS {
        "linux" => "Linux",
        other => other,
    };
    format!("{system} {} {}", release.trim(), std::env::consts::ARCH)
}

/// The machine's memory, from /proc/meminfo (0 where there is none).
fn system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|line| line.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
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
