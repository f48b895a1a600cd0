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
//! Commands that need a connection of their own (blocking pops, pub/sub,
//! WATCH, MONITOR) are refused with an error that says so: forwarded
//! commands share pipelined connections with other clients.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::commands::{lookup, CommandSpec};

/// Where a command's keys are.
#[derive(Clone, Copy)]
enum Keys {
    /// first, last (negative: from the end), step; as COMMAND reports them.
    Range(i32, i32, i32),
    /// A count at this argument, then that many keys right after it.
    Counted(usize),
    /// A destination key at 1, then a count at 2 and that many keys.
    DestinationAndCounted,
}

/// redis 7.0 commands Keyway does not implement itself, with where their
/// keys are. Forwarded when every key routes to one redis backend.
static FORWARDED: &[(&str, Keys)] = &[
    // strings and generic keyspace commands
    ("getset", Keys::Range(1, 1, 1)),
    ("getrange", Keys::Range(1, 1, 1)),
    ("setrange", Keys::Range(1, 1, 1)),
    ("incrbyfloat", Keys::Range(1, 1, 1)),
    ("lcs", Keys::Range(1, 2, 1)),
    ("touch", Keys::Range(1, -1, 1)),
    ("dump", Keys::Range(1, 1, 1)),
    ("restore", Keys::Range(1, 1, 1)),
    ("expiretime", Keys::Range(1, 1, 1)),
    ("pexpiretime", Keys::Range(1, 1, 1)),
    ("substr", Keys::Range(1, 1, 1)),
    // bitmaps and HyperLogLog
    ("setbit", Keys::Range(1, 1, 1)),
    ("getbit", Keys::Range(1, 1, 1)),
    ("bitcount", Keys::Range(1, 1, 1)),
    ("bitpos", Keys::Range(1, 1, 1)),
    ("bitfield", Keys::Range(1, 1, 1)),
    ("bitfield_ro", Keys::Range(1, 1, 1)),
    ("bitop", Keys::Range(2, -1, 1)),
    ("pfadd", Keys::Range(1, 1, 1)),
    ("pfcount", Keys::Range(1, -1, 1)),
    ("pfmerge", Keys::Range(1, -1, 1)),
    // hashes
    ("hset", Keys::Range(1, 1, 1)),
    ("hsetnx", Keys::Range(1, 1, 1)),
    ("hget", Keys::Range(1, 1, 1)),
    ("hmset", Keys::Range(1, 1, 1)),
    ("hmget", Keys::Range(1, 1, 1)),
    ("hdel", Keys::Range(1, 1, 1)),
    ("hlen", Keys::Range(1, 1, 1)),
    ("hstrlen", Keys::Range(1, 1, 1)),
    ("hexists", Keys::Range(1, 1, 1)),
    ("hincrby", Keys::Range(1, 1, 1)),
    ("hincrbyfloat", Keys::Range(1, 1, 1)),
    ("hkeys", Keys::Range(1, 1, 1)),
    ("hvals", Keys::Range(1, 1, 1)),
    ("hgetall", Keys::Range(1, 1, 1)),
    ("hrandfield", Keys::Range(1, 1, 1)),
    ("hscan", Keys::Range(1, 1, 1)),
    // lists (not the blocking ones)
    ("lpush", Keys::Range(1, 1, 1)),
    ("rpush", Keys::Range(1, 1, 1)),
    ("lpushx", Keys::Range(1, 1, 1)),
    ("rpushx", Keys::Range(1, 1, 1)),
    ("lpop", Keys::Range(1, 1, 1)),
    ("rpop", Keys::Range(1, 1, 1)),
    ("llen", Keys::Range(1, 1, 1)),
    ("lrange", Keys::Range(1, 1, 1)),
    ("lindex", Keys::Range(1, 1, 1)),
    ("lset", Keys::Range(1, 1, 1)),
    ("linsert", Keys::Range(1, 1, 1)),
    ("lrem", Keys::Range(1, 1, 1)),
    ("ltrim", Keys::Range(1, 1, 1)),
    ("lpos", Keys::Range(1, 1, 1)),
    ("lmove", Keys::Range(1, 2, 1)),
    ("rpoplpush", Keys::Range(1, 2, 1)),
    ("lmpop", Keys::Counted(1)),
    // sets
    ("sadd", Keys::Range(1, 1, 1)),
    ("srem", Keys::Range(1, 1, 1)),
    ("smembers", Keys::Range(1, 1, 1)),
    ("sismember", Keys::Range(1, 1, 1)),
    ("smismember", Keys::Range(1, 1, 1)),
    ("scard", Keys::Range(1, 1, 1)),
    ("spop", Keys::Range(1, 1, 1)),
    ("srandmember", Keys::Range(1, 1, 1)),
    ("smove", Keys::Range(1, 2, 1)),
    ("sinter", Keys::Range(1, -1, 1)),
    ("sunion", Keys::Range(1, -1, 1)),
    ("sdiff", Keys::Range(1, -1, 1)),
    ("sinterstore", Keys::Range(1, -1, 1)),
    ("sunionstore", Keys::Range(1, -1, 1)),
    ("sdiffstore", Keys::Range(1, -1, 1)),
    ("sintercard", Keys::Counted(1)),
    ("sscan", Keys::Range(1, 1, 1)),
    // sorted sets (not the blocking ones)
    ("zadd", Keys::Range(1, 1, 1)),
    ("zincrby", Keys::Range(1, 1, 1)),
    ("zrem", Keys::Range(1, 1, 1)),
    ("zcard", Keys::Range(1, 1, 1)),
    ("zcount", Keys::Range(1, 1, 1)),
    ("zlexcount", Keys::Range(1, 1, 1)),
    ("zscore", Keys::Range(1, 1, 1)),
    ("zmscore", Keys::Range(1, 1, 1)),
    ("zrank", Keys::Range(1, 1, 1)),
    ("zrevrank", Keys::Range(1, 1, 1)),
    ("zrange", Keys::Range(1, 1, 1)),
    ("zrangestore", Keys::Range(1, 2, 1)),
    ("zrevrange", Keys::Range(1, 1, 1)),
    ("zrangebyscore", Keys::Range(1, 1, 1)),
    ("zrevrangebyscore", Keys::Range(1, 1, 1)),
    ("zrangebylex", Keys::Range(1, 1, 1)),
    ("zrevrangebylex", Keys::Range(1, 1, 1)),
    ("zremrangebyscore", Keys::Range(1, 1, 1)),
    ("zremrangebyrank", Keys::Range(1, 1, 1)),
    ("zremrangebylex", Keys::Range(1, 1, 1)),
    ("zpopmin", Keys::Range(1, 1, 1)),
    ("zpopmax", Keys::Range(1, 1, 1)),
    ("zrandmember", Keys::Range(1, 1, 1)),
    ("zscan", Keys::Range(1, 1, 1)),
    ("zunion", Keys::Counted(1)),
    ("zinter", Keys::Counted(1)),
    ("zdiff", Keys::Counted(1)),
    ("zintercard", Keys::Counted(1)),
    ("zmpop", Keys::Counted(1)),
    ("zunionstore", Keys::DestinationAndCounted),
    ("zinterstore", Keys::DestinationAndCounted),
    ("zdiffstore", Keys::DestinationAndCounted),
    // streams (without blocking reads)
    ("xadd", Keys::Range(1, 1, 1)),
    ("xlen", Keys::Range(1, 1, 1)),
    ("xrange", Keys::Range(1, 1, 1)),
    ("xrevrange", Keys::Range(1, 1, 1)),
    ("xdel", Keys::Range(1, 1, 1)),
    ("xtrim", Keys::Range(1, 1, 1)),
    ("xack", Keys::Range(1, 1, 1)),
    ("xclaim", Keys::Range(1, 1, 1)),
    ("xautoclaim", Keys::Range(1, 1, 1)),
    ("xpending", Keys::Range(1, 1, 1)),
    ("xsetid", Keys::Range(1, 1, 1)),
    ("xgroup", Keys::Range(2, 2, 1)),
    ("xinfo", Keys::Range(2, 2, 1)),
    // geo
    ("geoadd", Keys::Range(1, 1, 1)),
    ("geodist", Keys::Range(1, 1, 1)),
    ("geohash", Keys::Range(1, 1, 1)),
    ("geopos", Keys::Range(1, 1, 1)),
    ("geosearch", Keys::Range(1, 1, 1)),
    ("geosearchstore", Keys::Range(1, 2, 1)),
    ("georadius_ro", Keys::Range(1, 1, 1)),
    ("georadiusbymember_ro", Keys::Range(1, 1, 1)),
    // scripting and functions
    ("eval_ro", Keys::Counted(2)),
    ("evalsha_ro", Keys::Counted(2)),
    ("fcall", Keys::Counted(2)),
    ("fcall_ro", Keys::Counted(2)),
];

/// Commands that need a connection to themselves.
static REFUSED: &[&str] = &[
    "blpop",
    "brpop",
    "blmove",
    "brpoplpush",
    "blmpop",
    "bzpopmin",
    "bzpopmax",
    "bzmpop",
    "xread",
    "xreadgroup",
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "watch",
    "unwatch",
    "monitor",
    "wait",
];

/// Keyway commands with keys that are forwarded on redis routes: every
/// keyed command Keyway implements. EVAL/EVALSHA are forwarded unless the
/// script is one Keyway runs natively (decided by the caller).
fn keyway_keys(spec: &CommandSpec) -> Option<Keys> {
    match spec.name {
        "eval" | "evalsha" => Some(Keys::Counted(2)),
        // Its database number is the client's, which a redis route may
        // map to another: always run by Keyway.
        "move" => None,
        _ if spec.first_key > 0 => Some(Keys::Range(spec.first_key, spec.last_key, spec.step)),
        _ => None,
    }
}

fn lower(name: &[u8]) -> Option<String> {
    (name.len() <= 32).then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// How Keyway treats a command it may forward.
pub enum Plan {
    /// Forward it if all the keys at these positions route to one redis backend.
    Keys(KeyPositions),
    /// It cannot work through Keyway; this is the error.
    Refuse(Reply),
    /// Keyway handles it (or it is unknown).
    Local,
}

/// Where `args`' keys are, for a command Keyway might forward.
pub fn plan(args: &[Bytes]) -> Plan {
    let (keys, ours) = match lookup(&args[0]) {
        Some(spec) => (keyway_keys(spec), true),
        None => {
            let Some(name) = lower(&args[0]) else {
                return Plan::Local;
            };
            if REFUSED.contains(&name.as_str()) {
                return Plan::Refuse(Reply::error(format!(
                    "ERR '{}' is not available through Keyway: it needs a redis connection of its own \
                     (blocking, pub/sub, WATCH, MONITOR); connect to redis directly for it",
                    name.to_ascii_uppercase()
                )));
            }
            let keys = FORWARDED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, keys)| *keys);
            (keys, false)
        }
    };
    let Some(keys) = keys else {
        return Plan::Local;
    };
    match key_positions(keys, args) {
        Some(found) => Plan::Keys(found),
        // The bare command name: redis's arity error (Keyway's own commands
        // get it from Keyway's arity check).
        None if !ours && args.len() == 1 => Plan::Refuse(Reply::error(format!(
            "ERR wrong number of arguments for '{}' command",
            String::from_utf8_lossy(&args[0]).to_ascii_lowercase()
        ))),
        None => Plan::Local,
    }
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
fn key_positions(keys: Keys, args: &[Bytes]) -> Option<KeyPositions> {
    let counted = |at: usize| -> Option<(usize, usize)> {
        let count: usize = std::str::from_utf8(args.get(at)?).ok()?.parse().ok()?;
        let end = at.checked_add(1)?.checked_add(count)?;
        (count > 0 && end <= args.len()).then_some((at + 1, end - 1))
    };
    let positions = match keys {
        Keys::Range(first, last, step) => {
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
        Keys::Counted(at) => {
            let (first, last) = counted(at)?;
            KeyPositions {
                destination: None,
                first,
                last,
                step: 1,
            }
        }
        Keys::DestinationAndCounted => {
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
            Plan::Keys(positions) => Some(
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
