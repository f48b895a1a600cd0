//! EVAL/EVALSHA/SCRIPT for the Lua scripts real clients send, run natively.
//!
//! Keyway embeds no Lua interpreter. django-redis's incr/decr and redis-py's
//! lock release/extend/reacquire send fixed scripts; they are recognised by
//! their SHA1 (computed here from their exact text) and executed as the
//! equivalent operations. Any other script is refused with an error that says
//! how to run it (route its keys to a real redis backend).

use std::sync::LazyLock;

use bytes::Bytes;
use keyway_protocol::resp::{Reply, Version};
use sha1::{Digest, Sha1};

use super::commands::ScriptCmd;
use super::{parse_i64, CmdResult, RespSession};
use crate::op::{Arith, ArithOutcome, ExpireCondition, Expiry, Ttl};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    /// django-redis incr/decr: INCRBY only if the key exists, else false.
    IncrByIfExists,
    /// django-redis incr with ignore_key_check=True.
    IncrBy,
    /// redis-py Lock.release: delete if the token matches.
    LockRelease,
    /// redis-py Lock.extend: add to (or replace) the TTL if the token matches.
    LockExtend,
    /// redis-py Lock.reacquire: reset the TTL if the token matches.
    LockReacquire,
}

/// Exact texts as django-redis 7 and redis-py 5..8 send them.
const KNOWN: &[(Script, &str)] = &[
    (
        Script::IncrByIfExists,
        "\n                    local exists = redis.call('EXISTS', KEYS[1])\n                    if (exists == 1) then\n                        return redis.call('INCRBY', KEYS[1], ARGV[1])\n                    else return false end\n                    ",
    ),
    (Script::IncrBy, "\n                    return redis.call('INCRBY', KEYS[1], ARGV[1])\n                    "),
    (
        Script::LockRelease,
        "\n        local token = redis.call('get', KEYS[1])\n        if not token or token ~= ARGV[1] then\n            return 0\n        end\n        redis.call('del', KEYS[1])\n        return 1\n    ",
    ),
    (
        Script::LockExtend,
        "\n        local token = redis.call('get', KEYS[1])\n        if not token or token ~= ARGV[1] then\n            return 0\n        end\n        local expiration = redis.call('pttl', KEYS[1])\n        if not expiration then\n            expiration = 0\n        end\n        if expiration < 0 then\n            return 0\n        end\n\n        local newttl = ARGV[2]\n        if ARGV[3] == \"0\" then\n            newttl = ARGV[2] + expiration\n        end\n        redis.call('pexpire', KEYS[1], newttl)\n        return 1\n    ",
    ),
    (
        Script::LockReacquire,
        "\n        local token = redis.call('get', KEYS[1])\n        if not token or token ~= ARGV[1] then\n            return 0\n        end\n        redis.call('pexpire', KEYS[1], ARGV[2])\n        return 1\n    ",
    ),
];

static BY_SHA: LazyLock<Vec<(String, Script)>> = LazyLock::new(|| {
    KNOWN
        .iter()
        .map(|(script, text)| (sha1_hex(text.as_bytes()), *script))
        .collect()
});

fn sha1_hex(text: &[u8]) -> String {
    hex::encode(Sha1::digest(text))
}

fn find(sha: &[u8]) -> Option<Script> {
    let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
    BY_SHA
        .iter()
        .find(|(known, _)| *known == sha)
        .map(|(_, script)| *script)
}

/// Whether `args` is an EVAL/EVALSHA of a script Keyway runs natively.
pub(super) fn is_builtin_call(args: &[Bytes]) -> bool {
    let Some(script) = args.get(1) else {
        return false;
    };
    if args[0].eq_ignore_ascii_case(b"eval") {
        find(sha1_hex(script).as_bytes()).is_some()
    } else if args[0].eq_ignore_ascii_case(b"evalsha") {
        find(script).is_some()
    } else {
        false
    }
}

/// A script Keyway does not run itself, on keys no one redis owns.
fn unsupported(sha: &str, args: &[Bytes]) -> Reply {
    if args.get(2).is_some_and(|numkeys| numkeys.as_ref() == b"0") {
        return super::not_one_redis("eval");
    }
    Reply::error(format!(
        "ERR Keyway runs only the Lua scripts of django-redis and redis-py locks on memory routes \
         (this script's sha1 is {sha}); route these keys to a redis backend to run arbitrary scripts"
    ))
}

impl RespSession {
    pub(super) async fn script_command(&mut self, cmd: ScriptCmd, args: &[Bytes]) -> CmdResult {
        match cmd {
            ScriptCmd::Eval => {
                let sha = sha1_hex(&args[1]);
                let script = find(sha.as_bytes()).ok_or_else(|| unsupported(&sha, args))?;
                self.run_script(script, &args[2..]).await
            }
            ScriptCmd::EvalSha => {
                let script = find(&args[1])
                    .ok_or_else(|| Reply::error("NOSCRIPT No matching script. Please use EVAL."))?;
                self.run_script(script, &args[2..]).await
            }
            ScriptCmd::Script if args.len() == 3 && args[1].eq_ignore_ascii_case(b"load") => {
                self.load_script(args).await
            }
            ScriptCmd::Script => self.script_on_redis(args).await,
        }
    }

    /// SCRIPT LOAD: a script Keyway runs natively is "loaded" here; any
    /// other is loaded into every redis backend, where EVALSHA on redis
    /// routes will find it.
    async fn load_script(&self, args: &[Bytes]) -> CmdResult {
        let sha = sha1_hex(&args[2]);
        if find(sha.as_bytes()).is_some() || self.shared.resp_router.redis_routes().is_empty() {
            return script_subcommand(args);
        }
        let replies = self.on_every_redis(args).await?;
        Ok(replies.into_iter().last().unwrap_or(Reply::Null))
    }

    /// SCRIPT EXISTS, FLUSH and KILL with redis backends: asked of every
    /// one. A script exists if Keyway runs it or every redis has it; a
    /// flush empties every redis's cache; a kill stops whichever runs one.
    async fn script_on_redis(&self, args: &[Bytes]) -> CmdResult {
        let sub = args[1].to_ascii_uppercase();
        if self.shared.resp_router.redis_routes().is_empty()
            || !matches!(&sub[..], b"EXISTS" | b"FLUSH" | b"KILL")
        {
            return script_subcommand(args);
        }
        let replies = self.on_every_redis(args).await;
        match &sub[..] {
            b"EXISTS" => {
                let mut known: Vec<bool> = vec![true; args.len().saturating_sub(2)];
                for reply in replies? {
                    let Reply::Array(flags) = reply else {
                        return Err(reply);
                    };
                    for (known, flag) in known.iter_mut().zip(flags) {
                        *known &= flag == Reply::Integer(1);
                    }
                }
                let shas = args[2..].iter();
                Ok(Reply::Array(
                    shas.zip(known)
                        .map(|(sha, known)| Reply::Integer(i64::from(known || find(sha).is_some())))
                        .collect(),
                ))
            }
            b"KILL" => match replies {
                Ok(_) => Ok(Reply::ok()),
                Err(error) => Err(error),
            },
            _ => replies.map(|_| Reply::ok()),
        }
    }

    /// `args` sent to every node of every redis backend; their replies, or
    /// the first error (a KILL that finds nothing running is redis's
    /// NOTBUSY only when no backend ran a script).
    async fn on_every_redis(&self, args: &[Bytes]) -> Result<Vec<Reply>, Reply> {
        let kill = args[1].eq_ignore_ascii_case(b"kill");
        let mut replies = Vec::new();
        let mut not_busy = None;
        for &route in self.shared.resp_router.redis_routes() {
            let mut command = crate::backend::redis::Batch::default();
            command.push_for_every_node(args);
            let raw = self
                .forward_to(route, command, [crate::metrics::Family::Other], false)
                .await
                .map_err(Reply::from)?;
            let reply = keyway_protocol::resp::parse_backend_reply(&raw[0], self.version)
                .map_err(|e| Reply::error(format!("ERR {e}")))?;
            match reply {
                Reply::Error(text) if kill && text.starts_with("NOTBUSY") => {
                    not_busy = Some(Reply::Error(text))
                }
                Reply::Error(_) => return Err(reply),
                reply => replies.push(reply),
            }
        }
        match not_busy {
            Some(error) if replies.is_empty() => Err(error),
            _ => Ok(replies),
        }
    }

    /// `args` is `numkeys key... arg...`.
    async fn run_script(&self, script: Script, args: &[Bytes]) -> CmdResult {
        let numkeys = parse_i64(&args[0])?;
        if numkeys < 0 {
            return Err(Reply::error("ERR Number of keys can't be negative"));
        }
        if numkeys as usize > args.len() - 1 {
            return Err(Reply::error(
                "ERR Number of keys can't be greater than number of args",
            ));
        }
        let (keys, argv) = args[1..].split_at(numkeys as usize);
        let (Some(key), Some(arg1)) = (keys.first(), argv.first()) else {
            return Err(Reply::error(
                "ERR Error running script: missing KEYS[1] or ARGV[1]",
            ));
        };
        let router = &self.shared.resp_router;
        let db = self.db;
        match script {
            Script::IncrByIfExists | Script::IncrBy => {
                let delta = parse_i64(arg1)?;
                if script == Script::IncrByIfExists
                    && router.get(db, std::slice::from_ref(key)).await?[0].is_none()
                {
                    // Lua false becomes a RESP3 false, or a RESP2 nil.
                    return Ok(if self.version == Version::Resp3 {
                        Reply::Boolean(false)
                    } else {
                        Reply::Null
                    });
                }
                match router.arith(db, key, Arith::Redis(delta)).await? {
                    ArithOutcome::Signed(n) => Ok(Reply::Integer(n)),
                    _ => Err(Reply::error("ERR value is not an integer or out of range")),
                }
            }
            Script::LockRelease | Script::LockExtend | Script::LockReacquire => {
                let token = router.get(db, std::slice::from_ref(key)).await?.remove(0);
                if token.is_none_or(|item| item.value != *arg1) {
                    return Ok(Reply::Integer(0));
                }
                let done = match script {
                    Script::LockRelease => router.delete(db, std::slice::from_ref(key)).await?[0],
                    Script::LockReacquire => {
                        let ms = parse_i64(argv.get(1).unwrap_or(&Bytes::new()))?;
                        router
                            .expire(
                                db,
                                key,
                                Expiry::after_ms(ms.max(0) as u64),
                                ExpireCondition::Always,
                            )
                            .await?
                    }
                    _ => self.extend_lock(key, argv).await?,
                };
                Ok(Reply::Integer(i64::from(done)))
            }
        }
    }

    async fn extend_lock(&self, key: &Bytes, argv: &[Bytes]) -> Result<bool, Reply> {
        let router = &self.shared.resp_router;
        let Ttl::Millis(remaining) = router.ttl(self.db, key).await? else {
            return Ok(false);
        };
        let additional = parse_i64(argv.get(1).unwrap_or(&Bytes::new()))?.max(0) as u64;
        let replace = argv.get(2).is_some_and(|a| &a[..] != b"0");
        let ttl = if replace {
            additional
        } else {
            additional + remaining
        };
        Ok(router
            .expire(self.db, key, Expiry::after_ms(ttl), ExpireCondition::Always)
            .await?)
    }
}

fn script_subcommand(args: &[Bytes]) -> CmdResult {
    match args[1].to_ascii_uppercase().as_slice() {
        b"LOAD" if args.len() == 3 => {
            let sha = sha1_hex(&args[2]);
            find(sha.as_bytes()).ok_or_else(|| unsupported(&sha, &[]))?;
            Ok(Reply::bulk(sha))
        }
        b"EXISTS" if args.len() >= 3 => Ok(Reply::Array(
            args[2..]
                .iter()
                .map(|sha| Reply::Integer(i64::from(find(sha).is_some())))
                .collect(),
        )),
        // The known scripts are built in, so there is nothing to flush.
        b"FLUSH" => Ok(Reply::ok()),
        // Keyway's scripts run to completion at once: none is ever running.
        b"KILL" if args.len() == 2 => {
            Err(Reply::error("NOTBUSY No scripts in execution right now."))
        }
        _ => Err(Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SCRIPT HELP.",
            String::from_utf8_lossy(&args[1])
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shas_match_what_clients_compute() {
        // Computed by Python's hashlib on the scripts shipped in django-redis 7.0.0 and redis-py 8.1.0.
        assert_eq!(
            find(b"f4a7da3e5d8ea3b46642af08427151cae0190400"),
            Some(Script::IncrByIfExists)
        );
        assert_eq!(
            find(b"4d15273b16b10c15e1d9202cbe93c959ab7d250b"),
            Some(Script::IncrBy)
        );
        assert_eq!(
            find(b"c3f8721cbb97f72bc19e972846bd7aaf91901658"),
            Some(Script::LockRelease)
        );
        assert_eq!(
            find(b"a4e8783852e6b949f9ef3a97212805108459a890"),
            Some(Script::LockExtend)
        );
        assert_eq!(
            find(b"1cac51482acf5858da00f6d685d68f886cd6b6b2"),
            Some(Script::LockReacquire)
        );
    }
}
