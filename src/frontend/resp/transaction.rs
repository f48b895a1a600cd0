//! MULTI ... EXEC: commands queued, then run on the one redis backend that
//! owns every key (a real transaction there), or one after another by
//! Keyway.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::commands::CommandSpec;
use super::forward::Forward;
use super::{client_view, commands, not_on_this_route, CmdResult, RespSession};
use crate::backend::redis::Batch;

/// Commands queued between MULTI and EXEC.
#[derive(Default)]
pub(super) struct Transaction {
    pub(super) queued: Vec<Vec<Bytes>>,
    /// A queued command was refused; EXEC must abort.
    pub(super) aborted: bool,
}

impl RespSession {
    pub(super) fn multi(&mut self) -> CmdResult {
        if self.transaction.is_some() {
            return Err(Reply::error("ERR MULTI calls can not be nested"));
        }
        self.transaction = Some(Transaction::default());
        Ok(Reply::ok())
    }

    pub(super) fn discard(&mut self) -> CmdResult {
        self.end_watch();
        match self.transaction.take() {
            Some(_) => Ok(Reply::ok()),
            None => Err(Reply::error("ERR DISCARD without MULTI")),
        }
    }

    /// Runs the queued commands in order. They are not isolated from other
    /// clients' commands (documented): each is atomic on its own.
    pub(super) async fn exec(&mut self) -> Reply {
        let Some(transaction) = self.transaction.take() else {
            return Reply::error("ERR EXEC without MULTI");
        };
        if transaction.aborted {
            self.end_watch();
            return Reply::error("EXECABORT Transaction discarded because of previous errors.");
        }
        if self.watch_lost {
            self.end_watch();
            // redis's answer when a watched key changed (`*-1` in RESP2).
            return Reply::NullArray;
        }
        let on_redis = self.exec_on_redis(&transaction.queued).await;
        // EXEC ends a WATCH, whether it ran there or not.
        self.end_watch();
        if let Some(reply) = on_redis {
            return reply;
        }
        let mut replies = Vec::with_capacity(transaction.queued.len());
        for args in transaction.queued {
            if let Some(reply) = self.on_memory(&args).await {
                replies.push(reply);
                continue;
            }
            let served =
                commands::lookup(&args[0]).and_then(|spec| Some((spec.name, spec.runs()?)));
            let reply = match served {
                Some((name, cmd)) => self
                    .run(name, cmd, &args)
                    .await
                    .unwrap_or_else(|error| error),
                None => match self.redis_owner(&args) {
                    Some(target) => self.forward_one(target, &args).await,
                    None => not_on_this_route(&args[0]),
                },
            };
            replies.push(reply);
        }
        Reply::Array(replies)
    }

    /// Runs the whole transaction on one redis backend when every queued
    /// command goes there: a real MULTI/EXEC, atomic and isolated.
    /// On a Redis Cluster that means one node: every key in one hash slot.
    /// A transaction of Keyway's own commands over several backends runs as
    /// Keyway runs one over several routes (see `exec`); one with redis's
    /// other commands is refused with the rule.
    async fn exec_on_redis(&mut self, queued: &[Vec<Bytes>]) -> Option<Reply> {
        let targets: Vec<Option<Forward>> =
            queued.iter().map(|args| self.redis_owner(args)).collect();
        let (route, hash_slot) = match targets.first() {
            Some(first) => first.as_ref()?.target(),
            // An empty transaction under a WATCH: redis still answers
            // whether a watched key changed.
            None => (self.pinned.as_ref()?.route, 0),
        };
        if !targets
            .iter()
            .all(|t| t.map(Forward::target) == Some((route, hash_slot)))
        {
            let router = &self.shared.resp_router;
            let one_cluster = router.is_redis_cluster(route)
                && targets.iter().all(|t| t.is_some_and(|t| t.route == route));
            let foreign = queued
                .iter()
                .any(|args| commands::lookup(&args[0]).is_none());
            if one_cluster && foreign {
                return Some(Reply::error(
                    "CROSSSLOT Keys in request don't hash to the same slot (a MULTI/EXEC on a \
                     redis-cluster route runs on one node, so every key in it must hash to one \
                     slot: give the keys one {hash tag})",
                ));
            }
            return None;
        }
        let mut commands = Batch::default();
        commands.push_args(&[Bytes::from_static(b"MULTI")], hash_slot);
        for args in queued {
            commands.push_args(args, hash_slot);
        }
        commands.push_args(&[Bytes::from_static(b"EXEC")], hash_slot);
        // Every target is there (checked above): each queued command's entry.
        let specs: Vec<_> = targets.iter().flatten().map(|t| t.spec).collect();
        let families = specs.iter().map(|spec| spec.family);
        // Under a WATCH of keys on this server: on the client's own
        // connection, where redis watches them.
        let replies = match self.pinned.as_ref().is_some_and(|p| p.route == route) {
            true => self.exec_pinned(route, commands).await?,
            false => self
                .forward_to(route, commands, families, true)
                .await
                .map_err(Reply::from),
        };
        let exec = match replies {
            Ok(mut replies) => replies.pop()?,
            Err(error) => return Some(error),
        };
        Some(self.exec_reply(&exec, &specs))
    }

    /// redis's EXEC reply, each command's reply shaped for the client.
    fn exec_reply(&self, exec: &Bytes, specs: &[&'static CommandSpec]) -> Reply {
        match keyway_protocol::resp::parse_backend_reply(exec, self.version) {
            Ok(Reply::Array(results)) => Reply::Array(
                specs
                    .iter()
                    .zip(results)
                    .map(|(spec, reply)| client_view::client_reply(spec, reply))
                    .collect(),
            ),
            // A WATCH aborted it: redis's null array (`*-1` in RESP2).
            Ok(Reply::Null) => Reply::NullArray,
            Ok(other) => other,
            Err(error) => Reply::error(format!("ERR {error}")),
        }
    }

    pub(super) async fn forward_one(&self, forward: Forward, args: &[Bytes]) -> Reply {
        let mut command = Batch::default();
        command.push_args(args, forward.hash_slot);
        let family = [forward.spec.family];
        match self.forward_to(forward.route, command, family, false).await {
            Ok(replies) => {
                match keyway_protocol::resp::parse_backend_reply(&replies[0], self.version) {
                    Ok(reply) => client_view::client_reply(forward.spec, reply),
                    Err(error) => Reply::error(format!("ERR {error}")),
                }
            }
            Err(error) => Reply::from(error),
        }
    }
}
