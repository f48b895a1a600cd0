//! Keyspace commands: deletion, existence, expiry, listing and flushing.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::commands::KeyCmd;
use super::{parse_i64, syntax_error, CmdResult, RespSession};
use crate::op::{now_ms, ExpireCondition, Expiry, Ttl};

/// How many keys one internal SCAN step asks for while answering KEYS.
const KEYS_BATCH: usize = 1000;

impl RespSession {
    pub(super) async fn key_command(
        &mut self,
        cmd: KeyCmd,
        name: &'static str,
        args: &[Bytes],
    ) -> CmdResult {
        let router = &self.shared.resp_router;
        let db = self.db;
        match cmd {
            KeyCmd::Del | KeyCmd::Unlink => {
                let deleted = router.delete(db, &args[1..]).await?;
                Ok(Reply::Integer(deleted.iter().filter(|d| **d).count() as i64))
            }
            KeyCmd::Exists | KeyCmd::Touch => {
                let items = router.get(db, &args[1..]).await?;
                Ok(Reply::Integer(
                    items.iter().filter(|i| i.is_some()).count() as i64
                ))
            }
            KeyCmd::Expire | KeyCmd::PExpire | KeyCmd::ExpireAt | KeyCmd::PExpireAt => {
                self.expire(cmd, name, args).await
            }
            KeyCmd::Ttl | KeyCmd::PTtl => {
                Ok(Reply::Integer(match router.ttl(db, &args[1]).await? {
                    Ttl::Missing => -2,
                    Ttl::Persistent => -1,
                    Ttl::Millis(ms) if cmd == KeyCmd::Ttl => ((ms + 500) / 1000) as i64,
                    Ttl::Millis(ms) => ms as i64,
                }))
            }
            KeyCmd::Persist => {
                let changed = router
                    .expire(db, &args[1], Expiry::Never, ExpireCondition::IfVolatile)
                    .await?;
                Ok(Reply::Integer(i64::from(changed)))
            }
            KeyCmd::Type => {
                let items = router.get(db, &args[1..2]).await?;
                Ok(Reply::simple(if items[0].is_some() {
                    "string"
                } else {
                    "none"
                }))
            }
            KeyCmd::Keys => self.keys(args).await,
            KeyCmd::Scan => self.scan(args).await,
            KeyCmd::DbSize => Ok(Reply::Integer(router.len(db).await? as i64)),
            KeyCmd::FlushDb | KeyCmd::FlushAll => self.flush(cmd, args).await,
        }
    }

    /// `KEYS pattern`: every matching key, read page by page.
    async fn keys(&self, args: &[Bytes]) -> CmdResult {
        let router = &self.shared.resp_router;
        let db = self.db;
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

    /// `FLUSHDB` / `FLUSHALL [ASYNC|SYNC]` (both run synchronously).
    async fn flush(&self, cmd: KeyCmd, args: &[Bytes]) -> CmdResult {
        let router = &self.shared.resp_router;
        let db = self.db;
        match &args[1..] {
            [] => {}
            [mode] if mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC") => {
            }
            _ => return Err(syntax_error()),
        }
        router
            .flush(if cmd == KeyCmd::FlushDb {
                Some(db)
            } else {
                None
            })
            .await?;
        Ok(Reply::ok())
    }

    /// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT key amount [NX|XX|GT|LT]
    async fn expire(&self, cmd: KeyCmd, name: &'static str, args: &[Bytes]) -> CmdResult {
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
        let in_seconds = matches!(cmd, KeyCmd::Expire | KeyCmd::ExpireAt);
        let relative = matches!(cmd, KeyCmd::Expire | KeyCmd::PExpire);
        let ms = if in_seconds {
            amount.checked_mul(1000).ok_or_else(invalid)?
        } else {
            amount
        };
        let at = if relative {
            ms.checked_add(now_ms() as i64).ok_or_else(invalid)?
        } else {
            ms
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
