//! WATCH, blocking pops and XREAD/XREADGROUP ... BLOCK on redis routes:
//! on a redis connection of the client's own (`backend::redis::Pinned`),
//! since redis watches keys per connection and a blocking pop holds its
//! connection until it is served.
//! A blocking pop's connection closes after it; WATCH's is kept until
//! EXEC, DISCARD, UNWATCH, RESET or the client leaves (closing it is what
//! ends the watch), and EXEC's transaction runs on it. Other commands keep
//! the shared pipelined connections.

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use keyway_protocol::resp::{encode, Reply};

use super::commands::{find, KeySpec};
use super::forward::Forwarding;
use super::forward::{blocks, key_positions};
use super::{client_view, listening, tracking, RespSession};
use crate::backend::redis::{Batch, Pinned};
use crate::router::{Access, RedisRoute};
use crate::session::clients::PinnedSlot;
use crate::session::Flow;

/// The client's own connection, to the redis backend `route`.
pub(super) struct PinnedTo {
    pub(super) route: RedisRoute,
    pub(super) connection: Pinned,
    /// Its place under limits.max_pinned_connections.
    _slot: PinnedSlot,
}

/// Where the keys of a command that needs a connection of its own are.
fn keys_of(name: &[u8]) -> Option<KeySpec> {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    Some(match () {
        _ if is("watch") => KeySpec::Range(1, -1, 1),
        _ if is("blpop") || is("brpop") || is("bzpopmin") || is("bzpopmax") => {
            KeySpec::Range(1, -2, 1)
        }
        _ if is("blmove") || is("brpoplpush") => KeySpec::Range(1, 2, 1),
        _ if is("blmpop") || is("bzmpop") => KeySpec::Counted(2),
        _ if is("xread") || is("xreadgroup") => KeySpec::Streams,
        _ => return None,
    })
}

/// Whether `args` waits as long as the client asked (a blocking pop,
/// XREAD ... BLOCK): its reply is not bounded by request_timeout_ms.
pub(super) fn waits_as_asked(args: &[Bytes]) -> bool {
    match keys_of(&args[0]) {
        None => false,
        Some(KeySpec::Streams) => blocks(args),
        Some(_) => !args[0].eq_ignore_ascii_case(b"watch"),
    }
}

/// Whether `name` may need the client's own connection (cheap: asked of
/// every command).
pub(super) fn may_pin(name: &[u8]) -> bool {
    (5..=10).contains(&name.len())
        && (keys_of(name).is_some() || name.eq_ignore_ascii_case(b"unwatch"))
}

impl RespSession {
    /// Whether [`Self::take_on_own_connection`] may take `args` (cheap:
    /// asked of every command, so that a plain one never enters it).
    pub(super) fn may_take_on_own_connection(&self, args: &[Bytes]) -> bool {
        self.listening.is_some()
            || self.subscribed_here.is_some()
            || self.tracking.is_some()
            || listening::may_listen(&args[0])
            || tracking::turns_tracking(args)
            || may_pin(&args[0])
    }

    /// A command for pub/sub (listening.rs), CLIENT TRACKING (tracking.rs)
    /// or a connection of the client's own (pinned.rs: WATCH, blocking
    /// pops), answered after the batch so far; `None`: none of those.
    pub(super) async fn take_on_own_connection(
        &mut self,
        args: &[Bytes],
        batch: &mut Forwarding,
        output: &mut BytesMut,
    ) -> Option<Flow> {
        let listens = self.listening.is_some() || self.subscribed_here.is_some();
        if listens || listening::may_listen(&args[0]) {
            self.flush_forwarded(batch, output).await;
            if let Some(flow) = self.run_listening(args, output).await {
                return Some(flow);
            }
        }
        if self.tracking.is_some() || tracking::turns_tracking(args) {
            self.flush_forwarded(batch, output).await;
            if let Some(flow) = self.run_tracking(args, output).await {
                return Some(flow);
            }
        }
        if may_pin(&args[0]) {
            self.flush_forwarded(batch, output).await;
            if self.run_pinned(args, output).await {
                return Some(Flow::Continue);
            }
        }
        None
    }

    /// WATCH, UNWATCH or a blocking pop whose keys all route to one redis
    /// server: run on the client's own connection, its reply written.
    /// False: not such a command (or keys), for the usual path to answer.
    pub(super) async fn run_pinned(&mut self, args: &[Bytes], out: &mut BytesMut) -> bool {
        if args[0].eq_ignore_ascii_case(b"unwatch") && args.len() == 1 {
            let watching = self.pinned.is_some() || self.watch_lost;
            self.end_watch();
            if !watching && self.shared.resp_router.redis_routes().is_empty() {
                return false;
            }
            encode(&Reply::ok(), self.version, out);
            return true;
        }
        let Some(keys) = keys_of(&args[0]) else {
            return false;
        };
        // XREAD without BLOCK is forwarded on the shared connections.
        if keys == KeySpec::Streams && !blocks(args) {
            return false;
        }
        let watch = args[0].eq_ignore_ascii_case(b"watch");
        if self.transaction.is_some() {
            if !watch {
                return false;
            }
            let error = Reply::error("ERR WATCH inside MULTI is not allowed");
            encode(&error, self.version, out);
            return true;
        }
        let router = &self.shared.resp_router;
        let Some(positions) = key_positions(keys, args) else {
            return false;
        };
        let Some(route) = router.redis_target(positions.keys(args), Access::Write) else {
            return false;
        };
        if router.is_redis_cluster(route) {
            return false;
        }
        let reply = self.call_pinned(route, args, watch).await;
        match reply {
            Ok(raw) => match find(&args[0]) {
                Some(spec) => client_view::write_reply(spec, &raw, self.version, out),
                None => out.extend_from_slice(&raw),
            },
            Err(error) => encode(&error, self.version, out),
        }
        true
    }

    /// Sends one command on the client's own connection to `route` (the
    /// one WATCH keeps, or a new one); keeps it after a WATCH, or while an
    /// earlier WATCH holds it.
    async fn call_pinned(
        &mut self,
        route: RedisRoute,
        args: &[Bytes],
        watch: bool,
    ) -> Result<Bytes, Reply> {
        let (mut pinned, held) = match self.pinned.take() {
            Some(pinned) if pinned.route == route => (pinned, true),
            Some(_) if watch => {
                return Err(Reply::error(
                    "ERR WATCH: every watched key must route to one redis backend",
                ))
            }
            other => {
                // None yet, or a blocking pop elsewhere than the watched
                // keys' server: a connection for it alone.
                self.pinned = other;
                (self.open_pinned(route).await?, false)
            }
        };
        let mut command = Batch::default();
        command.push_args(args, 0);
        let killed = self.client.killed.clone();
        if !watch {
            // A blocking pop: the connection task watches for the client
            // leaving meanwhile.
            let long_wait = &self.client.long_wait;
            long_wait.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let sent = match watch {
            true => pinned.connection.send(command).left_future(),
            false => pinned.connection.send_waiting(command).right_future(),
        };
        let reply = tokio::select! {
            reply = sent => reply,
            () = killed.cancelled() => return Err(Reply::error("ERR client killed")),
        };
        let reply = match reply {
            Ok(mut replies) => replies.remove(0),
            Err(error) => {
                // The connection is dropped (a late reply would answer the
                // next request), and with it any WATCH it held.
                self.watch_lost |= held;
                return Err(Reply::error(format!("ERR {error}")));
            }
        };
        if held || (watch && reply.starts_with(b"+")) {
            self.pinned = Some(pinned);
        }
        Ok(reply)
    }

    async fn open_pinned(&self, route: RedisRoute) -> Result<PinnedTo, Reply> {
        let (connection, slot) = self.open_own_connection(route).await?;
        Ok(PinnedTo {
            route,
            connection,
            _slot: slot,
        })
    }

    /// [`Self::open_own_connection`], with the connection's id on redis
    /// (what `CLIENT TRACKING ... REDIRECT` names): pub/sub and tracking.
    pub(super) async fn open_identified_connection(
        &self,
        route: RedisRoute,
    ) -> Result<(Pinned, PinnedSlot, i64), Reply> {
        let (mut connection, slot) = self.open_own_connection(route).await?;
        let redis_id = connection
            .redis_id()
            .await
            .map_err(|e| Reply::error(format!("ERR {e}")))?;
        Ok((connection, slot, redis_id))
    }

    /// A redis connection of the client's own to `route` (WATCH, blocking
    /// pops, pub/sub, tracking), in its protocol and database, and its
    /// place under limits.max_pinned_connections.
    pub(super) async fn open_own_connection(
        &self,
        route: RedisRoute,
    ) -> Result<(Pinned, PinnedSlot), Reply> {
        let limit = self.shared.config.limits.max_pinned_connections;
        let slot = self.shared.clients.pin_slot(limit).ok_or_else(|| {
            Reply::error(format!(
                "ERR {limit} clients already hold a redis connection of their own (WATCH, \
                 blocking pops, pub/sub, CLIENT TRACKING): limits.max_pinned_connections"
            ))
        })?;
        let passage = self
            .shared
            .resp_router
            .redis_passage(route)
            .ok_or_else(|| Reply::error("ERR internal: the route has no redis backend"))?;
        let connection = passage
            .backend()
            .pin(self.version, self.db)
            .await
            .map_err(|e| Reply::error(format!("ERR {e}")))?;
        Ok((connection, slot))
    }

    /// Ends a WATCH: closing the client's own connection ends what redis
    /// watched; a lost one is forgotten.
    pub(super) fn end_watch(&mut self) {
        self.pinned = None;
        self.watch_lost = false;
    }

    /// EXEC of a transaction on `route` while a WATCH holds the client's
    /// own connection there: MULTI ... EXEC on it, which ends the watch.
    /// `None`: no watch on that route (the shared connection runs it).
    pub(super) async fn exec_pinned(
        &mut self,
        route: RedisRoute,
        commands: Batch,
    ) -> Option<Result<Vec<Bytes>, Reply>> {
        let mut pinned = self.pinned.take().filter(|p| p.route == route)?;
        Some(
            pinned
                .connection
                .send(commands)
                .await
                .map_err(|e| Reply::error(format!("ERR {e}"))),
        )
    }
}
