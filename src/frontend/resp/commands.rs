//! The RESP command table: names, arities (redis's convention: positive is
//! exact, negative is a minimum, both counting the name), key positions and
//! the module that runs each, used for dispatch, arity errors, MULTI queuing
//! and `COMMAND` replies. A command Keyway serves is named here once; its
//! module matches on the name to run it.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Which module of the frontend runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// strings.rs
    Strings,
    /// keys.rs
    Keys,
    /// scripts.rs
    Scripts,
    /// keyspace.rs: RENAME, COPY, MOVE, OBJECT where Keyway runs them
    Keyspace,
    /// MULTI, EXEC, DISCARD (mod.rs)
    Transaction,
    /// connection.rs: the connection commands, INFO, COMMAND, CLIENT
    Connection,
    /// server.rs: what tools ask a server about itself
    Server,
}

pub struct CommandSpec {
    pub name: &'static str,
    pub group: Group,
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
}

const fn spec(
    name: &'static str,
    group: Group,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
) -> CommandSpec {
    CommandSpec {
        name,
        group,
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

use Group::{Connection, Keys, Keyspace, Scripts, Server, Strings, Transaction};

pub static COMMANDS: &[CommandSpec] = &[
    spec("get", Strings, 2, R, ONE_KEY),
    spec("set", Strings, -3, W, ONE_KEY),
    spec("setnx", Strings, 3, W, ONE_KEY),
    spec("setex", Strings, 4, W, ONE_KEY),
    spec("psetex", Strings, 4, W, ONE_KEY),
    spec("getdel", Strings, 2, W, ONE_KEY),
    spec("getex", Strings, -2, W, ONE_KEY),
    spec("mget", Strings, -2, R, ALL_KEYS),
    spec("mset", Strings, -3, W, (1, -1, 2)),
    spec("msetnx", Strings, -3, W, (1, -1, 2)),
    spec("incr", Strings, 2, W, ONE_KEY),
    spec("decr", Strings, 2, W, ONE_KEY),
    spec("incrby", Strings, 3, W, ONE_KEY),
    spec("decrby", Strings, 3, W, ONE_KEY),
    spec("append", Strings, 3, W, ONE_KEY),
    spec("strlen", Strings, 2, R, ONE_KEY),
    spec("getset", Strings, 3, W, ONE_KEY),
    spec("getrange", Strings, 4, R, ONE_KEY),
    spec("setrange", Strings, 4, W, ONE_KEY),
    spec("del", Keys, -2, W, ALL_KEYS),
    spec("unlink", Keys, -2, W, ALL_KEYS),
    spec("exists", Keys, -2, R, ALL_KEYS),
    spec("touch", Keys, -2, R, ALL_KEYS),
    spec("expire", Keys, -3, W, ONE_KEY),
    spec("pexpire", Keys, -3, W, ONE_KEY),
    spec("expireat", Keys, -3, W, ONE_KEY),
    spec("pexpireat", Keys, -3, W, ONE_KEY),
    spec("ttl", Keys, 2, R, ONE_KEY),
    spec("pttl", Keys, 2, R, ONE_KEY),
    spec("persist", Keys, 2, W, ONE_KEY),
    spec("type", Keys, 2, R, ONE_KEY),
    spec("keys", Keys, 2, R, NO_KEYS),
    spec("scan", Keys, -2, R, NO_KEYS),
    spec("dbsize", Keys, 1, R, NO_KEYS),
    spec("flushdb", Keys, -1, W, NO_KEYS),
    spec("flushall", Keys, -1, W, NO_KEYS),
    spec("multi", Transaction, 1, F, NO_KEYS),
    spec("exec", Transaction, 1, F, NO_KEYS),
    spec("discard", Transaction, 1, F, NO_KEYS),
    spec("eval", Scripts, -3, &["noscript"], NO_KEYS),
    spec("evalsha", Scripts, -3, &["noscript"], NO_KEYS),
    spec("script", Scripts, -2, &["noscript"], NO_KEYS),
    spec("hello", Connection, -1, F, NO_KEYS),
    spec("auth", Connection, -2, F, NO_KEYS),
    spec("ping", Connection, -1, F, NO_KEYS),
    spec("echo", Connection, 2, F, NO_KEYS),
    spec("quit", Connection, -1, F, NO_KEYS),
    spec("select", Connection, 2, F, NO_KEYS),
    spec("client", Connection, -2, F, NO_KEYS),
    spec("command", Connection, -1, F, NO_KEYS),
    spec("info", Connection, -1, F, NO_KEYS),
    spec("time", Connection, 1, F, NO_KEYS),
    spec("rename", Keyspace, 3, W, (1, 2, 1)),
    spec("renamenx", Keyspace, 3, W, (1, 2, 1)),
    spec("copy", Keyspace, -3, W, (1, 2, 1)),
    spec("move", Keyspace, 3, W, ONE_KEY),
    spec("object", Keyspace, -2, R, (2, 2, 1)),
    spec("role", Server, 1, F, NO_KEYS),
    spec("lastsave", Server, 1, F, NO_KEYS),
    spec("memory", Keyspace, -2, R, (2, 2, 1)),
    spec("config", Server, -2, &["admin", "noscript"], NO_KEYS),
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
