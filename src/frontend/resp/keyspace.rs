//! RENAME, RENAMENX, COPY, MOVE and OBJECT on routes Keyway serves itself
//! (memory, memcached, SQL, policies), as redis answers them. On a redis
//! route they are forwarded as they came and redis runs them atomically;
//! here they are a read and a write (and a delete), through whichever
//! stores the two keys route to: atomic for neither key, like any
//! read-then-write a client does.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::commands::KeyspaceCmd;
use super::{parse_i64, syntax_error, wrong_arity, CmdResult, RespSession};
use crate::op::{Db, Item, StoreMode, StoreStatus, DATABASES};

impl RespSession {
    pub(super) async fn keyspace_command(&mut self, cmd: KeyspaceCmd, args: &[Bytes]) -> CmdResult {
        match cmd {
            KeyspaceCmd::Rename => self.rename(args, false).await,
            KeyspaceCmd::RenameNx => self.rename(args, true).await,
            KeyspaceCmd::Copy => self.copy(args).await,
            KeyspaceCmd::Move => self.move_to(args).await,
            KeyspaceCmd::Object => self.object(args).await,
            KeyspaceCmd::Memory => self.memory(args).await,
        }
    }

    async fn item(&self, db: Db, key: &Bytes) -> Result<Option<Item>, Reply> {
        let items = self
            .shared
            .resp_router
            .get(db, std::slice::from_ref(key))
            .await?;
        Ok(items.into_iter().next().flatten())
    }

    /// Writes `item` under `key` in `db`: the same copy a policy makes for
    /// another member (value, flags, absolute expiry; only where the key is
    /// free), or with `only_if_absent` false an overwrite. Whether it was
    /// written.
    async fn put(
        &self,
        db: Db,
        key: &Bytes,
        item: Item,
        only_if_absent: bool,
    ) -> Result<bool, Reply> {
        let mut store = crate::policy::copy_of(key, &item);
        if !only_if_absent {
            store.mode = StoreMode::Set;
        }
        let outcome = self.shared.resp_router.store(db, store).await?;
        Ok(outcome.status == StoreStatus::Stored)
    }

    async fn remove(&self, db: Db, key: &Bytes) -> Result<(), Reply> {
        self.shared
            .resp_router
            .delete(db, std::slice::from_ref(key))
            .await?;
        Ok(())
    }

    /// `RENAME src dst` / `RENAMENX src dst`
    async fn rename(&self, args: &[Bytes], only_if_absent: bool) -> CmdResult {
        let (source, destination) = (&args[1], &args[2]);
        let Some(item) = self.item(self.db, source).await? else {
            return Err(Reply::error("ERR no such key"));
        };
        if source == destination {
            return Ok(if only_if_absent {
                Reply::Integer(0)
            } else {
                Reply::ok()
            });
        }
        let written = self.put(self.db, destination, item, only_if_absent).await?;
        if written {
            self.remove(self.db, source).await?;
        }
        Ok(if only_if_absent {
            Reply::Integer(i64::from(written))
        } else {
            Reply::ok()
        })
    }

    /// `COPY source destination [DB destination-db] [REPLACE]`
    async fn copy(&self, args: &[Bytes]) -> CmdResult {
        let (mut db, mut replace) = (self.db, false);
        let mut i = 3;
        while i < args.len() {
            match &args[i].to_ascii_uppercase()[..] {
                b"REPLACE" => replace = true,
                b"DB" if i + 1 < args.len() => {
                    db = database(int_argument(&args[i + 1])?.into())?;
                    i += 1;
                }
                _ => return Err(syntax_error()),
            }
            i += 1;
        }
        if db == self.db && args[1] == args[2] {
            return Err(same_object());
        }
        let Some(item) = self.item(self.db, &args[1]).await? else {
            return Ok(Reply::Integer(0));
        };
        let written = self.put(db, &args[2], item, !replace).await?;
        Ok(Reply::Integer(i64::from(written)))
    }

    /// `MOVE key db`
    async fn move_to(&self, args: &[Bytes]) -> CmdResult {
        let db = database(int_argument(&args[2])?.into())?;
        if db == self.db {
            return Err(same_object());
        }
        let Some(item) = self.item(self.db, &args[1]).await? else {
            return Ok(Reply::Integer(0));
        };
        let written = self.put(db, &args[1], item, true).await?;
        if written {
            self.remove(self.db, &args[1]).await?;
        }
        Ok(Reply::Integer(i64::from(written)))
    }

    /// `OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key`: the encoding redis
    /// would give the string; a reference count of 1 and an idle time of 0
    /// (Keyway tracks neither); FREQ refused as redis refuses it under the
    /// LRU policy Keyway reports.
    async fn object(&self, args: &[Bytes]) -> CmdResult {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        if !matches!(&sub[..], "encoding" | "refcount" | "idletime" | "freq") {
            return Err(Reply::error(format!(
                "ERR unknown subcommand '{}'. Try OBJECT HELP.",
                String::from_utf8_lossy(&args[1])
            )));
        }
        if args.len() != 3 {
            return Err(wrong_arity(&format!("object|{sub}")));
        }
        let Some(item) = self.item(self.db, &args[2]).await? else {
            return Ok(Reply::Null);
        };
        Ok(match &sub[..] {
            "encoding" => Reply::Bulk(Bytes::from_static(encoding(&item.value).as_bytes())),
            // redis shares one object among values 0..9999 held as integers.
            "refcount" if is_shared_integer(&item.value) => Reply::Integer(i64::from(i32::MAX)),
            "refcount" => Reply::Integer(1),
            "idletime" => Reply::Integer(0),
            _ => {
                return Err(Reply::error(
                    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
                     Please note that when switching between policies at runtime LRU and LFU data \
                     will take some time to adjust.",
                ))
            }
        })
    }
}

impl RespSession {
    /// MEMORY USAGE: Keyway's estimate of an item (key, value and 48
    /// bytes), not redis's allocator figures; other subcommands refused.
    async fn memory(&self, args: &[Bytes]) -> CmdResult {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        if sub != "usage" {
            return Err(Reply::error(format!(
                "ERR unknown subcommand '{}'. Try MEMORY HELP.",
                String::from_utf8_lossy(&args[1])
            )));
        }
        match args.len() {
            3 => {}
            5 if args[3].eq_ignore_ascii_case(b"samples") => {
                parse_i64(&args[4])?;
            }
            4 | 5 => return Err(Reply::error("ERR syntax error")),
            _ => return Err(wrong_arity("memory|usage")),
        }
        Ok(match self.item(self.db, &args[2]).await? {
            Some(item) => Reply::Integer((args[2].len() + item.value.len() + 48) as i64),
            None => Reply::Null,
        })
    }
}

/// Whether redis would hold `value` as one of its shared integers (0..9999).
fn is_shared_integer(value: &[u8]) -> bool {
    encoding(value) == "int"
        && std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|n| (0..10_000).contains(&n))
}

fn same_object() -> Reply {
    Reply::error("ERR source and destination objects are the same")
}

/// An argument redis reads with `getIntFromObjectOrReply` (SELECT's and
/// MOVE's database): a 64-bit integer, then refused outside 32 bits.
pub(super) fn int_argument(arg: &[u8]) -> Result<i32, Reply> {
    let value = parse_i64(arg)?;
    i32::try_from(value).map_err(|_| {
        Reply::error("ERR value is out of range, value must between -2147483648 and 2147483647")
    })
}

fn database(db: i64) -> Result<Db, Reply> {
    if !(0..i64::from(DATABASES)).contains(&db) {
        return Err(Reply::error("ERR DB index is out of range"));
    }
    Ok(db as Db)
}

/// How redis would hold a string: `int` when it reads back as a 64-bit
/// integer written canonically, `embstr` up to 44 bytes, `raw` beyond.
fn encoding(value: &[u8]) -> &'static str {
    let canonical = std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<i64>().ok().filter(|n| n.to_string() == text));
    match canonical {
        Some(_) if value.len() <= 20 => "int",
        _ if value.len() <= 44 => "embstr",
        _ => "raw",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodings_follow_redis() {
        for (value, want) in [
            (&b"123"[..], "int"),
            (b"-5", "int"),
            (b"012", "embstr"),
            (b"+1", "embstr"),
            (b"12345678901234567890", "embstr"),
            (b"hello", "embstr"),
            (&[b'x'; 45][..], "raw"),
        ] {
            assert_eq!(super::encoding(value), want, "{value:?}");
        }
    }
}
