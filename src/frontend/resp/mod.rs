//! RESP frontend (RESP2 and RESP3): per-connection state (protocol version,
//! selected db, client name, transaction), the command table, and dispatch to
//! the command families in the sibling modules.

mod client_view;
mod cmd;
mod collections;
mod commands;
mod connection;
mod errors;
mod figures;
mod forward;
mod info;
mod items;
mod keys;
mod listening;
mod local_pubsub;
mod pinned;
mod redis_arity;
mod replies;
mod requests;
mod scripts;
mod sentinel;
mod server;
mod strings;
mod tracking;
mod transaction;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use keyway_protocol::resp::{encode, Command, Decoder, Limits, Reply, Version};

use crate::config::permissions::{Permissions, Refusal};
use crate::op::Db;
use crate::session::clients::Client;
use crate::session::{Flow, Peer, Session, Shared};

pub use commands::{Cmd, CommandSpec, COMMANDS};
use commands::{ConnCmd, TxCmd};
use errors::{
    not_an_integer, not_on_this_route, not_one_redis, parse_i64, syntax_error, unknown_command,
    wrong_arity,
};
use forward::Forwarding;
use replies::Replies;
use transaction::Transaction;

/// A command's result; `Err` carries the error reply so handlers can use `?`.
type CmdResult = Result<Reply, Reply>;

pub struct RespSession {
    shared: Arc<Shared>,
    decoder: Decoder,
    version: Version,
    db: Db,
    id: u64,
    name: Option<Bytes>,
    lib_name: Option<Bytes>,
    lib_ver: Option<Bytes>,
    transaction: Option<Transaction>,
    /// False until AUTH (or HELLO ... AUTH) succeeds, when `[auth]` has users.
    authenticated: bool,
    /// A connection to the sentinel listener: answers as a Redis Sentinel.
    sentinel: bool,
    /// The `[[auth.users]]` name it authenticated as.
    user: Option<Bytes>,
    /// That user's `permissions`; `None`: every command and key.
    permissions: Option<Arc<Permissions>>,
    /// The generation of the configuration the user was last looked up
    /// in: a reload may have removed the user or changed its permissions.
    users_generation: usize,
    /// This client in the process's registry (CLIENT LIST, KILL).
    client: Arc<Client>,
    /// CLIENT REPLY: whether replies are written.
    replies: Replies,
    /// A redis connection of its own, while a WATCH holds one.
    pinned: Option<pinned::PinnedTo>,
    /// That connection failed while it held a WATCH: what redis watched
    /// went with it, so the next EXEC must abort (as a changed key aborts
    /// it), not run unwatched. Cleared by EXEC, DISCARD, UNWATCH, RESET.
    watch_lost: bool,
    /// A redis connection of its own while subscribed.
    listening: Option<listening::Listening>,
    /// Every client's commands, while it monitors.
    monitoring: Option<crate::session::monitor::Watcher>,
    /// Its subscriptions on Keyway's own broker (routes that reach no redis).
    subscribed_here: Option<local_pubsub::LocalSubscriber>,
    /// A redis connection of its own while CLIENT TRACKING is on.
    tracking: Option<tracking::Tracking>,
}

impl Drop for RespSession {
    fn drop(&mut self) {
        self.shared.clients.remove(self.id);
    }
}

impl RespSession {
    pub fn new(shared: Arc<Shared>, peer: Peer) -> Self {
        let limits = Limits {
            max_args: shared.config.limits.max_args,
            max_bulk: shared.config.limits.max_bulk.as_usize(),
            max_inline: shared.config.limits.max_inline.as_usize(),
        };
        let shared_users_required = shared.users.required();
        let id = shared
            .next_client_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let client = shared
            .clients
            .register(Client::new(id, &peer, shared.resp_addr));
        Self {
            shared,
            decoder: Decoder::new(limits),
            version: Version::Resp2,
            db: 0,
            id,
            name: None,
            lib_name: None,
            lib_ver: None,
            transaction: None,
            authenticated: !shared_users_required,
            sentinel: false,
            user: None,
            permissions: None,
            users_generation: 0,
            client,
            replies: Replies::On,
            pinned: None,
            watch_lost: false,
            listening: None,
            monitoring: None,
            subscribed_here: None,
            tracking: None,
        }
    }

    /// A connection to the sentinel listener ([`sentinel`]).
    /// Open unless `[sentinel] auth = "users"`: a Sentinel's password is
    /// its own, not its master's.
    pub fn sentinel(shared: Arc<Shared>, peer: Peer) -> Self {
        let open = shared.config.sentinel.auth == crate::config::SentinelAuth::Open;
        let mut session = Self::new(shared, peer);
        session.sentinel = true;
        session.authenticated |= open;
        session
    }

    /// A TLS client presented a certificate with common name `name`: with
    /// `[tls] client_user = "cn"` and a user of that name, the connection
    /// is that user's, with no AUTH.
    pub fn certified(mut self, name: Option<String>) -> Self {
        let by_cn = self.shared.config.certificate_names_user();
        let Some(name) = name.filter(|_| by_cn && self.shared.users.required()) else {
            return self;
        };
        if let Some(permissions) = self.shared.users.find(name.as_bytes()) {
            self.authenticated = true;
            self.permissions = permissions;
            self.user = Some(Bytes::from(name));
        }
        self
    }

    async fn handle(&mut self, args: Vec<Bytes>, out: &mut BytesMut) -> Flow {
        self.shared.stats.commands.add(1);
        if self.sentinel {
            return self.sentinel_command(args, out).await;
        }
        let spec = commands::lookup(&args[0]);
        let cmd = spec.and_then(CommandSpec::runs);
        // A redis-only command on a redis route is queued, and forwarded at
        // EXEC; one on redis's collections on a memory route, run there.
        let forwardable = spec.is_none() && self.transaction.is_some() && self.runs_whole(&args);
        if let Some(transaction) = &mut self.transaction {
            if !matches!(
                cmd,
                Some(Cmd::Transaction(_) | Cmd::Connection(ConnCmd::Quit | ConnCmd::Reset))
            ) {
                // A forwarded command's count is checked as redis checks
                // it when queuing: its error, then EXECABORT.
                let arity = if forwardable {
                    match redis_arity::redis_arity_error(&args) {
                        Some(error) => Err(Reply::error(error)),
                        None => Ok(()),
                    }
                } else {
                    check_arity(spec, &args)
                };
                let reply = match arity {
                    Ok(()) => {
                        transaction.queued.push(args);
                        Reply::simple("QUEUED")
                    }
                    Err(error) => {
                        transaction.aborted = true;
                        error
                    }
                };
                encode(&reply, self.version, out);
                return Flow::Continue;
            }
        }
        if cmd == Some(Cmd::Connection(ConnCmd::Quit)) {
            encode(&Reply::ok(), self.version, out);
            return Flow::Close;
        }
        // redis's collections (and what may hold one) on a memory route.
        if cmd.is_none_or(collections::is_key_command) {
            if let Some(reply) = self.on_memory(&args).await {
                encode(&reply, self.version, out);
                return Flow::Continue;
            }
        }
        let started = std::time::Instant::now();
        let (reply, ran) = match (check_arity(spec, &args), spec.zip(cmd)) {
            (Ok(()), Some((spec, cmd))) => (self.execute(spec, cmd, &args).await, true),
            (Ok(()), None) => (unknown_command(&args), false),
            (Err(error), _) => (error, false),
        };
        figures::record(spec, started, ran, &reply);
        encode(&reply, self.version, out);
        Flow::Continue
    }

    /// One decoded command: refused before authentication or by the
    /// user's permissions, batched for the redis route that owns its keys,
    /// or run (after the batch so far is sent, to keep replies in order).
    async fn take_batched(
        &mut self,
        command: Command,
        batch: &mut Forwarding,
        output: &mut BytesMut,
    ) -> Flow {
        if !self.authenticated {
            self.flush_forwarded(batch, output).await;
            return self.unauthenticated(command.args, output).await;
        }
        if let Err(refusal) = self.permitted(&command.args) {
            self.flush_forwarded(batch, output).await;
            self.shared.stats.commands.add(1);
            // Refused while queueing: EXEC then aborts, as redis.
            if let Some(transaction) = &mut self.transaction {
                transaction.aborted = true;
            }
            encode(&Reply::error(refusal.message()), self.version, output);
            return Flow::Continue;
        }
        let monitors = &self.shared.clients.monitors;
        if monitors.watched() && !self.sentinel {
            monitors.feed(self.db, &self.client.monitor_name, &command.args);
        }
        if !self.sentinel && self.may_take_on_own_connection(&command.args) {
            if let Some(flow) = self
                .take_on_own_connection(&command.args, batch, output)
                .await
            {
                self.shared.stats.commands.add(1);
                return flow;
            }
        }
        if self.transaction.is_none() && !self.sentinel {
            if let Some(forward) = self.redis_owner(&command.args) {
                if batch.route != Some(forward.route) {
                    self.flush_forwarded(batch, output).await;
                    batch.route = Some(forward.route);
                }
                self.shared.stats.commands.add(1);
                if command.raw.first() == Some(&b'*') {
                    batch.commands.push_raw(&command.raw, forward.hash_slot);
                } else {
                    batch.commands.push_args(&command.args, forward.hash_slot);
                }
                batch.specs.push(forward.spec);
                return Flow::Continue;
            }
        }
        self.flush_forwarded(batch, output).await;
        self.handle(command.args, output).await
    }

    /// Before AUTH, as redis with a password: only AUTH, HELLO, RESET and
    /// QUIT run.
    async fn unauthenticated(&mut self, args: Vec<Bytes>, out: &mut BytesMut) -> Flow {
        let cmd = commands::lookup(&args[0]).and_then(CommandSpec::runs);
        match cmd {
            Some(Cmd::Connection(
                ConnCmd::Auth | ConnCmd::Hello | ConnCmd::Reset | ConnCmd::Quit,
            )) => self.handle(args, out).await,
            _ => {
                self.shared.stats.commands.add(1);
                encode(
                    &Reply::error("NOAUTH Authentication required."),
                    self.version,
                    out,
                );
                Flow::Continue
            }
        }
    }

    /// Whether the user's `permissions` allow this command on these keys.
    fn permitted(&self, args: &[Bytes]) -> Result<(), Refusal> {
        // A Sentinel's commands are its own (and reveal no key).
        let Some(permissions) = self.permissions.as_ref().filter(|_| !self.sentinel) else {
            return Ok(());
        };
        permissions.check(args)?;
        permissions.check_channels(args)?;
        match forward::plan(args) {
            forward::Plan::Keys(positions, _) => permissions.check_keys(positions.keys(args)),
            // SORT's BY and GET patterns may read any key: as redis 7, only
            // a user allowed every key may use them.
            forward::Plan::Keyless(spec) if spec.keys == commands::KeySpec::KeyAndStore => {
                match permissions.all_keys() {
                    true => Ok(()),
                    false => Err(Refusal::Key),
                }
            }
            _ => Ok(()),
        }
    }

    /// After a reload: whether the user this connection authenticated as
    /// is gone (then the connection closes: it must not stay authenticated
    /// as nobody, Valkey #3800); else its permissions as now configured.
    fn user_was_removed(&mut self) -> bool {
        let generation = Arc::as_ptr(&self.shared) as usize;
        if generation == self.users_generation {
            return false;
        }
        self.users_generation = generation;
        let Some(user) = &self.user else {
            return false;
        };
        if !self.shared.users.required() {
            self.permissions = None;
            return false;
        }
        match self.shared.users.find(user) {
            Some(permissions) => {
                self.permissions = permissions;
                // As redis disconnects a subscriber whose ACL no longer
                // allows its channels.
                let allowed = self.subscriptions_allowed();
                if !allowed {
                    tracing::info!(
                        user = %String::from_utf8_lossy(user),
                        "client disconnected: a reload took away channels it is subscribed to"
                    );
                }
                !allowed
            }
            None => {
                tracing::info!(
                    user = %String::from_utf8_lossy(user),
                    "client disconnected: a reload removed the user it authenticated as"
                );
                true
            }
        }
    }

    async fn execute(&mut self, spec: &'static CommandSpec, cmd: Cmd, args: &[Bytes]) -> Reply {
        let result = match cmd {
            Cmd::Transaction(TxCmd::Multi) => self.multi(),
            Cmd::Transaction(TxCmd::Exec) => return self.exec().await,
            Cmd::Transaction(TxCmd::Discard) => self.discard(),
            _ => self.run(spec.name, cmd, args).await,
        };
        result.unwrap_or_else(|error| error)
    }

    /// Runs one command in the module its [`Cmd`] names.
    async fn run(&mut self, name: &'static str, cmd: Cmd, args: &[Bytes]) -> CmdResult {
        match cmd {
            Cmd::Strings(cmd) => self.string_command(cmd, name, args).await,
            Cmd::Keys(cmd) => self.key_command(cmd, name, args).await,
            Cmd::Scripts(cmd) => self.script_command(cmd, args).await,
            Cmd::Server(cmd) => self.server_command(cmd, args).await,
            Cmd::Items(cmd) => self.item_command(cmd, args).await,
            Cmd::Connection(cmd) => {
                let reply = self.connection_command(cmd, args).await;
                self.publish();
                reply
            }
            // Transaction control is never queued (see `handle`), so never
            // reaches here from EXEC.
            Cmd::Transaction(_) => Err(Reply::error(format!(
                "ERR '{name}' cannot run inside a transaction"
            ))),
        }
    }
}

impl Session for RespSession {
    fn shared_mut(&mut self) -> &mut Arc<Shared> {
        &mut self.shared
    }

    fn killed(&self) -> Option<tokio_util::sync::CancellationToken> {
        Some(self.client.killed.clone())
    }

    fn long_waits(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        Some(self.client.long_wait.clone())
    }

    fn listens(&self) -> bool {
        self.listening.is_some()
            || self.monitoring.is_some()
            || self.subscribed_here.is_some()
            || self.tracking.is_some()
    }

    async fn pushed(&mut self, output: &mut BytesMut) -> bool {
        self.relay_pushed(output).await
    }

    fn still_entitled(&mut self) -> bool {
        !self.user_was_removed()
    }

    async fn process(&mut self, input: &mut BytesMut, output: &mut BytesMut) -> Flow {
        let mut batch = Forwarding::default();
        let limits = &self.shared.config.limits;
        let (max_pipeline, max_output) = (limits.max_pipeline, limits.max_output_buffer.as_usize());
        let mut answered = 0;
        if self.user_was_removed() {
            return Flow::Close;
        }
        loop {
            if answered >= max_pipeline || output.len() >= max_output {
                self.flush_forwarded(&mut batch, output).await;
                return if input.is_empty() {
                    Flow::Continue
                } else {
                    Flow::Yield
                };
            }
            // Until AUTH succeeds, redis's pre-authentication limits; on the
            // sentinel listener always (open to strangers by default, and no
            // Sentinel command needs more than a few short arguments).
            self.decoder
                .set_unauthenticated(!self.authenticated || self.sentinel);
            match self.decoder.decode(input) {
                Ok(None) => {
                    self.flush_forwarded(&mut batch, output).await;
                    return Flow::Continue;
                }
                Ok(Some(command)) => {
                    answered += 1;
                    if self.take(command, &mut batch, output).await == Flow::Close {
                        return Flow::Close;
                    }
                }
                Err(error) => {
                    self.flush_forwarded(&mut batch, output).await;
                    // The stream can no longer be framed: reply, then close (as redis).
                    encode(&Reply::error(format!("ERR {error}")), self.version, output);
                    return Flow::Close;
                }
            }
        }
    }
}

/// Whether the command exists and has a valid argument count; the error
/// reply if not. A command Keyway does not know may be one it forwards to
/// redis routes (see [`forward`]): then the error says why it could not be.
fn check_arity(spec: Option<&CommandSpec>, args: &[Bytes]) -> Result<(), Reply> {
    let Some(spec) = spec else {
        return Err(match forward::plan(args) {
            forward::Plan::Refuse(error) => error,
            forward::Plan::Keys(..) => not_on_this_route(&args[0]),
            forward::Plan::Keyless(spec) => not_one_redis(spec.name),
            forward::Plan::Local => unknown_command(args),
        });
    };
    let n = args.len() as i32;
    let ok = if spec.arity >= 0 {
        n == spec.arity
    } else {
        n >= -spec.arity
    };
    if ok {
        Ok(())
    } else {
        Err(wrong_arity(spec.name))
    }
}
