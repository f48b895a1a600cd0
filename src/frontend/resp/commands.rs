//! The RESP command table: names, arities (redis's convention: positive is
//! exact, negative is a minimum, both counting the name) and key positions,
//! used for arity errors, MULTI queuing and `COMMAND` replies.

use std::collections::HashMap;
use std::sync::LazyLock;

pub struct CommandSpec {
    pub name: &'static str,
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
}

const fn spec(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
    }
}

const W: &[&str] = &["write"];
const R: &[&str] = &["readonly"];
const F: &[&str] = &["fast"];
const NO_KEYS: (i32, i32, i32) = (0, 0, 0);
const ONE_KEY: (i32, i32, i32) = (1, 1, 1);
const ALL_KEYS: (i32, i32, i32) = (1, -1, 1);

pub static COMMANDS: &[CommandSpec] = &[
    spec("get", 2, R, ONE_KEY),
    spec("set", -3, W, ONE_KEY),
    spec("setnx", 3, W, ONE_KEY),
    spec("setex", 4, W, ONE_KEY),
    spec("psetex", 4, W, ONE_KEY),
    spec("getdel", 2, W, ONE_KEY),
    spec("getex", -2, W, ONE_KEY),
    spec("mget", -2, R, ALL_KEYS),
    spec("mset", -3, W, (1, -1, 2)),
    spec("msetnx", -3, W, (1, -1, 2)),
    spec("incr", 2, W, ONE_KEY),
    spec("decr", 2, W, ONE_KEY),
    spec("incrby", 3, W, ONE_KEY),
    spec("decrby", 3, W, ONE_KEY),
    spec("append", 3, W, ONE_KEY),
    spec("strlen", 2, R, ONE_KEY),
    spec("del", -2, W, ALL_KEYS),
    spec("unlink", -2, W, ALL_KEYS),
    spec("exists", -2, R, ALL_KEYS),
    spec("expire", -3, W, ONE_KEY),
    spec("pexpire", -3, W, ONE_KEY),
    spec("expireat", -3, W, ONE_KEY),
    spec("pexpireat", -3, W, ONE_KEY),
    spec("ttl", 2, R, ONE_KEY),
    spec("pttl", 2, R, ONE_KEY),
    spec("persist", 2, W, ONE_KEY),
    spec("type", 2, R, ONE_KEY),
    spec("keys", 2, R, NO_KEYS),
    spec("scan", -2, R, NO_KEYS),
    spec("dbsize", 1, R, NO_KEYS),
    spec("flushdb", -1, W, NO_KEYS),
    spec("flushall", -1, W, NO_KEYS),
    spec("multi", 1, F, NO_KEYS),
    spec("exec", 1, F, NO_KEYS),
    spec("discard", 1, F, NO_KEYS),
    spec("eval", -3, &["noscript"], NO_KEYS),
    spec("evalsha", -3, &["noscript"], NO_KEYS),
    spec("script", -2, &["noscript"], NO_KEYS),
    spec("hello", -1, F, NO_KEYS),
    spec("auth", -2, F, NO_KEYS),
    spec("ping", -1, F, NO_KEYS),
    spec("echo", 2, F, NO_KEYS),
    spec("quit", -1, F, NO_KEYS),
    spec("select", 2, F, NO_KEYS),
    spec("client", -2, F, NO_KEYS),
    spec("command", -1, F, NO_KEYS),
    spec("info", -1, F, NO_KEYS),
    spec("time", 1, F, NO_KEYS),
];

static BY_NAME: LazyLock<HashMap<&'static [u8], &'static CommandSpec>> =
    LazyLock::new(|| COMMANDS.iter().map(|c| (c.name.as_bytes(), c)).collect());

/// Finds a command by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut lower = [0u8; 16];
    let lower = lower.get_mut(..name.len())?;
    for (dst, src) in lower.iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    BY_NAME.get(&*lower).copied()
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"GeT").map(|c| c.name), Some("get"));
        assert!(lookup(b"hset").is_none());
        assert!(lookup(b"averyveryverylongcommandname").is_none());
    }
}
