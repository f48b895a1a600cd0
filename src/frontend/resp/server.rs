//! What tools ask a redis server about itself: `ROLE`, `LASTSAVE`, `CONFIG`,
//! and INFO's Persistence, Replication and CPU sections. Keyway is a
//! standalone master that never saves: where it has a figure it gives it,
//! where redis has a constant for a server like that it gives redis's.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::commands::ServerCmd;
use super::{wrong_arity, CmdResult, RespSession};
use crate::op::now_ms;
use crate::pattern::glob_match;

impl RespSession {
    pub(super) async fn server_command(&mut self, cmd: ServerCmd, args: &[Bytes]) -> CmdResult {
        match cmd {
            ServerCmd::Role => Ok(Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"master")),
                Reply::Integer(0),
                Reply::Array(Vec::new()),
            ])),
            ServerCmd::LastSave => Ok(Reply::Integer(self.started_unix() as i64)),
            ServerCmd::Config => self.config(args).await,
        }
    }

    /// When this process started, in unix seconds: redis's LASTSAVE and
    /// `rdb_last_save_time` for a server that never saved.
    fn started_unix(&self) -> u64 {
        (now_ms() / 1000).saturating_sub(self.shared.stats.uptime_seconds())
    }

    async fn config(&mut self, args: &[Bytes]) -> CmdResult {
        let sub = args[1].to_ascii_lowercase();
        match &sub[..] {
            b"get" if args.len() < 3 => Err(wrong_arity("config|get")),
            b"get" => {
                let mut parameters = self.config_get(&args[2..]);
                parameters.extend(self.sole_redis_config(args, &parameters).await?);
                Ok(Reply::Map(parameters))
            }
            b"set" => Err(Reply::error(
                "ERR CONFIG SET is not supported by Keyway: change its configuration file and \
                 reload it (SIGHUP)",
            )),
            b"resetstat" if args.len() == 2 => {
                self.shared.stats.reset();
                super::figures::reset();
                Ok(Reply::ok())
            }
            b"resetstat" => Err(wrong_arity("config|resetstat")),
            _ => Err(Reply::error(format!(
                "ERR unknown subcommand '{}'. Try CONFIG HELP.",
                String::from_utf8_lossy(&args[1])
            ))),
        }
    }

    /// Where every route goes to one redis, its answer to the same CONFIG
    /// GET, less the parameters Keyway answers itself (its own port,
    /// limits and memory are the truth for its clients).
    async fn sole_redis_config(
        &self,
        args: &[Bytes],
        ours: &[(Reply, Reply)],
    ) -> Result<Vec<(Reply, Reply)>, Reply> {
        let Some(route) = self.shared.resp_router.redis_for_every_key() else {
            return Ok(Vec::new());
        };
        let mut command = crate::backend::redis::Batch::default();
        command.push_args(args, 0);
        let family = [crate::metrics::Family::Other];
        let raw = self
            .forward_to(route, command, family, false)
            .await
            .map_err(Reply::from)?;
        let reply = keyway_protocol::resp::parse_backend_reply(&raw[0], self.version)
            .map_err(|e| Reply::error(format!("ERR {e}")))?;
        let pairs = match reply {
            Reply::Map(pairs) => pairs,
            Reply::Array(flat) => {
                let mut flat = flat.into_iter();
                std::iter::from_fn(|| Some((flat.next()?, flat.next()?))).collect()
            }
            error @ Reply::Error(_) => return Err(error),
            _ => Vec::new(),
        };
        Ok(pairs
            .into_iter()
            .filter(|(name, _)| !ours.iter().any(|(known, _)| known == name))
            .collect())
    }

    /// The parameters clients and exporters read, each once however many
    /// patterns match it, in this table's order (as redis lists its own).
    fn config_get(&self, patterns: &[Bytes]) -> Vec<(Reply, Reply)> {
        let config = &self.shared.config;
        let limits = &config.limits;
        let resp = self.shared.resp_addr;
        let parameters: [(&str, String); 11] = [
            ("databases", crate::op::DATABASES.to_string()),
            ("maxmemory", self.shared.memory_usage().capacity.to_string()),
            ("maxmemory-policy", "allkeys-lru".into()),
            ("maxclients", limits.max_connections.to_string()),
            ("timeout", limits.idle_timeout_seconds.to_string()),
            ("port", resp.map_or(0, |a| a.port()).to_string()),
            ("bind", resp.map_or(String::new(), |a| a.ip().to_string())),
            ("proto-max-bulk-len", limits.max_bulk.as_u64().to_string()),
            ("save", String::new()),
            ("appendonly", "no".into()),
            ("cluster-enabled", "no".into()),
        ];
        parameters
            .into_iter()
            .filter(|(name, _)| {
                patterns
                    .iter()
                    .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
            })
            .map(|(name, value)| {
                (
                    Reply::Bulk(Bytes::from_static(name.as_bytes())),
                    Reply::bulk(value),
                )
            })
            .collect()
    }

    /// redis 7.0's Persistence fields for a server that never saves nor
    /// forks, in its order.
    pub(super) fn persistence_lines(&self) -> Vec<(&'static str, String)> {
        let never = |field: &'static str| (field, "0".to_string());
        let mut lines = vec![
            never("loading"),
            never("async_loading"),
            never("current_cow_peak"),
            never("current_cow_size"),
            never("current_cow_size_age"),
            never("current_fork_perc"),
            never("current_save_keys_processed"),
            never("current_save_keys_total"),
            never("rdb_changes_since_last_save"),
            never("rdb_bgsave_in_progress"),
            ("rdb_last_save_time", self.started_unix().to_string()),
            ("rdb_last_bgsave_status", "ok".into()),
            ("rdb_last_bgsave_time_sec", "-1".into()),
            ("rdb_current_bgsave_time_sec", "-1".into()),
            never("rdb_saves"),
            never("rdb_last_cow_size"),
            never("rdb_last_load_keys_expired"),
            never("rdb_last_load_keys_loaded"),
            never("aof_enabled"),
            never("aof_rewrite_in_progress"),
            never("aof_rewrite_scheduled"),
            never("aof_rewrites"),
            never("aof_rewrites_consecutive_failures"),
            ("aof_last_write_status", "ok".into()),
            never("aof_last_cow_size"),
            never("module_fork_in_progress"),
            never("module_fork_last_cow_size"),
        ];
        lines.extend([
            ("aof_last_rewrite_time_sec", "-1".into()),
            ("aof_current_rewrite_time_sec", "-1".into()),
            ("aof_last_bgrewrite_status", "ok".into()),
        ]);
        lines
    }

    pub(super) fn replication_lines() -> Vec<(&'static str, String)> {
        vec![
            ("role", "master".into()),
            ("connected_slaves", "0".into()),
            ("master_failover_state", "no-failover".into()),
            ("master_replid", "0".repeat(40)),
            ("master_replid2", "0".repeat(40)),
            ("master_repl_offset", "0".into()),
            ("second_repl_offset", "-1".into()),
            ("repl_backlog_active", "0".into()),
            ("repl_backlog_size", "1048576".into()),
            ("repl_backlog_first_byte_offset", "0".into()),
            ("repl_backlog_histlen", "0".into()),
        ]
    }

    /// CPU time this process used, from /proc/self/stat (Linux).
    pub(super) fn cpu_lines() -> Vec<(&'static str, String)> {
        let (user, system) = cpu_seconds().unwrap_or((0.0, 0.0));
        vec![
            ("used_cpu_sys", format!("{system:.6}")),
            ("used_cpu_user", format!("{user:.6}")),
            ("used_cpu_sys_children", "0.000000".into()),
            ("used_cpu_user_children", "0.000000".into()),
            // Keyway's work is spread over its workers: the process's time.
            ("used_cpu_sys_main_thread", format!("{system:.6}")),
            ("used_cpu_user_main_thread", format!("{user:.6}")),
        ]
    }
}

/// User and system CPU seconds of this process: fields 14 and 15 of
/// /proc/self/stat, in clock ticks of 1/100 s (Linux's USER_HZ).
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // after_name starts at field 3.
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some((ticks(14)? as f64 / 100.0, ticks(15)? as f64 / 100.0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_used_some_cpu() {
        let spin = (0..2_000_000u64).fold(0u64, |a, b| a.wrapping_add(b * b));
        assert!(spin > 0);
        let (user, system) = super::cpu_seconds().expect("linux /proc");
        assert!(user + system > 0.0, "{user} {system}");
    }
}
