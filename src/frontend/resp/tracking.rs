//! CLIENT TRACKING (client-side caching, as redis-py's `cache_config` uses
//! it) where every route goes to one redis server: redis tracks the keys a
//! connection reads, so a tracking client gets a redis connection of its
//! own and every command Keyway would forward goes over it, one at a time;
//! redis's invalidations come back on it (RESP3 pushes, relayed where they
//! fall, or unasked between requests) or, with `REDIRECT`, on the redis
//! connection of the client named (its pub/sub connection, subscribed to
//! `__redis__:invalidate` through this Keyway). Where a route goes
//! elsewhere (memory, SQL, memcached), Keyway cannot know when a key
//! changes, so tracking is refused there: a client would cache stale values.

use bytes::{Bytes, BytesMut};
use keyway_protocol::resp::{encode, parse_backend_reply, Reply};

use super::{client_view, pinned, RespSession};
use crate::backend::redis::{Batch, Pinned};
use crate::session::clients::PinnedSlot;
use crate::session::Flow;

/// The client's own connection while it tracks.
pub(super) struct Tracking {
    connection: Pinned,
    /// Its id on redis (a `REDIRECT` to this client itself names it).
    redis_id: i64,
    /// The Keyway client its invalidations go to (`REDIRECT`), or -1.
    redirect: i64,
    /// Its place under limits.max_pinned_connections.
    _slot: PinnedSlot,
}

fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// Whether `args` is `CLIENT TRACKING ...`.
pub(super) fn turns_tracking(args: &[Bytes]) -> bool {
    args.len() >= 3 && is(&args[0], "client") && is(&args[1], "tracking")
}

/// The Keyway client id after `REDIRECT`, if any.
fn redirect_of(args: &[Bytes]) -> Option<&Bytes> {
    let at = args.iter().position(|arg| is(arg, "redirect"))?;
    args.get(at + 1)
}

impl RespSession {
    /// CLIENT TRACKING, and while tracking, what goes over the tracking
    /// connection. `None`: the usual path takes it.
    pub(super) async fn run_tracking(
        &mut self,
        args: &[Bytes],
        out: &mut BytesMut,
    ) -> Option<Flow> {
        if self.transaction.is_some() {
            return None;
        }
        let client_command = is(&args[0], "client") && args.len() >= 2;
        if turns_tracking(args) {
            let reply = self.turn_tracking(args, out).await;
            if let Some(reply) = reply {
                encode(&reply, self.version, out);
            }
            return Some(Flow::Continue);
        }
        let tracking = self.tracking.as_ref()?;
        if client_command && is(&args[1], "getredir") && args.len() == 2 {
            encode(&Reply::Integer(tracking.redirect), self.version, out);
            return Some(Flow::Continue);
        }
        // CACHING and TRACKINGINFO are the tracking connection's; other
        // commands go there when Keyway would forward them.
        let own = client_command && (is(&args[1], "caching") || is(&args[1], "trackinginfo"));
        let forward = match own {
            true => None,
            false => Some(self.redis_owner(args)?),
        };
        let reply = self.send_tracked(args, out).await;
        match (reply, forward) {
            (Ok(raw), Some(forward)) => {
                client_view::write_reply(forward.spec, &raw, self.version, out)
            }
            (Ok(raw), None) if is(&args[1], "trackinginfo") => {
                let info = self.keyway_redirect(&raw);
                encode(&info, self.version, out);
            }
            (Ok(raw), None) => out.extend_from_slice(&raw),
            (Err(error), _) => {
                encode(&error, self.version, out);
                // The connection is gone, and with it what redis tracked:
                // the client must drop its cache, which a closed
                // connection tells it (redis-py flushes it on reconnect).
                return Some(Flow::Close);
            }
        }
        Some(Flow::Continue)
    }

    /// One command on the tracking connection: redis's reply, after the
    /// invalidations that came first (written to `out`).
    async fn send_tracked(&mut self, args: &[Bytes], out: &mut BytesMut) -> Result<Bytes, Reply> {
        let Some(tracking) = &mut self.tracking else {
            return Err(Reply::error("ERR internal: not tracking"));
        };
        let mut command = Batch::default();
        command.push_args(args, 0);
        let reply = match pinned::waits_as_asked(args) {
            true => tracking.connection.send_waiting(command).await,
            false => tracking.connection.send(command).await,
        };
        for push in tracking.connection.take_pushes() {
            out.extend_from_slice(&push);
        }
        match reply {
            Ok(mut replies) => Ok(replies.remove(0)),
            Err(error) => {
                self.tracking = None;
                Err(Reply::error(format!("ERR {error}")))
            }
        }
    }

    /// CLIENT TRACKING ON|OFF ...: sent on the client's own connection
    /// (opened for ON), its `REDIRECT` turned into the redis connection of
    /// the Keyway client it names. `None`: the reply is written.
    async fn turn_tracking(&mut self, args: &[Bytes], out: &mut BytesMut) -> Option<Reply> {
        let on = is(&args[2], "on");
        if !on && self.tracking.is_none() {
            // Already off: redis answers OK (and checks nothing more).
            return Some(match is(&args[2], "off") {
                true => Reply::ok(),
                false => Reply::error("ERR syntax error"),
            });
        }
        if self.tracking.is_none() {
            if let Err(error) = self.open_tracking().await {
                return Some(error);
            }
        }
        let mut args = args.to_vec();
        let mut redirect = -1;
        if let Some(at) = args.iter().position(|arg| is(arg, "redirect")) {
            let Some(id) =
                redirect_of(&args).and_then(|id| std::str::from_utf8(id).ok()?.parse::<u64>().ok())
            else {
                return Some(Reply::error("ERR value is not an integer or out of range"));
            };
            let Some(redis_id) = self.shared.clients.redis_connection_of(id) else {
                self.drop_tracking_if_off();
                return Some(Reply::error(format!(
                    "ERR CLIENT TRACKING REDIRECT through Keyway: client {id} holds no redis \
                     connection for invalidations to go to (subscribe it to \
                     __redis__:invalidate through this Keyway first)"
                )));
            };
            redirect = id as i64;
            args[at + 1] = Bytes::from(redis_id.to_string());
        }
        let reply = match self.send_tracked(&args, out).await {
            Ok(raw) => raw,
            Err(error) => return Some(error),
        };
        let accepted = reply.starts_with(b"+");
        out.extend_from_slice(&reply);
        match (accepted, on) {
            (true, true) => {
                if let Some(tracking) = &mut self.tracking {
                    tracking.redirect = redirect;
                }
            }
            (true, false) => self.tracking = None,
            (false, _) => self.drop_tracking_if_off(),
        }
        self.publish_redis_connection();
        None
    }

    /// A connection opened for a refused `CLIENT TRACKING ON` is not kept.
    fn drop_tracking_if_off(&mut self) {
        if self.tracking.as_ref().is_some_and(|t| t.redirect == -2) {
            self.tracking = None;
        }
    }

    async fn open_tracking(&mut self) -> Result<(), Reply> {
        let router = &self.shared.resp_router;
        let route = router.redis_for_every_key().ok_or_else(|| {
            Reply::error(
                "ERR CLIENT TRACKING through Keyway needs every route of this listener to go to \
                 one redis server (not a cluster): redis tells a tracking client when a key \
                 changes, and Keyway cannot on other routes",
            )
        })?;
        let (connection, slot, redis_id) = self.open_identified_connection(route).await?;
        self.tracking = Some(Tracking {
            connection,
            redis_id,
            // Not yet accepted by redis (see `drop_tracking_if_off`).
            redirect: -2,
            _slot: slot,
        });
        self.publish_redis_connection();
        Ok(())
    }

    /// Tells the registry which redis connection a `REDIRECT` to this
    /// client names: its pub/sub connection, else its tracking one.
    pub(super) fn publish_redis_connection(&self) {
        let id = match (&self.listening, &self.tracking) {
            (Some(listening), _) => listening.redis_id,
            (None, Some(tracking)) => tracking.redis_id,
            (None, None) => -1,
        };
        let published = &self.client.redis_connection;
        if published.load(std::sync::atomic::Ordering::Relaxed) != id {
            published.store(id, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// TRACKINGINFO as redis answers it, with the redirect named by its
    /// Keyway client id.
    fn keyway_redirect(&self, raw: &Bytes) -> Reply {
        let redirect = self.tracking.as_ref().map_or(-1, |t| t.redirect);
        let is_redirect = |name: &Reply| matches!(name, Reply::Bulk(n) if &n[..] == b"redirect");
        match parse_backend_reply(raw, self.version) {
            Ok(Reply::Map(mut fields)) => {
                for (name, value) in &mut fields {
                    if is_redirect(name) && redirect >= 0 {
                        *value = Reply::Integer(redirect);
                    }
                }
                Reply::Map(fields)
            }
            // RESP2: the map's keys and values one after another.
            Ok(Reply::Array(mut items)) => {
                for at in (1..items.len()).step_by(2) {
                    if is_redirect(&items[at - 1]) && redirect >= 0 {
                        items[at] = Reply::Integer(redirect);
                    }
                }
                Reply::Array(items)
            }
            Ok(other) => other,
            Err(_) => Reply::error("ERR internal: CLIENT TRACKINGINFO's reply"),
        }
    }

    /// The next invalidation redis sent a tracking client unasked.
    pub(super) async fn next_invalidation(tracking: &mut Option<Tracking>) -> Option<Bytes> {
        match tracking {
            Some(tracking) => tracking.connection.next_frame().await.ok(),
            None => std::future::pending().await,
        }
    }
}
