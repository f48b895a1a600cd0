//! The sentinel listener (`listen.sentinel`): Keyway answering as a Redis
//! Sentinel that monitors one master — Keyway's own RESP listener — so that
//! Sentinel clients (redis-py's `Sentinel`, django-redis's SentinelClient as
//! kolla-ansible configures it) can point at Keyway unchanged.
//!
//! Replies have redis-sentinel 7.0's shapes: `SENTINEL
//! get-master-addr-by-name`, `masters`, `master`, `replicas`/`slaves` and
//! `sentinels` (both empty: no replicas, no other sentinels), `myid`;
//! `ROLE`, `INFO`, `PING`, `AUTH`, `HELLO`, `CLIENT`. Anything else is an
//! unknown command, as on a sentinel.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use keyway_protocol::resp::{encode, Reply};

use super::commands::{self, ConnCmd};
use super::{check_arity, unknown_command, wrong_arity, CmdResult, RespSession};
use crate::session::Flow;

/// This process's sentinel id and master run id (40 hex digits, as redis's).
pub(super) fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        use sha1::Digest;
        let seed = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
        hex::encode(sha1::Sha1::digest(seed.as_bytes()))
    })
}

/// What a sentinel answers, each command named once (a sentinel knows no
/// other: anything else is an unknown command).
#[derive(Clone, Copy)]
enum SentinelCmd {
    Quit,
    Ping,
    /// AUTH, HELLO and CLIENT: as on the RESP listener.
    Connection(ConnCmd),
    Role,
    Info,
    Sentinel,
}

const SENTINEL_COMMANDS: [(&str, SentinelCmd); 8] = [
    ("quit", SentinelCmd::Quit),
    ("ping", SentinelCmd::Ping),
    ("auth", SentinelCmd::Connection(ConnCmd::Auth)),
    ("hello", SentinelCmd::Connection(ConnCmd::Hello)),
    ("client", SentinelCmd::Connection(ConnCmd::Client)),
    ("role", SentinelCmd::Role),
    ("info", SentinelCmd::Info),
    ("sentinel", SentinelCmd::Sentinel),
];

fn sentinel_lookup(name: &[u8]) -> Option<SentinelCmd> {
    SENTINEL_COMMANDS
        .iter()
        .find(|(known, _)| name.eq_ignore_ascii_case(known.as_bytes()))
        .map(|&(_, cmd)| cmd)
}

impl RespSession {
    pub(super) async fn sentinel_command(&mut self, args: Vec<Bytes>, out: &mut BytesMut) -> Flow {
        let reply = match sentinel_lookup(&args[0]) {
            Some(SentinelCmd::Quit) => {
                encode(&Reply::ok(), self.version, out);
                return Flow::Close;
            }
            Some(SentinelCmd::Ping) => match args.len() {
                1 => Ok(Reply::simple("PONG")),
                2 => Ok(Reply::Bulk(args[1].clone())),
                _ => Err(wrong_arity("ping")),
            },
            Some(SentinelCmd::Connection(cmd)) => {
                match check_arity(commands::lookup(&args[0]), &args) {
                    Ok(()) => self.connection_command(cmd, &args).await,
                    Err(error) => Err(error),
                }
            }
            Some(SentinelCmd::Role) if args.len() == 1 => Ok(Reply::Array(vec![
                Reply::bulk("sentinel"),
                Reply::Array(vec![Reply::bulk(
                    self.shared.config.sentinel.master_name.clone(),
                )]),
            ])),
            Some(SentinelCmd::Role) => Err(wrong_arity("role")),
            Some(SentinelCmd::Info) => Ok(Reply::Verbatim(self.sentinel_info())),
            Some(SentinelCmd::Sentinel) if args.len() < 2 => Err(wrong_arity("sentinel")),
            Some(SentinelCmd::Sentinel) => self.sentinel_subcommand(&args),
            None => Err(unknown_command(&args)),
        };
        let reply = reply.unwrap_or_else(|error| error);
        encode(&reply, self.version, out);
        Flow::Continue
    }

    fn sentinel_subcommand(&self, args: &[Bytes]) -> CmdResult {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        let named = |args: &[Bytes]| -> Result<(), Reply> {
            if args.len() != 3 {
                return Err(wrong_arity(&format!("sentinel|{sub}")));
            }
            if args[2][..] != *self.shared.config.sentinel.master_name.as_bytes() {
                return Err(Reply::error("ERR No such master with that name"));
            }
            Ok(())
        };
        match sub.as_str() {
            "get-master-addr-by-name" => {
                if args.len() != 3 {
                    return Err(wrong_arity("sentinel|get-master-addr-by-name"));
                }
                if args[2][..] != *self.shared.config.sentinel.master_name.as_bytes() {
                    return Ok(Reply::NullArray);
                }
                let (host, port) = self.master_address();
                Ok(Reply::Array(vec![Reply::bulk(host), Reply::bulk(port)]))
            }
            "masters" if args.len() == 2 => Ok(Reply::Array(vec![self.master_state()])),
            "masters" => Err(wrong_arity("sentinel|masters")),
            "master" => {
                named(args)?;
                Ok(self.master_state())
            }
            "replicas" | "slaves" | "sentinels" => {
                named(args)?;
                Ok(Reply::Array(Vec::new()))
            }
            "myid" if args.len() == 2 => Ok(Reply::bulk(run_id())),
            "myid" => Err(wrong_arity("sentinel|myid")),
            _ => Err(Reply::error(format!(
                "ERR unknown subcommand '{}'. Try SENTINEL HELP.",
                String::from_utf8_lossy(&args[1])
            ))),
        }
    }

    /// The master's address as handed out: `[sentinel] announce`, or the
    /// RESP listener's bound address.
    fn master_address(&self) -> (String, String) {
        if let Some((host, port)) = self
            .shared
            .config
            .sentinel
            .announce
            .as_deref()
            .and_then(|a| a.rsplit_once(':'))
        {
            return (host.to_string(), port.to_string());
        }
        match self.shared.resp_addr {
            Some(addr) => (addr.ip().to_string(), addr.port().to_string()),
            // Validation requires listen.resp with the sentinel listener.
            None => ("127.0.0.1".into(), "6379".into()),
        }
    }

    /// `SENTINEL MASTER`'s fields for a master that is up, has no replicas
    /// and is watched by this one sentinel (a map under RESP3).
    fn master_state(&self) -> Reply {
        let (host, port) = self.master_address();
        let uptime_ms = self.shared.stats.started.elapsed().as_millis().to_string();
        let fields: [(&str, String); 20] = [
            ("name", self.shared.config.sentinel.master_name.clone()),
            ("ip", host),
            ("port", port),
            ("runid", run_id().to_string()),
            ("flags", "master".into()),
            ("link-pending-commands", "0".into()),
            ("link-refcount", "1".into()),
            ("last-ping-sent", "0".into()),
            ("last-ok-ping-reply", "0".into()),
            ("last-ping-reply", "0".into()),
            ("down-after-milliseconds", "30000".into()),
            ("info-refresh", "0".into()),
            ("role-reported", "master".into()),
            ("role-reported-time", uptime_ms),
            ("config-epoch", "0".into()),
            ("num-slaves", "0".into()),
            ("num-other-sentinels", "0".into()),
            ("quorum", "1".into()),
            ("failover-timeout", "180000".into()),
            ("parallel-syncs", "1".into()),
        ];
        Reply::Map(
            fields
                .into_iter()
                .map(|(name, value)| (Reply::bulk(name), Reply::bulk(value)))
                .collect(),
        )
    }

    fn sentinel_info(&self) -> String {
        let (host, port) = self.master_address();
        let report = self.shared.report();
        format!(
            "# Server\r\nredis_version:{}\r\nredis_mode:sentinel\r\nprocess_id:{}\r\nrun_id:{}\r\n\
             uptime_in_seconds:{}\r\n\r\n# Clients\r\nconnected_clients:{}\r\n\r\n\
             # Sentinel\r\nsentinel_masters:1\r\nsentinel_tilt:0\r\nsentinel_tilt_since_seconds:-1\r\n\
             sentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\n\
             sentinel_simulate_failure_flags:0\r\n\
             master0:name={},status=ok,address={host}:{port},slaves=0,sentinels=1\r\n",
            super::connection::REDIS_VERSION,
            std::process::id(),
            run_id(),
            report.uptime_seconds,
            report.current_connections,
            self.shared.config.sentinel.master_name,
        )
    }
}
