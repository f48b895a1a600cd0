//! The RESP command table: every command Keyway knows, named once, with its
//! arity (redis's convention: positive is exact, negative a minimum, both
//! counting the name), where its keys are, the family its figures are
//! counted under, and what Keyway does with it: runs it ([`Cmd`], which the
//! frontend dispatches on without matching names again), forwards it to the
//! redis route that owns its keys, or refuses it and why. Used for
//! dispatch, arity errors, forwarding, MULTI queuing, permissions' key
//! checks and `COMMAND` replies.

use std::collections::HashMap;
use std::sync::LazyLock;

pub use super::cmd::*;
pub use super::forward::KeySpec;
use crate::op::Family;

/// What Keyway does with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Does {
    /// Keyway runs it (and forwards it as it came when a redis route owns
    /// every key it names).
    Serve(Cmd),
    /// redis runs it: forwarded when every key routes to one redis backend.
    Forward,
    /// Refused, for the reason it names.
    Refuse(Why),
}

/// Why Keyway refuses a command redis has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It needs a redis connection of its own (blocking, pub/sub, WATCH,
    /// MONITOR), which forwarded commands, sharing pipelined connections,
    /// do not have.
    OwnConnection,
    /// It administers the redis server itself (saving, replication,
    /// modules, shutdown): not a proxy client's to send.
    Administers,
    /// ACL: Keyway's users and permissions live in its configuration file.
    Users,
}

pub struct CommandSpec {
    pub name: &'static str,
    /// 0 for a command Keyway only forwards or refuses: redis checks it.
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub keys: KeySpec,
    pub family: Family,
    pub does: Does,
}

impl CommandSpec {
    /// What Keyway runs for it, if it runs it.
    pub fn runs(&self) -> Option<Cmd> {
        match self.does {
            Does::Serve(cmd) => Some(cmd),
            Does::Forward | Does::Refuse(_) => None,
        }
    }

    /// `COMMAND`'s first key, last key and step.
    pub fn key_range(&self) -> (i32, i32, i32) {
        match self.keys {
            KeySpec::Range(first, last, step) => (first, last, step),
            KeySpec::KeyAndStore => (1, 1, 1),
            KeySpec::None
            | KeySpec::Counted(_)
            | KeySpec::DestinationAndCounted
            | KeySpec::Streams => (0, 0, 0),
        }
    }
}

const fn serve(
    name: &'static str,
    cmd: Cmd,
    arity: i32,
    flags: &'static [&'static str],
    keys: KeySpec,
    family: Family,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys,
        family,
        does: Does::Serve(cmd),
    }
}

const fn forward(name: &'static str, keys: KeySpec) -> CommandSpec {
    CommandSpec {
        name,
        arity: 0,
        flags: &[],
        keys,
        family: Family::Other,
        does: Does::Forward,
    }
}

const fn refuse(name: &'static str) -> CommandSpec {
    refuse_because(name, Why::OwnConnection)
}

const fn refuse_because(name: &'static str, why: Why) -> CommandSpec {
    CommandSpec {
        name,
        arity: 0,
        flags: &[],
        keys: KeySpec::None,
        family: Family::Other,
        does: Does::Refuse(why),
    }
}

const W: &[&str] = &["write"];
const R: &[&str] = &["readonly"];
const F: &[&str] = &["fast"];
const ONE_KEY: KeySpec = KeySpec::Range(1, 1, 1);
const ALL_KEYS: KeySpec = KeySpec::Range(1, -1, 1);

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    serve("get", Cmd::Strings(StringCmd::Get), 2, R, ONE_KEY, Family::Get),
    serve("set", Cmd::Strings(StringCmd::Set), -3, W, ONE_KEY, Family::Set),
    serve("setnx", Cmd::Strings(StringCmd::SetNx), 3, W, ONE_KEY, Family::Set),
    serve("setex", Cmd::Strings(StringCmd::SetEx), 4, W, ONE_KEY, Family::Set),
    serve("psetex", Cmd::Strings(StringCmd::PSetEx), 4, W, ONE_KEY, Family::Set),
    serve("getdel", Cmd::Strings(StringCmd::GetDel), 2, W, ONE_KEY, Family::Get),
    serve("getex", Cmd::Strings(StringCmd::GetEx), -2, W, ONE_KEY, Family::Get),
    serve("mget", Cmd::Strings(StringCmd::MGet), -2, R, ALL_KEYS, Family::Get),
    serve("mset", Cmd::Strings(StringCmd::MSet), -3, W, KeySpec::Range(1, -1, 2), Family::Set),
    serve("msetnx", Cmd::Strings(StringCmd::MSetNx), -3, W, KeySpec::Range(1, -1, 2), Family::Set),
    serve("incr", Cmd::Strings(StringCmd::Incr), 2, W, ONE_KEY, Family::Arith),
    serve("decr", Cmd::Strings(StringCmd::Decr), 2, W, ONE_KEY, Family::Arith),
    serve("incrby", Cmd::Strings(StringCmd::IncrBy), 3, W, ONE_KEY, Family::Arith),
    serve("decrby", Cmd::Strings(StringCmd::DecrBy), 3, W, ONE_KEY, Family::Arith),
    serve("append", Cmd::Strings(StringCmd::Append), 3, W, ONE_KEY, Family::Set),
    serve("strlen", Cmd::Strings(StringCmd::StrLen), 2, R, ONE_KEY, Family::Other),
    serve("getset", Cmd::Strings(StringCmd::GetSet), 3, W, ONE_KEY, Family::Set),
    serve("getrange", Cmd::Strings(StringCmd::GetRange), 4, R, ONE_KEY, Family::Other),
    serve("setrange", Cmd::Strings(StringCmd::SetRange), 4, W, ONE_KEY, Family::Other),
    serve("del", Cmd::Keys(KeyCmd::Del), -2, W, ALL_KEYS, Family::Delete),
    serve("unlink", Cmd::Keys(KeyCmd::Unlink), -2, W, ALL_KEYS, Family::Delete),
    serve("exists", Cmd::Keys(KeyCmd::Exists), -2, R, ALL_KEYS, Family::Other),
    serve("touch", Cmd::Keys(KeyCmd::Touch), -2, R, ALL_KEYS, Family::Touch),
    serve("expire", Cmd::Keys(KeyCmd::Expire), -3, W, ONE_KEY, Family::Touch),
    serve("pexpire", Cmd::Keys(KeyCmd::PExpire), -3, W, ONE_KEY, Family::Touch),
    serve("expireat", Cmd::Keys(KeyCmd::ExpireAt), -3, W, ONE_KEY, Family::Touch),
    serve("pexpireat", Cmd::Keys(KeyCmd::PExpireAt), -3, W, ONE_KEY, Family::Touch),
    serve("ttl", Cmd::Keys(KeyCmd::Ttl), 2, R, ONE_KEY, Family::Touch),
    serve("pttl", Cmd::Keys(KeyCmd::PTtl), 2, R, ONE_KEY, Family::Touch),
    serve("persist", Cmd::Keys(KeyCmd::Persist), 2, W, ONE_KEY, Family::Touch),
    serve("type", Cmd::Keys(KeyCmd::Type), 2, R, ONE_KEY, Family::Other),
    serve("keys", Cmd::Keys(KeyCmd::Keys), 2, R, KeySpec::None, Family::Other),
    serve("scan", Cmd::Keys(KeyCmd::Scan), -2, R, KeySpec::None, Family::Other),
    serve("dbsize", Cmd::Keys(KeyCmd::DbSize), 1, R, KeySpec::None, Family::Other),
    serve("flushdb", Cmd::Keys(KeyCmd::FlushDb), -1, W, KeySpec::None, Family::Other),
    serve("flushall", Cmd::Keys(KeyCmd::FlushAll), -1, W, KeySpec::None, Family::Other),
    serve("multi", Cmd::Transaction(TxCmd::Multi), 1, F, KeySpec::None, Family::Other),
    serve("exec", Cmd::Transaction(TxCmd::Exec), 1, F, KeySpec::None, Family::Other),
    serve("discard", Cmd::Transaction(TxCmd::Discard), 1, F, KeySpec::None, Family::Other),
    serve("eval", Cmd::Scripts(ScriptCmd::Eval), -3, &["noscript"], KeySpec::Counted(2), Family::Other),
    serve("evalsha", Cmd::Scripts(ScriptCmd::EvalSha), -3, &["noscript"], KeySpec::Counted(2), Family::Other),
    serve("script", Cmd::Scripts(ScriptCmd::Script), -2, &["noscript"], KeySpec::None, Family::Other),
    serve("hello", Cmd::Connection(ConnCmd::Hello), -1, F, KeySpec::None, Family::Other),
    serve("auth", Cmd::Connection(ConnCmd::Auth), -2, F, KeySpec::None, Family::Other),
    serve("ping", Cmd::Connection(ConnCmd::Ping), -1, F, KeySpec::None, Family::Other),
    serve("echo", Cmd::Connection(ConnCmd::Echo), 2, F, KeySpec::None, Family::Other),
    serve("quit", Cmd::Connection(ConnCmd::Quit), -1, F, KeySpec::None, Family::Other),
    serve("reset", Cmd::Connection(ConnCmd::Reset), 1, F, KeySpec::None, Family::Other),
    serve("select", Cmd::Connection(ConnCmd::Select), 2, F, KeySpec::None, Family::Other),
    serve("client", Cmd::Connection(ConnCmd::Client), -2, F, KeySpec::None, Family::Other),
    serve("command", Cmd::Connection(ConnCmd::Command), -1, F, KeySpec::None, Family::Other),
    serve("info", Cmd::Connection(ConnCmd::Info), -1, F, KeySpec::None, Family::Other),
    serve("time", Cmd::Connection(ConnCmd::Time), 1, F, KeySpec::None, Family::Other),
    serve("rename", Cmd::Items(ItemCmd::Rename), 3, W, KeySpec::Range(1, 2, 1), Family::Other),
    serve("renamenx", Cmd::Items(ItemCmd::RenameNx), 3, W, KeySpec::Range(1, 2, 1), Family::Other),
    serve("copy", Cmd::Items(ItemCmd::Copy), -3, W, KeySpec::Range(1, 2, 1), Family::Other),
    serve("move", Cmd::Items(ItemCmd::Move), 3, W, ONE_KEY, Family::Other),
    serve("object", Cmd::Items(ItemCmd::Object), -2, R, KeySpec::Range(2, 2, 1), Family::Other),
    serve("role", Cmd::Server(ServerCmd::Role), 1, F, KeySpec::None, Family::Other),
    serve("lastsave", Cmd::Server(ServerCmd::LastSave), 1, F, KeySpec::None, Family::Other),
    serve("memory", Cmd::Items(ItemCmd::Memory), -2, R, KeySpec::Range(2, 2, 1), Family::Other),
    serve("config", Cmd::Server(ServerCmd::Config), -2, &["admin", "noscript"], KeySpec::None, Family::Other),
    // redis 7.0 commands Keyway does not run itself: forwarded when every key
    // routes to one redis backend.
    forward("incrbyfloat", KeySpec::Range(1, 1, 1)),
    forward("lcs", KeySpec::Range(1, 2, 1)),
    forward("dump", KeySpec::Range(1, 1, 1)),
    forward("restore", KeySpec::Range(1, 1, 1)),
    forward("expiretime", KeySpec::Range(1, 1, 1)),
    forward("pexpiretime", KeySpec::Range(1, 1, 1)),
    // redis's old name for GETRANGE.
    serve("substr", Cmd::Strings(StringCmd::GetRange), 4, R, ONE_KEY, Family::Other),
    forward("setbit", KeySpec::Range(1, 1, 1)),
    forward("getbit", KeySpec::Range(1, 1, 1)),
    forward("bitcount", KeySpec::Range(1, 1, 1)),
    forward("bitpos", KeySpec::Range(1, 1, 1)),
    forward("bitfield", KeySpec::Range(1, 1, 1)),
    forward("bitfield_ro", KeySpec::Range(1, 1, 1)),
    forward("bitop", KeySpec::Range(2, -1, 1)),
    forward("pfadd", KeySpec::Range(1, 1, 1)),
    forward("pfcount", KeySpec::Range(1, -1, 1)),
    forward("pfmerge", KeySpec::Range(1, -1, 1)),
    forward("hset", KeySpec::Range(1, 1, 1)),
    forward("hsetnx", KeySpec::Range(1, 1, 1)),
    forward("hget", KeySpec::Range(1, 1, 1)),
    forward("hmset", KeySpec::Range(1, 1, 1)),
    forward("hmget", KeySpec::Range(1, 1, 1)),
    forward("hdel", KeySpec::Range(1, 1, 1)),
    forward("hlen", KeySpec::Range(1, 1, 1)),
    forward("hstrlen", KeySpec::Range(1, 1, 1)),
    forward("hexists", KeySpec::Range(1, 1, 1)),
    forward("hincrby", KeySpec::Range(1, 1, 1)),
    forward("hincrbyfloat", KeySpec::Range(1, 1, 1)),
    forward("hkeys", KeySpec::Range(1, 1, 1)),
    forward("hvals", KeySpec::Range(1, 1, 1)),
    forward("hgetall", KeySpec::Range(1, 1, 1)),
    forward("hrandfield", KeySpec::Range(1, 1, 1)),
    forward("hscan", KeySpec::Range(1, 1, 1)),
    forward("lpush", KeySpec::Range(1, 1, 1)),
    forward("rpush", KeySpec::Range(1, 1, 1)),
    forward("lpushx", KeySpec::Range(1, 1, 1)),
    forward("rpushx", KeySpec::Range(1, 1, 1)),
    forward("lpop", KeySpec::Range(1, 1, 1)),
    forward("rpop", KeySpec::Range(1, 1, 1)),
    forward("llen", KeySpec::Range(1, 1, 1)),
    forward("lrange", KeySpec::Range(1, 1, 1)),
    forward("lindex", KeySpec::Range(1, 1, 1)),
    forward("lset", KeySpec::Range(1, 1, 1)),
    forward("linsert", KeySpec::Range(1, 1, 1)),
    forward("lrem", KeySpec::Range(1, 1, 1)),
    forward("ltrim", KeySpec::Range(1, 1, 1)),
    forward("lpos", KeySpec::Range(1, 1, 1)),
    forward("lmove", KeySpec::Range(1, 2, 1)),
    forward("rpoplpush", KeySpec::Range(1, 2, 1)),
    forward("lmpop", KeySpec::Counted(1)),
    forward("sadd", KeySpec::Range(1, 1, 1)),
    forward("srem", KeySpec::Range(1, 1, 1)),
    forward("smembers", KeySpec::Range(1, 1, 1)),
    forward("sismember", KeySpec::Range(1, 1, 1)),
    forward("smismember", KeySpec::Range(1, 1, 1)),
    forward("scard", KeySpec::Range(1, 1, 1)),
    forward("spop", KeySpec::Range(1, 1, 1)),
    forward("srandmember", KeySpec::Range(1, 1, 1)),
    forward("smove", KeySpec::Range(1, 2, 1)),
    forward("sinter", KeySpec::Range(1, -1, 1)),
    forward("sunion", KeySpec::Range(1, -1, 1)),
    forward("sdiff", KeySpec::Range(1, -1, 1)),
    forward("sinterstore", KeySpec::Range(1, -1, 1)),
    forward("sunionstore", KeySpec::Range(1, -1, 1)),
    forward("sdiffstore", KeySpec::Range(1, -1, 1)),
    forward("sintercard", KeySpec::Counted(1)),
    forward("sscan", KeySpec::Range(1, 1, 1)),
    forward("zadd", KeySpec::Range(1, 1, 1)),
    forward("zincrby", KeySpec::Range(1, 1, 1)),
    forward("zrem", KeySpec::Range(1, 1, 1)),
    forward("zcard", KeySpec::Range(1, 1, 1)),
    forward("zcount", KeySpec::Range(1, 1, 1)),
    forward("zlexcount", KeySpec::Range(1, 1, 1)),
    forward("zscore", KeySpec::Range(1, 1, 1)),
    forward("zmscore", KeySpec::Range(1, 1, 1)),
    forward("zrank", KeySpec::Range(1, 1, 1)),
    forward("zrevrank", KeySpec::Range(1, 1, 1)),
    forward("zrange", KeySpec::Range(1, 1, 1)),
    forward("zrangestore", KeySpec::Range(1, 2, 1)),
    forward("zrevrange", KeySpec::Range(1, 1, 1)),
    forward("zrangebyscore", KeySpec::Range(1, 1, 1)),
    forward("zrevrangebyscore", KeySpec::Range(1, 1, 1)),
    forward("zrangebylex", KeySpec::Range(1, 1, 1)),
    forward("zrevrangebylex", KeySpec::Range(1, 1, 1)),
    forward("zremrangebyscore", KeySpec::Range(1, 1, 1)),
    forward("zremrangebyrank", KeySpec::Range(1, 1, 1)),
    forward("zremrangebylex", KeySpec::Range(1, 1, 1)),
    forward("zpopmin", KeySpec::Range(1, 1, 1)),
    forward("zpopmax", KeySpec::Range(1, 1, 1)),
    forward("zrandmember", KeySpec::Range(1, 1, 1)),
    forward("zscan", KeySpec::Range(1, 1, 1)),
    forward("zunion", KeySpec::Counted(1)),
    forward("zinter", KeySpec::Counted(1)),
    forward("zdiff", KeySpec::Counted(1)),
    forward("zintercard", KeySpec::Counted(1)),
    forward("zmpop", KeySpec::Counted(1)),
    forward("zunionstore", KeySpec::DestinationAndCounted),
    forward("zinterstore", KeySpec::DestinationAndCounted),
    forward("zdiffstore", KeySpec::DestinationAndCounted),
    forward("xadd", KeySpec::Range(1, 1, 1)),
    forward("xlen", KeySpec::Range(1, 1, 1)),
    forward("xrange", KeySpec::Range(1, 1, 1)),
    forward("xrevrange", KeySpec::Range(1, 1, 1)),
    forward("xdel", KeySpec::Range(1, 1, 1)),
    forward("xtrim", KeySpec::Range(1, 1, 1)),
    forward("xack", KeySpec::Range(1, 1, 1)),
    forward("xclaim", KeySpec::Range(1, 1, 1)),
    forward("xautoclaim", KeySpec::Range(1, 1, 1)),
    forward("xpending", KeySpec::Range(1, 1, 1)),
    forward("xsetid", KeySpec::Range(1, 1, 1)),
    forward("xgroup", KeySpec::Range(2, 2, 1)),
    forward("xinfo", KeySpec::Range(2, 2, 1)),
    forward("geoadd", KeySpec::Range(1, 1, 1)),
    forward("geodist", KeySpec::Range(1, 1, 1)),
    forward("geohash", KeySpec::Range(1, 1, 1)),
    forward("geopos", KeySpec::Range(1, 1, 1)),
    forward("geosearch", KeySpec::Range(1, 1, 1)),
    forward("geosearchstore", KeySpec::Range(1, 2, 1)),
    forward("georadius_ro", KeySpec::Range(1, 1, 1)),
    forward("georadiusbymember_ro", KeySpec::Range(1, 1, 1)),
    forward("eval_ro", KeySpec::Counted(2)),
    forward("evalsha_ro", KeySpec::Counted(2)),
    forward("fcall", KeySpec::Counted(2)),
    forward("fcall_ro", KeySpec::Counted(2)),
    // Refused with BLOCK, which needs a redis connection of its own.
    forward("xread", KeySpec::Streams),
    forward("xreadgroup", KeySpec::Streams),
    forward("sort", KeySpec::KeyAndStore),
    forward("sort_ro", KeySpec::KeyAndStore),
    forward("georadius", KeySpec::KeyAndStore),
    forward("georadiusbymember", KeySpec::KeyAndStore),
    // Keyless: forwarded where every route goes to one redis backend.
    forward("randomkey", KeySpec::None),
    forward("latency", KeySpec::None),
    forward("slowlog", KeySpec::None),
    forward("lolwut", KeySpec::None),
    forward("function", KeySpec::None),
    forward("pfselftest", KeySpec::None),
    forward("pfdebug", KeySpec::Range(2, 2, 1)),
    // Channels, not keys: forwarded to the one redis server the routes
    // reach (`Router::redis_for_channels`), where SUBSCRIBE listens.
    forward("publish", KeySpec::None),
    forward("spublish", KeySpec::None),
    forward("pubsub", KeySpec::None),
    // A Redis Cluster's own: Keyway is not one (it routes to clusters).
    refuse_because("cluster", Why::Administers),
    refuse_because("readonly", Why::Administers),
    refuse_because("readwrite", Why::Administers),
    refuse_because("asking", Why::Administers),
    refuse_because("restore-asking", Why::Administers),
    refuse_because("migrate", Why::Administers),
    refuse_because("replconf", Why::Administers),
    refuse_because("swapdb", Why::Administers),
    // Commands that administer the redis server, and its users.
    refuse_because("acl", Why::Users),
    refuse_because("bgsave", Why::Administers),
    refuse_because("bgrewriteaof", Why::Administers),
    refuse_because("save", Why::Administers),
    refuse_because("shutdown", Why::Administers),
    refuse_because("replicaof", Why::Administers),
    refuse_because("slaveof", Why::Administers),
    refuse_because("failover", Why::Administers),
    refuse_because("module", Why::Administers),
    refuse_because("debug", Why::Administers),
    refuse_because("sync", Why::Administers),
    refuse_because("psync", Why::Administers),
    // Commands that need a redis connection of their own.
    refuse("blpop"),
    refuse("brpop"),
    refuse("blmove"),
    refuse("brpoplpush"),
    refuse("blmpop"),
    refuse("bzpopmin"),
    refuse("bzpopmax"),
    refuse("bzmpop"),
    refuse("subscribe"),
    refuse("psubscribe"),
    refuse("ssubscribe"),
    refuse("unsubscribe"),
    refuse("punsubscribe"),
    refuse("sunsubscribe"),
    refuse("watch"),
    refuse("unwatch"),
    refuse("monitor"),
    refuse("wait"),
];

/// Asked for every command (and again for a forwarded one's figures and
/// reply): ahash, not SipHash.
static BY_NAME: LazyLock<HashMap<&'static [u8], &'static CommandSpec, ahash::RandomState>> =
    LazyLock::new(|| COMMANDS.iter().map(|c| (c.name.as_bytes(), c)).collect());

/// Finds any command of the table by name, case-insensitively, without
/// allocating.
pub fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..name.len())?;
    for (dst, src) in lower.iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    BY_NAME.get(&*lower).copied()
}

/// Finds a command Keyway runs itself.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    find(name).filter(|spec| spec.runs().is_some())
}

/// The commands Keyway runs itself, in table order (`COMMAND`).
pub fn served() -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS.iter().filter(|spec| spec.runs().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"GeT").map(|c| c.name), Some("get"));
        assert!(lookup(b"hset").is_none());
        assert_eq!(find(b"HSET").map(|c| c.does), Some(Does::Forward));
        assert_eq!(
            find(b"blpop").map(|c| c.does),
            Some(Does::Refuse(Why::OwnConnection))
        );
        assert!(lookup(b"averyveryverylongcommandnamethatisover32").is_none());
    }

    #[test]
    fn every_command_is_named_once() {
        let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a command is in the table twice");
        assert!(COMMANDS
            .iter()
            .all(|c| c.name.len() <= 32 && c.name == c.name.to_lowercase()));
    }
}
