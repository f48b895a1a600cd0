//! Commands on whole items (value, flags and expiry together, where
//! keys.rs's act on keys): RENAME, RENAMENX, COPY and MOVE carry an item
//! to another key or database; OBJECT and MEMORY USAGE describe one. On
//! routes Keyway serves itself (memory, memcached, SQL, policies) they
//! are answered as redis answers them. On a redis
//! route they are forwarded as they came and redis runs them atomically;
//! here they are a read and a write (and a delete), through whichever
//! stores the two keys route to: atomic for neither key, like any
//! read-then-write a client does.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::commands::ItemCmd;
use super::requests::{database, memory_usage_key, Copy, Object, ObjectField};
use super::{CmdResult, RespSession};
use crate::op::{Db, Item, StoreMode, StoreStatus};

impl RespSession {
    pub(super) async fn item_command(&mut self, cmd: ItemCmd, args: &[Bytes]) -> CmdResult {
        match cmd {
            ItemCmd::Rename => self.rename(args, false).await,
            ItemCmd::RenameNx => self.rename(args, true).await,
            ItemCmd::Copy => self.copy(Copy::parse(args)?).await,
            ItemCmd::Move => self.move_to(&args[1], database(&args[2])?).await,
            ItemCmd::Object => self.object(Object::parse(args)?).await,
            ItemCmd::Memory => self.memory_usage(memory_usage_key(args)?).await,
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
    async fn copy(&self, copy: Copy) -> CmdResult {
        let db = copy.db.unwrap_or(self.db);
        if db == self.db && copy.source == copy.destination {
            return Err(same_object());
        }
        let Some(item) = self.item(self.db, &copy.source).await? else {
            return Ok(Reply::Integer(0));
        };
        let written = self.put(db, &copy.destination, item, !copy.replace).await?;
        Ok(Reply::Integer(i64::from(written)))
    }

    /// `MOVE key db`
    async fn move_to(&self, key: &Bytes, db: Db) -> CmdResult {
        if db == self.db {
            return Err(same_object());
        }
        let item = match self.item(self.db, key).await {
            // A collection: moved within its memory store.
            Err(Reply::Error(error)) if error.starts_with("WRONGTYPE") => {
                let router = &self.shared.resp_router;
                let Some(passage) = router.memory_passage(std::iter::once(&key[..])) else {
                    return Err(Reply::Error(error));
                };
                let moved = passage.backend().move_key(key, self.db, db)?;
                return Ok(Reply::Integer(i64::from(moved)));
            }
            item => item?,
        };
        let Some(item) = item else {
            return Ok(Reply::Integer(0));
        };
        let written = self.put(db, key, item, true).await?;
        if written {
            self.remove(self.db, key).await?;
        }
        Ok(Reply::Integer(i64::from(written)))
    }

    /// `OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key`: the encoding redis
    /// would give the string; a reference count of 1 and an idle time of 0
    /// (Keyway tracks neither); FREQ refused as redis refuses it under the
    /// LRU policy Keyway reports.
    async fn object(&self, object: Object) -> CmdResult {
        let Some(item) = self.item(self.db, &object.key).await? else {
            return Ok(Reply::Null);
        };
        Ok(match object.asks {
            ObjectField::Encoding => {
                Reply::Bulk(Bytes::from_static(encoding(&item.value).as_bytes()))
            }
            // redis shares one object among values 0..9999 held as integers.
            ObjectField::RefCount if is_shared_integer(&item.value) => {
                Reply::Integer(i64::from(i32::MAX))
            }
            ObjectField::RefCount => Reply::Integer(1),
            ObjectField::IdleTime => Reply::Integer(0),
            ObjectField::Freq => {
                return Err(Reply::error(
                    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
                     Please note that when switching between policies at runtime LRU and LFU data \
                     will take some time to adjust.",
                ))
            }
        })
    }

    /// MEMORY USAGE: Keyway's estimate of an item (key, value and 48
    /// bytes), not redis's allocator figures; other subcommands refused.
    async fn memory_usage(&self, key: Bytes) -> CmdResult {
        Ok(match self.item(self.db, &key).await? {
            Some(item) => Reply::Integer((key.len() + item.value.len() + 48) as i64),
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
