//! Pub/sub and MONITOR through Keyway.
//!
//! Pub/sub runs on a redis connection of the client's own
//! (`backend::redis::Pinned`) to the one redis server the routes reach
//! (`Router::redis_for_channels`), since redis sends messages unasked, on
//! the connection that subscribed. What redis sends is relayed as it came:
//! the connection task awaits it beside the client's next request
//! (`Session::pushed`). A subscribing command's confirmations are read
//! before the next command is taken (messages that come first are relayed
//! first, as redis orders them), so Keyway always knows what the client is
//! subscribed to, and lets the connection go when that is nothing (as redis
//! leaves pub/sub mode). Under RESP2, a subscribed client's other commands
//! go to that connection too, for redis's own answer (PING's `pong`, or its
//! "only (P|S)SUBSCRIBE ... allowed in this context" error); under RESP3
//! they take their usual routes. RESET and QUIT end it.
//!
//! MONITOR is Keyway's own (`session::monitor`): every RESP client's
//! commands, whichever route serves them.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use keyway_protocol::resp::{encode, parse_backend_reply, Reply, Version};

use super::{local_pubsub, RespSession};
use crate::backend::redis::{Batch, Pinned};
use crate::backend::BackendError;
use crate::session::broker::{self, Kind};
use crate::session::clients::PinnedSlot;
use crate::session::monitor::{self, FellBehind};
use crate::session::Flow;

/// The client's own connection while it is subscribed.
pub(super) struct Listening {
    connection: Pinned,
    /// Its id on redis (CLIENT TRACKING ... REDIRECT to this client).
    pub(super) redis_id: i64,
    /// What redis confirmed: channels, patterns, shard channels.
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
    shard_channels: HashSet<Bytes>,
    /// Its place under limits.max_pinned_connections.
    _slot: PinnedSlot,
}

/// What comes for a client unasked.
enum Unasked {
    /// An invalidation or a MONITOR line, written as it is.
    Frame(Bytes),
    /// A message from Keyway's own broker.
    Delivery(broker::Delivery),
    /// What redis sent on the pub/sub connection.
    Message(Bytes),
}

/// The commands that start or change listening.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listen {
    Subscribe(Kind),
    Unsubscribe(Kind),
    Monitor,
}

impl Listen {
    fn of(name: &[u8]) -> Option<Listen> {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        Some(match () {
            _ if is("subscribe") => Listen::Subscribe(Kind::Channel),
            _ if is("psubscribe") => Listen::Subscribe(Kind::Pattern),
            _ if is("ssubscribe") => Listen::Subscribe(Kind::Shard),
            _ if is("unsubscribe") => Listen::Unsubscribe(Kind::Channel),
            _ if is("punsubscribe") => Listen::Unsubscribe(Kind::Pattern),
            _ if is("sunsubscribe") => Listen::Unsubscribe(Kind::Shard),
            _ if is("monitor") => Listen::Monitor,
            _ => return None,
        })
    }
}

/// Whether `name` may start listening, or names channels (cheap: asked of
/// every command).
pub(super) fn may_listen(name: &[u8]) -> bool {
    let channels = || {
        name.eq_ignore_ascii_case(b"publish")
            || name.eq_ignore_ascii_case(b"spublish")
            || name.eq_ignore_ascii_case(b"pubsub")
    };
    (6..=12).contains(&name.len()) && (Listen::of(name).is_some() || channels())
}

/// Whether a command names channels (PUBLISH, SPUBLISH, PUBSUB): it goes
/// where subscribers listen.
pub(super) fn names_channels(name: &str) -> bool {
    matches!(name, "publish" | "spublish" | "pubsub")
}

/// What one frame redis sent says: its kind (`message`, `subscribe`, ...)
/// and the channel or pattern it names.
fn kind_and_name(frame: &Bytes, version: Version) -> Option<(Bytes, Option<Bytes>)> {
    let parsed = parse_backend_reply(frame, version).ok()?;
    let Reply::Array(items) = parsed else {
        return None;
    };
    let kind = match items.first()? {
        Reply::Bulk(kind) | Reply::Simple(kind) => kind.clone(),
        _ => return None,
    };
    let name = match items.get(1) {
        Some(Reply::Bulk(name)) => Some(name.clone()),
        _ => None,
    };
    Some((kind, name))
}

fn is_message(kind: &[u8]) -> bool {
    matches!(kind, b"message" | b"pmessage" | b"smessage")
}

/// Whether a frame is a message, by its first bytes (`*3\r\n$7\r\nmessage`
/// or the push `>3...`): messages are most of what a subscriber gets, and
/// need no parsing.
fn looks_like_message(frame: &[u8]) -> bool {
    let kind = frame.get(4..).unwrap_or_default();
    kind.starts_with(b"$7\r\nmessage\r\n")
        || kind.starts_with(b"$8\r\npmessage\r\n")
        || kind.starts_with(b"$8\r\nsmessage\r\n")
}

impl Listening {
    fn subscriptions(&mut self, kind: Kind) -> &mut HashSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }

    /// Keeps what a confirmation says; true for anything but a message
    /// (a confirmation, a reply, an error).
    fn observe(&mut self, frame: &Bytes) -> bool {
        if looks_like_message(frame) {
            return false;
        }
        let Some((kind, name)) = kind_and_name(frame, self.connection.version()) else {
            return true;
        };
        let change = match &kind[..] {
            b"subscribe" => Some((Kind::Channel, true)),
            b"psubscribe" => Some((Kind::Pattern, true)),
            b"ssubscribe" => Some((Kind::Shard, true)),
            b"unsubscribe" => Some((Kind::Channel, false)),
            b"punsubscribe" => Some((Kind::Pattern, false)),
            b"sunsubscribe" => Some((Kind::Shard, false)),
            _ => None,
        };
        if let (Some((kind, added)), Some(name)) = (change, name) {
            match added {
                true => self.subscriptions(kind).insert(name),
                false => self.subscriptions(kind).remove(&name),
            };
        }
        !is_message(&kind)
    }

    /// Whether redis still counts this client as subscribed.
    fn active(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty() || !self.shard_channels.is_empty()
    }

    /// How many answers redis gives `args`: a confirmation per channel
    /// named, or per subscription it ends (one when there is none).
    fn answers(&mut self, listen: Option<Listen>, args: &[Bytes]) -> usize {
        match listen {
            Some(Listen::Unsubscribe(kind)) if args.len() == 1 => {
                self.subscriptions(kind).len().max(1)
            }
            // (A bare SUBSCRIBE gets one answer: redis's arity error.)
            Some(Listen::Subscribe(_) | Listen::Unsubscribe(_)) => (args.len() - 1).max(1),
            Some(Listen::Monitor) | None => 1,
        }
    }
}

impl Listening {
    /// Reads redis's answers to `args` (just sent), relaying them and the
    /// messages that come first.
    async fn relay_answers(
        &mut self,
        listen: Option<Listen>,
        args: &[Bytes],
        out: &mut BytesMut,
    ) -> Result<(), BackendError> {
        let mut awaited = self.answers(listen, args);
        while awaited > 0 {
            let frame = self.connection.next_answer().await?;
            if frame.starts_with(b"-") {
                // An error answers the whole command.
                awaited = 1;
            }
            if self.observe(&frame) {
                awaited -= 1;
            }
            out.extend_from_slice(&frame);
        }
        Ok(())
    }
}

impl RespSession {
    /// A command while listening, or one that starts it: run on the
    /// client's own connection, what redis answers relayed. `None`: the
    /// usual path takes it (QUIT, RESET, a RESP3 client's other commands,
    /// a command inside MULTI). `Flow::Close` when the connection to redis
    /// failed: what redis knew of the client went with it, and a client
    /// told so by a closed connection subscribes again (redis-py does).
    pub(super) async fn run_listening(
        &mut self,
        args: &[Bytes],
        out: &mut BytesMut,
    ) -> Option<Flow> {
        let listen = Listen::of(&args[0]);
        let ends = args[0].eq_ignore_ascii_case(b"reset") || args[0].eq_ignore_ascii_case(b"quit");
        if ends || self.transaction.is_some() {
            return None;
        }
        // MONITOR is Keyway's own (every client's commands); a RESP2
        // subscriber's goes to redis, which refuses it in that context.
        if listen == Some(Listen::Monitor)
            && (self.listening.is_none() || self.version == Version::Resp3)
        {
            self.monitoring = Some(self.shared.clients.monitors.watch());
            self.client.state.lock().monitor = true;
            encode(&Reply::ok(), self.version, out);
            return Some(Flow::Continue);
        }
        if !self.shared.resp_router.reaches_redis() {
            return self.run_local_pubsub(args, out);
        }
        let mut listening = match self.listening.take() {
            Some(listening) => listening,
            None if listen.is_some() => match self.open_listening().await {
                Ok(listening) => listening,
                Err(error) => {
                    encode(&error, self.version, out);
                    return Some(Flow::Continue);
                }
            },
            None => return None,
        };
        if listen.is_none() && self.version == Version::Resp3 {
            self.listening = Some(listening);
            return None;
        }
        let mut command = Batch::default();
        command.push_args(args, 0);
        if let Err(error) = listening.connection.write(command).await {
            encode(&Reply::error(format!("ERR {error}")), self.version, out);
            return Some(Flow::Close);
        }
        if let Err(error) = listening.relay_answers(listen, args, out).await {
            encode(&Reply::error(format!("ERR {error}")), self.version, out);
            return Some(Flow::Close);
        }
        self.keep_listening(listening);
        Some(Flow::Continue)
    }

    /// Keeps the connection while redis counts the client as subscribed,
    /// and shows CLIENT LIST what it is subscribed to.
    fn keep_listening(&mut self, listening: Listening) {
        let mut state = self.client.state.lock();
        state.subscriptions = [
            listening.channels.len(),
            listening.patterns.len(),
            listening.shard_channels.len(),
        ];
        drop(state);
        if listening.active() {
            self.listening = Some(listening);
        }
        self.publish_redis_connection();
    }

    async fn open_listening(&self) -> Result<Listening, Reply> {
        let router = &self.shared.resp_router;
        let route = router.redis_for_channels().ok_or_else(|| {
            Reply::error(
                "ERR pub/sub and MONITOR through Keyway go to the one redis server its routes \
                 reach (not a Redis Cluster); this listener's routes reach none or several",
            )
        })?;
        let (connection, slot, redis_id) = self.open_identified_connection(route).await?;
        Ok(Listening {
            connection,
            redis_id,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            _slot: slot,
        })
    }

    /// Whether the user's permissions allow every channel and pattern the
    /// client is subscribed to (on redis or on Keyway's broker).
    pub(super) fn subscriptions_allowed(&self) -> bool {
        let Some(permissions) = &self.permissions else {
            return true;
        };
        let on_redis = self.listening.as_ref().map(|l| {
            [
                ("subscribe", &l.channels),
                ("psubscribe", &l.patterns),
                ("ssubscribe", &l.shard_channels),
            ]
        });
        let here = self.subscribed_here.as_ref().map(|s| {
            let [channels, patterns, shard] = s.names();
            [
                ("subscribe", channels),
                ("psubscribe", patterns),
                ("ssubscribe", shard),
            ]
        });
        on_redis
            .into_iter()
            .chain(here)
            .flatten()
            .all(|(command, names)| {
                let mut args = vec![Bytes::from_static(command.as_bytes())];
                args.extend(names.iter().cloned());
                args.len() == 1 || permissions.check_channels(&args).is_ok()
            })
    }

    /// What comes for the client unasked, whichever source sends first;
    /// why the client must go when a source failed.
    async fn next_unasked(&mut self) -> Result<Unasked, String> {
        let (listening, monitoring) = (&mut self.listening, &mut self.monitoring);
        let messages = async move {
            match listening {
                Some(listening) => listening.connection.next_frame().await,
                None => std::future::pending().await,
            }
        };
        let lines = async move {
            match monitoring {
                Some(watcher) => watcher.next().await,
                None => std::future::pending().await,
            }
        };
        let here = RespSession::next_delivery(&mut self.subscribed_here);
        let invalidations = RespSession::next_invalidation(&mut self.tracking);
        tokio::select! {
            push = invalidations => push
                .map(Unasked::Frame)
                .ok_or_else(|| "its CLIENT TRACKING connection to redis failed".to_string()),
            delivery = here => delivery
                .map(Unasked::Delivery)
                .ok_or_else(|| format!("it fell {} pub/sub messages behind", broker::QUEUE)),
            message = messages => message
                .map(Unasked::Message)
                .map_err(|error| format!("its pub/sub connection to redis failed: {error}")),
            line = lines => line.map(Unasked::Frame).map_err(|FellBehind(missed)| {
                format!("it fell {missed} MONITOR lines past the {} kept", monitor::BACKLOG)
            }),
        }
    }

    /// What redis sent unasked (messages, invalidations), the broker's
    /// deliveries, and every client's commands while this one monitors,
    /// appended to `out` (all that is ready); false when the client must
    /// be disconnected: a redis connection of its own failed (as redis's
    /// own subscribers are when redis goes away), or it fell too far
    /// behind. Never resolves while the client has nothing coming.
    pub(super) async fn relay_pushed(&mut self, out: &mut BytesMut) -> bool {
        let mut message = match self.next_unasked().await {
            Ok(Unasked::Frame(frame)) => {
                out.extend_from_slice(&frame);
                None
            }
            Ok(Unasked::Delivery(delivery)) => {
                local_pubsub::write_delivery(&delivery, self.version, out);
                None
            }
            Ok(Unasked::Message(message)) => Some(message),
            Err(why) => {
                tracing::info!("client disconnected: {why}");
                return false;
            }
        };
        if let Some(mut listening) = self.listening.take() {
            while let Some(frame) = message
                .take()
                .or_else(|| listening.connection.buffered_frame().ok().flatten())
            {
                listening.observe(&frame);
                out.extend_from_slice(&frame);
            }
            self.keep_listening(listening);
        }
        self.ready_deliveries(out);
        if let Some(watcher) = &mut self.monitoring {
            while let Some(line) = watcher.ready() {
                match line {
                    Ok(line) => out.extend_from_slice(&line),
                    Err(FellBehind(_)) => return false,
                }
            }
        }
        true
    }
}
