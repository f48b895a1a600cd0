//! Keyspace commands: deletion, existence, expiry, listing and flushing.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::{parse_i64, syntax_error, CmdResult, RespSession};
use crate::op::{now_ms, ExpireCondition, Expiry, Ttl};

/// How many keys one internal SCAN step asks for while answering KEYS.
const KEYS_BATCH: usize = 1000;

impl RespSession {
    pub(super) async fn key_command(&mut self, name: &'static str, args: &[Bytes]) -> CmdResult {
        let router = &self.shared.resp_router;
        let db = self.db;
        match name {
            "del" | "unlink" => {
                let deleted = router.delete(db, &args[1..]).await?;
                Ok(Reply::Integer(deleted.iter().filter(|d| **d).count() as i64))
            }
            "exists" | "touch" => {
                let items = router.get(db, &args[1..]).await?;
                Ok(Reply::Integer(
                    items.iter().filter(|i| i.is_some()).count() as i64
                ))
            }
            "expire" | "pexpire" | "expireat" | "pexpireat" => self.expire(name, args).await,
            "ttl" | "pttl" => Ok(Reply::Integer(match router.ttl(db, &args[1]).await? {
                Ttl::Missing => -2,
                Ttl::Persistent => -1,
                Ttl::Millis(ms) if name == "ttl" => ((ms + 500) / 1000) as i64,
                Ttl::Millis(ms) => ms as i64,
            })),
            "persist" => {
                let changed = router
                    .expire(db, &args[1], Expiry::Never, ExpireCondition::IfVolatile)
                    .await?;
                Ok(Reply::Integer(i64::from(changed)))
            }
            "type" => {
                let items = router.get(db, &args[1..2]).await?;
                Ok(Reply::simple(if items[0].is_some() {
                    "string"
                } else {
                    "none"
                }))
            }
            "keys" => {
                let mut keys = Vec::new();
                let mut cursor = 0;
                loop {
                    let page = router.scan(db, cursor, Some(&args[1]), KEYS_BATCH).await?;
                    keys.extend(page.keys.into_iter().map(Reply::Bulk));
                    cursor = page.cursor;
                    if cursor == 0 {
                        return Ok(Reply::Array(keys));
                    }
                }
            }
            "scan" => self.scan(args).await,
            "dbsize" => Ok(Reply::Integer(router.len(db).await? as i64)),
            "flushdb" | "flushall" => {
                match &args[1..] {
                    [] => {}
                    [mode]
                        if mode.eq_ignore_ascii_case(b"ASYNC")
                            || mode.eq_ignore_ascii_case(b"SYNC") => {}
                    _ => return Err(syntax_error()),
                }
                router
                    .flush(if name == "flushdb" { Some(db) } else { None })
                    .await?;
                Ok(Reply::ok())
            }
            _ => unreachable!("dispatched by name: {name}"),
        }
    }

    /// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT key amount [NX|XX|GT|LT]
    async fn expire(&self, name: &'static str, args: &[Bytes]) -> CmdResult {
        let amount = parse_i64(&args[2])?;
        let mut condition = ExpireCondition::Always;
        for option in &args[3..] {
            let next = match option.to_ascii_uppercase().as_slice() {
                b"NX" => ExpireCondition::IfPersistent,
                b"XX" => ExpireCondition::IfVolatile,
                b"GT" => ExpireCondition::IfLater,
                b"LT" => ExpireCondition::IfEarlier,
                _ => {
                    return Err(Reply::error(format!(
                        "ERR Unsupported option {}",
                        String::from_utf8_lossy(option)
                    )))
                }
            };
            condition = combine_conditions(condition, next)?;
        }
        let invalid = || Reply::error(format!("ERR invalid expire time in '{name}' command"));
        let ms = match name {
            "expire" | "expireat" => amount.checked_mul(1000).ok_or_else(invalid)?,
            _ => amount,
        };
        let at = match name {
            "expire" | "pexpire" => ms.checked_add(now_ms() as i64).ok_or_else(invalid)?,
            _ => ms,
        };
        // A time in the past deletes the key (it expires at once).
        let expiry = Expiry::At(at.max(0) as u64);
        let changed = self
            .shared
            .resp_router
            .expire(self.db, &args[1], expiry, condition)
            .await?;
        Ok(Reply::Integer(i64::from(changed)))
    }

    /// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]
    async fn scan(&self, args: &[Bytes]) -> CmdResult {
        let cursor: u64 = std::str::from_utf8(&args[1])
            .ok()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Reply::error("ERR invalid cursor"))?;
        let mut pattern = None;
        let mut count = 10;
        let mut only_strings = true;
        let mut options = args[2..].chunks(2);
        for pair in options.by_ref() {
            let [option, value] = pair else {
                return Err(syntax_error());
            };
            match option.to_ascii_uppercase().as_slice() {
                b"MATCH" => pattern = Some(value.clone()),
                b"COUNT" => {
                    count = parse_i64(value)?;
                    if count < 1 {
                        return Err(syntax_error());
                    }
                }
                // Keyway stores strings only: any other TYPE matches nothing.
                b"TYPE" => only_strings = value.eq_ignore_ascii_case(b"string"),
                _ => return Err(syntax_error()),
            }
        }
        let page = self
            .shared
            .resp_router
            .scan(self.db, cursor, pattern.as_deref(), count as usize)
            .await?;
        let keys = if only_strings {
            page.keys.into_iter().map(Reply::Bulk).collect()
        } else {
            Vec::new()
        };
        Ok(Reply::Array(vec![
            Reply::bulk(page.cursor.to_string()),
            Reply::Array(keys),
        ]))
    }
}

fn combine_conditions(
    current: ExpireCondition,
    next: ExpireCondition,
) -> Result<ExpireCondition, Reply> {
    use ExpireCondition::*;
    match (current, next) {
        (Always, next) => Ok(next),
        (a, b) if a == b => Ok(a),
        (IfPersistent, _) | (_, IfPersistent) => Err(Reply::error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        )),
        (IfLater, IfEarlier) | (IfEarlier, IfLater) => Err(Reply::error(
            "ERR GT and LT options at the same time are not compatible",
        )),
        // GT already refuses a key without expiry (it counts as infinitely
        // late), so XX adds nothing to it; LT does not, so XX+LT is its own case.
        (IfVolatile, IfLater) | (IfLater, IfVolatile) => Ok(IfLater),
        (IfVolatile, IfEarlier) | (IfEarlier, IfVolatile) => Ok(IfVolatileAndEarlier),
        (a, _) => Ok(a),
    }
}
