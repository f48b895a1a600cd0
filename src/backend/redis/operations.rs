//! The [`Backend`] operations on redis: memcached clients' requests (and
//! Keyway's own RESP commands off redis routes) as redis commands.

use bytes::Bytes;
use keyway_protocol::resp::BackendReply as Reply;

use super::batch::command;
use super::values::{encode_value, item_of};
use super::{
    bulk, cluster, integer, only_database_0, text, unavailable, unexpected, Change, RedisBackend,
    Servers,
};
use crate::backend::{numeric, Backend, BackendError, Result, SCAN_CURSOR_MASK};
use crate::op::{
    plan_store, Arith, ArithOutcome, Db, ExpireCondition, Expiry, ExpiryUpdate, Item, ScanPage,
    Store, StoreOutcome, StorePlan, StoreStatus, Ttl,
};

impl RedisBackend {
    /// The write itself ([`Backend::store`] adds the session index).
    async fn store_item(&self, db: Db, store: Store) -> Result<StoreOutcome> {
        if store.is_plain_set() {
            if let ExpiryUpdate::Set(expiry) = store.expiry {
                let stored = encode_value(&store.value, store.flags);
                let reply = self
                    .run(db, &store.key, 1, |r| {
                        Self::set_command(r, &store.key, &stored, expiry)
                    })
                    .await?
                    .remove(0);
                return match reply {
                    Reply::Simple(_) | Reply::Integer(_) => Ok(StoreOutcome {
                        status: StoreStatus::Stored,
                        old: None,
                        len: store.value.len(),
                    }),
                    other => Err(unexpected(&other)),
                };
            }
        }
        self.read_decide_write(db, &store.key, |current| {
            Ok(match plan_store(&store, current.as_ref(), Bytes::clone) {
                StorePlan::Refuse(status) => (
                    Change::Keep,
                    StoreOutcome::refused_showing(status, &store, current.clone()),
                ),
                StorePlan::Write {
                    value,
                    flags,
                    expiry,
                } => (
                    Change::Set(encode_value(&value, flags), expiry),
                    StoreOutcome {
                        status: StoreStatus::Stored,
                        old: current.filter(|_| store.return_old),
                        len: value.len(),
                    },
                ),
            })
        })
        .await
    }
}

impl Backend for RedisBackend {
    /// One MGET. Items report no expiry here (ask `ttl`).
    async fn get(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        if self.is_cluster() {
            return self
                .run_each(db, keys, |r, key| command(r, &[b"GET", key]))
                .await?
                .into_iter()
                .map(|value| Ok(bulk(value)?.map(|stored| item_of(&stored, Expiry::Never))))
                .collect();
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        args.push(b"MGET");
        args.extend(keys.iter().map(|k| &k[..]));
        match self.one(db, b"", &args).await? {
            Reply::Array(values) if values.len() == keys.len() => values
                .into_iter()
                .map(|value| Ok(bulk(value)?.map(|stored| item_of(&stored, Expiry::Never))))
                .collect(),
            other => Err(unexpected(&other)),
        }
    }

    async fn get_and_touch(
        &self,
        db: Db,
        keys: &[Bytes],
        expiry: Expiry,
    ) -> Result<Vec<Option<Item>>> {
        let at = match expiry {
            Expiry::At(at) => text(at),
            Expiry::Never => Vec::new(),
        };
        let replies = self
            .run_each(db, keys, |r, key| match expiry {
                Expiry::Never => command(r, &[b"GETEX", key, b"PERSIST"]),
                Expiry::At(_) => command(r, &[b"GETEX", key, b"PXAT", &at]),
            })
            .await?;
        replies
            .into_iter()
            .map(|reply| Ok(bulk(reply)?.map(|stored| item_of(&stored, expiry))))
            .collect()
    }

    async fn get_and_delete(&self, db: Db, key: &Bytes) -> Result<Option<Item>> {
        let reply = self.one(db, key, &[b"GETDEL", key]).await?;
        Ok(bulk(reply)?.map(|stored| item_of(&stored, Expiry::Never)))
    }

    async fn store(&self, db: Db, mut store: Store) -> Result<StoreOutcome> {
        if let Some(marker) = store.unless_ended.take() {
            if let Some(outcome) = self.session_write(db, &store, &marker).await {
                return outcome;
            }
        }
        let session = keyway_protocol::django::may_be_session_key(&store.key).then(|| {
            (
                store.key.clone(),
                store.value.clone(),
                store.flags,
                store.expiry,
            )
        });
        let outcome = self.store_item(db, store).await?;
        if let Some((key, value, flags, expiry)) = session {
            if outcome.status == StoreStatus::Stored {
                self.index_session(db, &key, &value, flags, expiry).await?;
            }
        }
        Ok(outcome)
    }

    async fn store_all_if_absent(&self, db: Db, pairs: Vec<(Bytes, Bytes)>) -> Result<bool> {
        let stored: Vec<Bytes> = pairs.iter().map(|(_, v)| encode_value(v, 0)).collect();
        let mut args: Vec<&[u8]> = vec![b"MSETNX"];
        for ((key, _), value) in pairs.iter().zip(&stored) {
            args.push(key);
            args.push(value);
        }
        // On a cluster, MSETNX needs every key in one hash slot (redis's
        // CROSSSLOT error otherwise): nothing else would keep it all-or-nothing.
        let first = pairs.first().map_or(&b""[..], |(key, _)| &key[..]);
        if self.is_cluster()
            && pairs
                .iter()
                .any(|(key, _)| cluster::key_slot(key) != cluster::key_slot(first))
        {
            return Err(BackendError::Unsupported(
                "CROSSSLOT Keys in request don't hash to the same slot (MSETNX on a \
                 redis-cluster route is all-or-nothing only within one hash slot: give \
                 the keys one {hash tag})"
                    .into(),
            ));
        }
        Ok(integer(&self.one(db, first, &args).await?)? == 1)
    }

    async fn delete(&self, db: Db, keys: &[Bytes]) -> Result<Vec<bool>> {
        let replies = self
            .run_each(db, keys, |r, key| command(r, &[b"DEL", key]))
            .await?;
        replies.iter().map(|r| Ok(integer(r)? == 1)).collect()
    }

    async fn arith(&self, db: Db, key: &Bytes, arith: Arith) -> Result<ArithOutcome> {
        self.read_decide_write(db, key, |current| {
            let Some((value, outcome)) =
                numeric::apply(arith, current.as_ref().map(|c| &c.value[..]))?
            else {
                return Ok((Change::Keep, ArithOutcome::NotFound));
            };
            let (flags, expiry) = current.map_or((0, Expiry::Never), |c| (c.flags, c.expiry));
            Ok((Change::Set(encode_value(&value, flags), expiry), outcome))
        })
        .await
    }

    async fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Result<bool> {
        let at = match expiry {
            Expiry::At(at) => text(at),
            Expiry::Never => Vec::new(),
        };
        let option: &[u8] = match condition {
            ExpireCondition::Always => b"",
            ExpireCondition::IfPersistent => b"NX",
            ExpireCondition::IfVolatile => b"XX",
            ExpireCondition::IfLater => b"GT",
            ExpireCondition::IfEarlier => b"LT",
            ExpireCondition::IfVolatileAndEarlier => b"XX",
        };
        match (expiry, condition) {
            // "No expiry" is later than any: only PERSIST-like conditions can hold.
            (Expiry::Never, ExpireCondition::Always) => {
                let replies = self
                    .run(db, key, 2, |r| {
                        command(r, &[b"PERSIST", key]);
                        command(r, &[b"EXISTS", key]);
                    })
                    .await?;
                Ok(integer(&replies[1])? == 1)
            }
            (Expiry::Never, ExpireCondition::IfVolatile | ExpireCondition::IfLater) => {
                Ok(integer(&self.one(db, key, &[b"PERSIST", key]).await?)? == 1)
            }
            (Expiry::Never, _) => Ok(false),
            (Expiry::At(_), ExpireCondition::IfVolatileAndEarlier) => Ok(integer(
                &self
                    .one(db, key, &[b"PEXPIREAT", key, &at, b"XX", b"LT"])
                    .await?,
            )? == 1),
            (Expiry::At(_), ExpireCondition::Always) => {
                Ok(integer(&self.one(db, key, &[b"PEXPIREAT", key, &at]).await?)? == 1)
            }
            (Expiry::At(_), _) => {
                Ok(integer(&self.one(db, key, &[b"PEXPIREAT", key, &at, option]).await?)? == 1)
            }
        }
    }

    async fn ttl(&self, db: Db, key: &Bytes) -> Result<Ttl> {
        Ok(match integer(&self.one(db, key, &[b"PTTL", key]).await?)? {
            -2 => Ttl::Missing,
            -1 => Ttl::Persistent,
            ms => Ttl::Millis(ms.max(0) as u64),
        })
    }

    /// On a cluster, each primary's keys in turn: the cursor clients see
    /// carries the primary's place (bits 48-55, the primaries in address
    /// order) and that primary's own SCAN cursor (bits 0-47).
    async fn scan(
        &self,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<ScanPage> {
        let Servers::Cluster(cluster) = &self.servers else {
            return self.scan_page(None, db, cursor, pattern, count).await;
        };
        only_database_0(db)?;
        let primaries = cluster.primaries().await?;
        let cursor = cursor & SCAN_CURSOR_MASK;
        let mut index = (cursor >> NODE_CURSOR_BITS) as usize;
        let mut node_cursor = cursor & NODE_CURSOR_MASK;
        while let Some(node) = primaries.get(index) {
            let page = self
                .scan_page(Some(node), db, node_cursor, pattern, count)
                .await?;
            if page.cursor > NODE_CURSOR_MASK {
                return Err(unavailable(&format!(
                    "{}: SCAN returned a cursor Keyway cannot carry across a cluster",
                    node.addr
                )));
            }
            if page.cursor != 0 {
                let cursor = ((index as u64) << NODE_CURSOR_BITS) | page.cursor;
                return Ok(ScanPage { cursor, ..page });
            }
            index += 1;
            node_cursor = 0;
            if index == primaries.len() || !page.keys.is_empty() {
                let cursor = if index == primaries.len() {
                    0
                } else {
                    (index as u64) << NODE_CURSOR_BITS
                };
                return Ok(ScanPage { cursor, ..page });
            }
        }
        Ok(ScanPage {
            cursor: 0,
            keys: Vec::new(),
        })
    }

    async fn len(&self, db: Db) -> Result<usize> {
        let Servers::Cluster(cluster) = &self.servers else {
            return Ok(integer(&self.one(db, b"", &[b"DBSIZE"]).await?)?.max(0) as usize);
        };
        only_database_0(db)?;
        let mut total = 0;
        for node in cluster.primaries().await? {
            total += integer(&self.on_node(&node, &[b"DBSIZE"]).await?)?.max(0) as usize;
        }
        Ok(total)
    }

    /// FLUSHDB of the mapped database, or of each mapped one for all
    /// (FLUSHALL only when Keyway's databases are the server's 0-15). On a
    /// cluster, FLUSHALL on every primary.
    async fn flush(&self, db: Option<Db>) -> Result<()> {
        if let Servers::Cluster(cluster) = &self.servers {
            only_database_0(db.unwrap_or(0))?;
            for node in cluster.primaries().await? {
                self.on_node(&node, &[b"FLUSHALL"]).await?;
            }
            return Ok(());
        }
        let dbs: Vec<Db> = match db {
            Some(db) => vec![db],
            None if self.base_db == 0 => {
                return match self.one(0, b"", &[b"FLUSHALL"]).await? {
                    Reply::Simple(_) => Ok(()),
                    other => Err(unexpected(&other)),
                };
            }
            None => (0..16 - self.base_db).collect(),
        };
        for db in dbs {
            match self.one(db, b"", &[b"FLUSHDB"]).await? {
                Reply::Simple(_) => {}
                other => return Err(unexpected(&other)),
            }
        }
        Ok(())
    }
}

/// A cluster SCAN cursor: the primary's place above, its own cursor below.
const NODE_CURSOR_BITS: u32 = 48;
const NODE_CURSOR_MASK: u64 = (1 << NODE_CURSOR_BITS) - 1;

impl RedisBackend {
    /// One SCAN page from the one redis, or from `node` of a cluster.
    async fn scan_page(
        &self,
        node: Option<&cluster::Node>,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<ScanPage> {
        let cursor = text(cursor & SCAN_CURSOR_MASK);
        let count = text(count.max(1));
        let mut args: Vec<&[u8]> = vec![b"SCAN", &cursor, b"COUNT", &count];
        if let Some(pattern) = pattern {
            args.extend([b"MATCH".as_slice(), pattern]);
        }
        let reply = match node {
            Some(node) => self.on_node(node, &args).await?,
            None => self.one(db, b"", &args).await?,
        };
        match reply {
            Reply::Array(mut parts) if parts.len() == 2 => {
                let keys = match parts.pop() {
                    Some(Reply::Array(keys)) => keys
                        .into_iter()
                        .map(|k| bulk(k)?.ok_or_else(|| unavailable("SCAN returned a null key")))
                        .collect::<Result<Vec<_>>>()?,
                    other => return Err(unavailable(&format!("SCAN returned {other:?}"))),
                };
                let cursor = match parts.pop() {
                    Some(Reply::Bulk(cursor)) => std::str::from_utf8(&cursor)
                        .ok()
                        .and_then(|c| c.parse::<u64>().ok())
                        .filter(|c| *c <= SCAN_CURSOR_MASK)
                        .ok_or_else(|| unavailable("SCAN returned a cursor Keyway cannot carry"))?,
                    other => return Err(unavailable(&format!("SCAN returned {other:?}"))),
                };
                Ok(ScanPage { cursor, keys })
            }
            other => Err(unexpected(&other)),
        }
    }
}
