//! Connection commands: HELLO/AUTH negotiation, PING/ECHO/SELECT/QUIT,
//! CLIENT, COMMAND, INFO and TIME.

use bytes::Bytes;
use keyway_protocol::resp::{Reply, Version};

use super::commands::served;
use super::commands::ConnCmd;
use super::requests::{database, Client, Hello, Kill};
use super::{wrong_arity, CmdResult, RespSession};
use crate::op::now_ms;

/// The redis version Keyway answers to: clients gate features on it, and
/// Keyway implements the 7.0 behaviour of every command it accepts.
pub const REDIS_VERSION: &str = "7.0.15";

impl RespSession {
    pub(super) async fn connection_command(&mut self, cmd: ConnCmd, args: &[Bytes]) -> CmdResult {
        match cmd {
            ConnCmd::Hello => self.hello(Hello::parse(args)?),
            ConnCmd::Auth => self.auth(args),
            ConnCmd::Ping => match args.len() {
                1 => Ok(Reply::simple("PONG")),
                2 => Ok(Reply::Bulk(args[1].clone())),
                _ => Err(wrong_arity("ping")),
            },
            ConnCmd::Echo => Ok(Reply::Bulk(args[1].clone())),
            // `handle` closes the connection after this reply.
            ConnCmd::Quit => Ok(Reply::ok()),
            ConnCmd::Reset => Ok(self.reset()),
            ConnCmd::Select => {
                self.db = database(&args[1])?;
                Ok(Reply::ok())
            }
            ConnCmd::Client => Ok(self.client(Client::parse(args)?)),
            ConnCmd::Command => command(args),
            ConnCmd::Info => Ok(Reply::Verbatim(self.info(args).await)),
            ConnCmd::Time => {
                let micros = now_ms() * 1000;
                Ok(Reply::Array(vec![
                    Reply::bulk((micros / 1_000_000).to_string()),
                    Reply::bulk((micros % 1_000_000).to_string()),
                ]))
            }
        }
    }

    /// `HELLO [protover [AUTH username password] [SETNAME clientname]]`:
    /// its AUTHs, then the error of a bad option after them, then NOAUTH
    /// for a client still not authenticated, as redis answers.
    fn hello(&mut self, hello: Hello) -> CmdResult {
        for (user, password) in &hello.auths {
            self.authenticate(user, password)?;
        }
        if let Some(error) = hello.malformed {
            return Err(error);
        }
        if !self.authenticated {
            return Err(Reply::error(concat!(
                "NOAUTH HELLO must be called with the client already authenticated, ",
                "otherwise the HELLO AUTH <user> <pass> option can be used to authenticate ",
                "the client and select the RESP protocol version at the same time"
            )));
        }
        if let Some(version) = hello.version {
            self.version = version;
        }
        if hello.name.is_some() {
            self.name = hello.name;
        }
        Ok(self.hello_reply())
    }

    /// RESET: the connection as it was when it connected (no transaction,
    /// database 0, RESP2, no name, and, where `[auth]` has users, not
    /// authenticated), as redis resets it.
    fn reset(&mut self) -> Reply {
        self.transaction = None;
        self.end_watch();
        self.listening = None;
        self.monitoring = None;
        self.subscribed_here = None;
        self.tracking = None;
        self.publish_redis_connection();
        let mut state = self.client.state.lock();
        state.subscriptions = [0; 3];
        state.monitor = false;
        drop(state);
        self.db = 0;
        self.version = Version::Resp2;
        self.name = None;
        self.authenticated = !self.shared.users.required();
        self.user = None;
        self.permissions = None;
        Reply::simple("RESET")
    }

    /// HELLO's map: who answers, in which protocol, as which connection.
    fn hello_reply(&self) -> Reply {
        let proto = if self.version == Version::Resp3 { 3 } else { 2 };
        let mut fields = vec![
            (Reply::bulk("server"), Reply::bulk("redis")),
            (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
            (Reply::bulk("proto"), Reply::Integer(proto)),
            (Reply::bulk("id"), Reply::Integer(self.id as i64)),
        ];
        // A sentinel says so, and has no role field (redis-sentinel 7.0).
        if self.sentinel {
            fields.push((Reply::bulk("mode"), Reply::bulk("sentinel")));
        } else {
            fields.push((Reply::bulk("mode"), Reply::bulk("standalone")));
            fields.push((Reply::bulk("role"), Reply::bulk("master")));
        }
        fields.push((Reply::bulk("modules"), Reply::Array(Vec::new())));
        Reply::Map(fields)
    }

    fn client(&mut self, client: Client) -> Reply {
        match client {
            Client::SetLibName(name) => self.lib_name = Some(name),
            Client::SetLibVersion(version) => self.lib_ver = Some(version),
            Client::SetName(name) => self.name = (!name.is_empty()).then_some(name),
            Client::GetName => return Reply::bulk_or_null(self.name.clone()),
            Client::Id => return Reply::Integer(self.id as i64),
            Client::Info => return Reply::Verbatim(self.client_info()),
            Client::NoEvict => {}
            Client::GetRedirect => return Reply::Integer(-1),
            Client::TrackingInfo => {
                return Reply::Map(vec![
                    (Reply::bulk("flags"), Reply::Set(vec![Reply::bulk("off")])),
                    (Reply::bulk("redirect"), Reply::Integer(-1)),
                    (Reply::bulk("prefixes"), Reply::Array(Vec::new())),
                ])
            }
            Client::Unblock => return Reply::Integer(0),
            Client::List { normal, ids } => return Reply::Verbatim(self.client_list(normal, &ids)),
            Client::Kill(kill) => return self.client_kill(kill),
            Client::Pause { ms, all } => {
                let timeout = std::time::Duration::from_millis(ms);
                self.shared.clients.pause(timeout, all);
            }
            Client::Unpause => self.shared.clients.unpause(),
            Client::Reply(mode) => self.replies = mode,
        }
        Reply::ok()
    }

    /// CLIENT LIST: every client of this process (TYPE other than
    /// `normal`: none), or those with the given ids.
    fn client_list(&self, normal: bool, ids: &[u64]) -> String {
        if !normal {
            return String::new();
        }
        let multi = self.queued();
        self.shared
            .clients
            .list()
            .iter()
            .filter(|client| ids.is_empty() || ids.contains(&client.id))
            .map(|client| match client.id == self.id {
                true => client.line(multi, "client|list"),
                false => client.line(-1, "NULL"),
            })
            .collect()
    }

    /// CLIENT KILL: the old form answers OK or that there is no such
    /// client; the filter form how many it ended.
    fn client_kill(&self, kill: Kill) -> Reply {
        let me = self.id;
        let killed = self.shared.clients.kill(|client| {
            let state = client.state.lock();
            let user = state.user.as_deref().unwrap_or(b"default");
            !(kill.none
                || kill.keep_me && client.id == me
                || kill.id.is_some_and(|id| id != client.id)
                || kill.addr.as_ref().is_some_and(|a| *a != client.addr)
                || kill.laddr.as_ref().is_some_and(|a| *a != client.laddr)
                || kill.user.as_ref().is_some_and(|u| u[..] != *user)
                || kill
                    .max_age
                    .is_some_and(|age| client.connected.elapsed().as_secs() <= age))
        });
        match (kill.legacy, killed) {
            (true, 0) => Reply::error("ERR No such client"),
            (true, _) => Reply::ok(),
            (false, n) => Reply::Integer(n as i64),
        }
    }

    /// How many commands this client has queued in MULTI (-1: none).
    fn queued(&self) -> i64 {
        self.transaction
            .as_ref()
            .map_or(-1, |t| t.queued.len() as i64)
    }

    /// Shows what this client told Keyway about itself in the registry
    /// (CLIENT LIST): after each connection command.
    pub(super) fn publish(&self) {
        let mut state = self.client.state.lock();
        state.name = self.name.clone();
        state.db = self.db;
        state.resp = if self.version == Version::Resp3 { 3 } else { 2 };
        state.user = self.user.clone();
        state.lib_name = self.lib_name.clone();
        state.lib_ver = self.lib_ver.clone();
    }

    fn client_info(&self) -> String {
        self.publish();
        self.client.line(self.queued(), "client|info")
    }
}

impl RespSession {
    /// `AUTH [user] password`: one argument authenticates as `default`.
    fn auth(&mut self, args: &[Bytes]) -> CmdResult {
        match args.len() {
            2 if !self.shared.users.required() => Err(Reply::error(
                "ERR AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?",
            )),
            2 => self
                .authenticate(b"default", &args[1])
                .map(|()| Reply::ok()),
            3 => self.authenticate(&args[1], &args[2]).map(|()| Reply::ok()),
            _ => Err(Reply::error("ERR syntax error")),
        }
    }

    /// Checks a user's password against `[auth]`. With no users configured
    /// the default user has no password, as on a fresh redis: `default` and
    /// any password succeed. A failure is counted, never logged.
    fn authenticate(&mut self, user: &[u8], password: &[u8]) -> Result<(), Reply> {
        let users = &self.shared.users;
        self.shared.stats.auth_attempts.add(1);
        let ok = if users.required() {
            users.check(user, password)
        } else {
            user == b"default"
        };
        if ok {
            self.authenticated = true;
            if users.required() {
                self.permissions = users.find(user).flatten();
                self.user = Some(Bytes::copy_from_slice(user));
            }
            return Ok(());
        }
        self.shared.stats.auth_failures.add(1);
        Err(Reply::error(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

fn command_info(spec: &super::CommandSpec) -> Reply {
    let (first, last, step) = spec.key_range();
    Reply::Array(vec![
        Reply::Bulk(Bytes::from_static(spec.name.as_bytes())),
        Reply::Integer(i64::from(spec.arity)),
        Reply::Set(
            spec.flags
                .iter()
                .map(|f| Reply::Simple(Bytes::from_static(f.as_bytes())))
                .collect(),
        ),
        Reply::Integer(i64::from(first)),
        Reply::Integer(i64::from(last)),
        Reply::Integer(i64::from(step)),
    ])
}

fn command(args: &[Bytes]) -> CmdResult {
    let Some(sub) = args.get(1) else {
        return Ok(Reply::Array(served().map(command_info).collect()));
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" => Ok(Reply::Integer(served().count() as i64)),
        b"LIST" => Ok(Reply::Array(
            served()
                .map(|c| Reply::Bulk(Bytes::from_static(c.name.as_bytes())))
                .collect(),
        )),
        b"INFO" => Ok(Reply::Array(
            args[2..]
                .iter()
                .map(|name| super::commands::lookup(name).map_or(Reply::Null, command_info))
                .collect(),
        )),
        // Documentation is optional for clients (redis-cli only uses it for hints).
        b"DOCS" => Ok(Reply::Map(Vec::new())),
        _ => Err(Reply::error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        ))),
    }
}
