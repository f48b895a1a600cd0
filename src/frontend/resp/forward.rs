//! Forwarding RESP commands to redis routes as they came.
//!
//! A command whose keys all route to one redis backend is sent there
//! unchanged, so any redis command works on a redis route (hashes, lists,
//! sets, sorted sets, your own Lua scripts...), with redis's own semantics
//! and errors. Consecutive forwardable commands of a client's pipeline go to
//! the backend as one batch on one connection, in order; a MULTI ... EXEC
//! whose commands all go to one redis backend runs there as one real
//! transaction. Keyway itself keeps the commands that span backends (KEYS,
//! SCAN, DBSIZE, FLUSHDB, FLUSHALL), the connection's own state (SELECT,
//! HELLO, AUTH, CLIENT...), and the Lua scripts it runs natively.
//!
//! WATCH and blocking pops whose keys route to one redis server run on a
//! connection of the client's own (`pinned.rs`); pub/sub and MONITOR, and
//! those elsewhere, are refused with an error that says so: forwarded
//! commands share pipelined connections with other clients.

use bytes::{Bytes, BytesMut};
use keyway_protocol::resp::{encode, key_slot, Reply};

use super::commands::{find, Cmd, CommandSpec, ConnCmd, Does, ItemCmd, KeyCmd, ScriptCmd, Why};
use super::{client_view, listening, scripts, RespSession};
use crate::backend::redis::Batch;
use crate::backend::BackendError;
use crate::metrics::Family;
use crate::router::{Access, RedisRoute, RouteError};

/// Where a command's keys are among its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// It names no key.
    None,
    /// Every `step`th argument from `first` to `last` (negative: counted
    /// from the end, -1 the last).
    Range(i32, i32, i32),
    /// A count at this argument, then that many keys right after it.
    Counted(usize),
    /// A destination key at 1, then a count at 2 and that many keys.
    DestinationAndCounted,
    /// A key at 1, and the argument after a `STORE` or `STOREDIST` option
    /// (SORT, GEORADIUS); SORT's `BY` and `GET` patterns name keys only
    /// redis can find, so such a SORT is forwarded only where every key is
    /// one redis's.
    KeyAndStore,
    /// XREAD and XREADGROUP: after `STREAMS`, as many keys as IDs follow
    /// them. With `BLOCK` they need a connection of their own: refused.
    Streams,
}

/// How Keyway treats a command it may forward.
pub enum Plan {
    /// Forward it if all the keys at these positions route to one redis
    /// backend; its entry in the command table comes along.
    Keys(KeyPositions, &'static CommandSpec),
    /// It names no key (or keys only redis can find, as SORT's BY
    /// patterns): forward it if every route goes to one redis backend.
    Keyless(&'static CommandSpec),
    /// It cannot work through Keyway; this is the error.
    Refuse(Reply),
    /// Keyway handles it (or it is unknown).
    Local,
}

/// Where `args`' keys are, for a command Keyway might forward (the command
/// table says; EVAL/EVALSHA of a script Keyway runs natively are the
/// caller's to keep).
/// Whether a command only reads its keys (redis's `readonly` flag): then
/// session keys may be forwarded as they came.
fn access(spec: &CommandSpec) -> Access {
    match spec.flags.contains(&"readonly") {
        true => Access::Read,
        false => Access::Write,
    }
}

pub fn plan(args: &[Bytes]) -> Plan {
    let Some(spec) = find(&args[0]) else {
        return Plan::Local;
    };
    match spec.does {
        Does::Refuse(why) => return Plan::Refuse(refusal(spec.name, why)),
        // Its database number is the client's, which a redis route may map
        // to another: always run by Keyway.
        Does::Serve(Cmd::Items(ItemCmd::Move)) => return Plan::Local,
        // Where one redis serves every key, COMMAND is that redis's own
        // list (every command it has, GETKEYS), and listing the keyspace is
        // redis's SCAN (TYPE included); elsewhere Keyway answers them.
        Does::Serve(
            Cmd::Connection(ConnCmd::Command)
            | Cmd::Keys(KeyCmd::Scan | KeyCmd::Keys | KeyCmd::DbSize),
        ) => return Plan::Keyless(spec),
        Does::Serve(_) | Does::Forward => {}
    }
    if spec.keys == KeySpec::KeyAndStore && names_keys_by_pattern(args) {
        return Plan::Keyless(spec);
    }
    if spec.keys == KeySpec::Streams && blocks(args) {
        return Plan::Refuse(refusal(spec.name, Why::OwnConnection));
    }
    match key_positions(spec.keys, args) {
        Some(found) => Plan::Keys(found, spec),
        // The bare command name: redis's arity error (Keyway's own commands
        // get it from Keyway's arity check).
        None if spec.does == Does::Forward && args.len() == 1 && spec.keys != KeySpec::None => {
            Plan::Refuse(Reply::error(format!(
                "ERR wrong number of arguments for '{}' command",
                spec.name
            )))
        }
        // Forwarded keyless commands, and scripts called with no key.
        None if spec.does == Does::Forward || is_script_call(spec) || is_memory(spec) => {
            Plan::Keyless(spec)
        }
        None => Plan::Local,
    }
}

/// MEMORY's keyless subcommands (STATS, DOCTOR, MALLOC-STATS) are a sole
/// redis's to answer.
fn is_memory(spec: &CommandSpec) -> bool {
    spec.runs() == Some(Cmd::Items(ItemCmd::Memory))
}

fn is_script_call(spec: &CommandSpec) -> bool {
    matches!(
        spec.runs(),
        Some(Cmd::Scripts(ScriptCmd::Eval | ScriptCmd::EvalSha))
    )
}

/// Why a command redis has is not available through Keyway, in words that
/// say what to do instead.
fn refusal(name: &str, why: Why) -> Reply {
    let name = name.to_ascii_uppercase();
    Reply::error(match why {
        Why::OwnConnection => format!(
            "ERR '{name}' is not available through Keyway here: it needs a redis connection of \
             its own, which Keyway opens only where every key it names routes to one redis \
             server (for pub/sub and MONITOR: where the routes reach one redis server), not a \
             cluster, and not inside MULTI"
        ),
        Why::Administers => format!(
            "ERR '{name}' is not available through Keyway: it administers the redis server \
             itself; connect to redis directly for it"
        ),
        Why::Users => format!(
            "ERR '{name}' is not available through Keyway: its users and their permissions are \
             [[auth.users]] in its configuration file (reload it with SIGHUP)"
        ),
    })
}

/// Whether an XREAD or XREADGROUP waits (`BLOCK` before `STREAMS`).
pub(super) fn blocks(args: &[Bytes]) -> bool {
    args.iter()
        .take_while(|arg| !arg.eq_ignore_ascii_case(b"streams"))
        .any(|arg| arg.eq_ignore_ascii_case(b"block"))
}

/// XREAD's keys: after `STREAMS`, the first half of what follows.
fn stream_keys(args: &[Bytes]) -> Option<KeyPositions> {
    let streams = args
        .iter()
        .position(|arg| arg.eq_ignore_ascii_case(b"streams"))?;
    let after = args.len() - streams - 1;
    if after == 0 || after % 2 != 0 {
        return None;
    }
    Some(KeyPositions {
        destination: None,
        first: streams + 1,
        last: streams + after / 2,
        step: 1,
    })
}

/// Whether a SORT names keys by pattern (`BY` other than `nosort`, `GET`
/// other than `#`): only the redis holding every key can look them up.
fn names_keys_by_pattern(args: &[Bytes]) -> bool {
    if !args[0].eq_ignore_ascii_case(b"sort") && !args[0].eq_ignore_ascii_case(b"sort_ro") {
        return false;
    }
    args.windows(2).skip(2).any(|pair| {
        (pair[0].eq_ignore_ascii_case(b"by") && !pair[1].eq_ignore_ascii_case(b"nosort"))
            || (pair[0].eq_ignore_ascii_case(b"get") && pair[1].as_ref() != b"#")
    })
}

/// Which arguments of a command are keys: an optional destination, then
/// every `step`th from `first` to `last`. Found without allocating, since it
/// is asked for every command when redis routes exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPositions {
    destination: Option<usize>,
    first: usize,
    last: usize,
    step: usize,
}

impl KeyPositions {
    /// The keys among `args` (the command's arguments these positions came from).
    pub fn keys<'a>(self, args: &'a [Bytes]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.destination
            .into_iter()
            .chain((self.first..=self.last).step_by(self.step))
            .map(move |p| &args[p][..])
    }
}

/// Where the keys are; `None` when the command is too short, its count is
/// malformed, or it names no key (EVAL with 0 keys): Keyway then answers
/// itself, usually with redis's arity error.
pub(super) fn key_positions(keys: KeySpec, args: &[Bytes]) -> Option<KeyPositions> {
    let counted = |at: usize| -> Option<(usize, usize)> {
        let count: usize = std::str::from_utf8(args.get(at)?).ok()?.parse().ok()?;
        let end = at.checked_add(1)?.checked_add(count)?;
        (count > 0 && end <= args.len()).then_some((at + 1, end - 1))
    };
    let positions = match keys {
        KeySpec::None => return None,
        KeySpec::KeyAndStore => key_and_store(args)?,
        KeySpec::Streams => stream_keys(args)?,
        KeySpec::Range(first, last, step) => {
            let first = first as usize;
            let last = if last < 0 {
                args.len().checked_sub(last.unsigned_abs() as usize)?
            } else {
                last as usize
            };
            if first >= args.len() || last >= args.len() || last < first {
                return None;
            }
            KeyPositions {
                destination: None,
                first,
                last,
                step: step.max(1) as usize,
            }
        }
        KeySpec::Counted(at) => {
            let (first, last) = counted(at)?;
            KeyPositions {
                destination: None,
                first,
                last,
                step: 1,
            }
        }
        KeySpec::DestinationAndCounted => {
            let (first, last) = counted(2)?;
            KeyPositions {
                destination: Some(1),
                first,
                last,
                step: 1,
            }
        }
    };
    Some(positions)
}

/// SORT's and GEORADIUS's keys: the one at 1 and the argument after the
/// last `STORE` or `STOREDIST` (the last wins, as in redis).
fn key_and_store(args: &[Bytes]) -> Option<KeyPositions> {
    if args.len() < 2 {
        return None;
    }
    let store = (2..args.len().saturating_sub(1)).rev().find(|&i| {
        args[i].eq_ignore_ascii_case(b"store") || args[i].eq_ignore_ascii_case(b"storedist")
    });
    Some(KeyPositions {
        destination: store.map(|i| i + 1),
        first: 1,
        last: 1,
        step: 1,
    })
}

/// Consecutive commands of a client's pipeline bound for one redis
/// backend, sent there as one batch.
#[derive(Default)]
pub(super) struct Forwarding {
    pub(super) route: Option<RedisRoute>,
    pub(super) commands: Batch,
    /// Each command's table entry: its figures' family, its reply's shape.
    pub(super) specs: Vec<&'static CommandSpec>,
}

/// Where a command goes as it came: the redis backend, the hash slot of
/// its keys (a Redis Cluster's; 0 otherwise), and its entry in the command
/// table (looked up once, by `plan`).
#[derive(Clone, Copy)]
pub(super) struct Forward {
    pub(super) route: RedisRoute,
    pub(super) hash_slot: u16,
    pub(super) spec: &'static CommandSpec,
}

impl Forward {
    /// The backend and hash slot it goes to.
    pub(super) fn target(self) -> (RedisRoute, u16) {
        (self.route, self.hash_slot)
    }
}

impl RespSession {
    /// The redis backend `args` can be forwarded to, if any (see
    /// [`forward`]), with the hash slot of its keys when that backend is a
    /// Redis Cluster (0 otherwise).
    pub(super) fn redis_owner(&self, args: &[Bytes]) -> Option<Forward> {
        let router = &self.shared.resp_router;
        if router.redis_routes().is_empty() {
            return None;
        }
        let (positions, spec) = match plan(args) {
            Plan::Keys(positions, spec) => (positions, spec),
            Plan::Keyless(spec) if !scripts::is_builtin_call(args) => {
                let route = match listening::names_channels(spec.name) {
                    true => router.redis_for_channels()?,
                    false => router.redis_for_every_key()?,
                };
                return Some(Forward {
                    route,
                    hash_slot: 0,
                    spec,
                });
            }
            _ => return None,
        };
        // The scripts Keyway runs natively stay native on every route.
        if scripts::is_builtin_call(args) {
            return None;
        }
        let route = router.redis_target(positions.keys(args), access(spec))?;
        let forward = |hash_slot| {
            Some(Forward {
                route,
                hash_slot,
                spec,
            })
        };
        if !router.is_redis_cluster(route) {
            return forward(0);
        }
        let mut keys = positions.keys(args);
        let hash_slot = key_slot(keys.next()?);
        if keys.all(|key| key_slot(key) == hash_slot) {
            return forward(hash_slot);
        }
        // Keys in several hash slots. Keyway's own commands (MGET, MSET,
        // DEL, EXISTS, ...) then run as operations, split by slot; redis's
        // other commands and scripts go to the first key's node, which
        // answers redis's CROSSSLOT error.
        match spec.runs() {
            Some(Cmd::Scripts(ScriptCmd::Eval | ScriptCmd::EvalSha)) | None => forward(hash_slot),
            Some(_) => None,
        }
    }

    /// Sends whole commands (counted under `families`, one each) to the
    /// redis backend `route` names as they came, wrapped in MULTI ... EXEC
    /// when `transaction`; redis's replies as it sent them.
    pub(super) async fn forward_to(
        &self,
        route: RedisRoute,
        commands: Batch,
        families: impl IntoIterator<Item = Family>,
        transaction: bool,
    ) -> Result<Vec<Bytes>, RouteError> {
        let passage = self
            .shared
            .resp_router
            .redis_passage(route)
            .ok_or_else(|| {
                BackendError::Unsupported("internal: the route has no redis backend".into())
            })?;
        let send = passage
            .backend()
            .forward(self.version, self.db, commands, transaction);
        Ok(passage.call(families, send).await?)
    }

    /// Sends the batched forwarded commands and writes their replies.
    pub(super) async fn flush_forwarded(&mut self, batch: &mut Forwarding, out: &mut BytesMut) {
        let Some(route) = batch.route.take() else {
            return;
        };
        let specs = std::mem::take(&mut batch.specs);
        let commands = batch.commands.take();
        let families = specs.iter().map(|spec| spec.family);
        let replies = self.forward_to(route, commands, families, false).await;
        match replies {
            Ok(replies) => {
                for (spec, raw) in specs.iter().zip(&replies) {
                    client_view::write_reply(spec, raw, self.version, out);
                }
            }
            Err(error) => {
                let reply = Reply::from(error);
                for _ in &specs {
                    encode(&reply, self.version, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn keys(line: &str) -> Option<Vec<String>> {
        let args = args(line);
        match plan(&args) {
            Plan::Keys(positions, _) => Some(
                positions
                    .keys(&args)
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect(),
            ),
            _ => None,
        }
    }

    #[test]
    fn finds_the_keys_redis_would() {
        assert_eq!(keys("HSET h f v"), Some(vec!["h".into()]));
        assert_eq!(keys("MSET a 1 b 2"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(
            keys("mget a b c"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            keys("EVAL s 2 k1 k2 arg"),
            Some(vec!["k1".into(), "k2".into()])
        );
        assert_eq!(keys("EVAL s 0 arg"), None);
        assert_eq!(keys("EVAL s 5 k1"), None);
        assert_eq!(
            keys("ZUNIONSTORE d 2 a b WEIGHTS 1 2"),
            Some(vec!["d".into(), "a".into(), "b".into()])
        );
        assert_eq!(
            keys("BITOP AND d a b"),
            Some(vec!["d".into(), "a".into(), "b".into()])
        );
        assert_eq!(keys("PING"), None);
        assert_eq!(keys("KEYS *"), None);
        assert_eq!(keys("HGET"), None);
        assert!(matches!(plan(&args("BLPOP q 0")), Plan::Refuse(_)));
    }
}
