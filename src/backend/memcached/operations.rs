//! The [`Backend`] operations on a memcached pool, as meta commands to the
//! server each key's placement names.

use bytes::{BufMut, Bytes, BytesMut};
use keyway_protocol::memcache::Response;

use super::{
    call, exptime, flag, item, meta, number, unavailable, unexpected, unsupported, wire_key,
    MemcachedBackend, WireKey,
};
use crate::backend::pipeline::Expect;
use crate::backend::{Backend, BackendError, Result};
use crate::op::{
    now_ms, Arith, ArithOutcome, Db, ExpireCondition, Expiry, ExpiryUpdate, Item, ScanPage, Store,
    StoreMode, StoreOutcome, StoreStatus, Ttl,
};

/// The `ms` flags for `store`: its mode, client flags, TTL (the one
/// `before` had, for KEEPTTL; none for appends, which keep it) and CAS.
fn ms_flags(store: &Store, before: Option<&Item>) -> Vec<String> {
    let (mode, keeps_expiry) = match store.mode {
        StoreMode::Set | StoreMode::Cas(_) => ("MS", false),
        StoreMode::Add => ("ME", false),
        StoreMode::Replace => ("MR", false),
        StoreMode::Append | StoreMode::AppendOrCreate => ("MA", true),
        StoreMode::Prepend => ("MP", true),
    };
    let mut flags = vec![mode.to_string(), format!("F{}", store.flags)];
    if !keeps_expiry {
        let expiry = match store.expiry {
            ExpiryUpdate::Set(expiry) => expiry,
            ExpiryUpdate::Keep => before.map_or(Expiry::Never, |item| item.expiry),
        };
        flags.push(format!("T{}", exptime(expiry)));
    }
    if let StoreMode::Cas(cas) = store.mode {
        flags.push(format!("C{cas}"));
    }
    flags
}

pub(super) fn store_status(response: Response) -> Result<StoreStatus> {
    match response {
        Response::Meta { code, .. } => match &code {
            b"HD" => Ok(StoreStatus::Stored),
            b"NS" => Ok(StoreStatus::NotStored),
            b"EX" => Ok(StoreStatus::Exists),
            b"NF" => Ok(StoreStatus::NotFound),
            _ => Err(unexpected(Response::Meta {
                code,
                flags: Vec::new(),
                data: None,
            })),
        },
        other => Err(unexpected(other)),
    }
}

impl Backend for MemcachedBackend {
    async fn get(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        self.get_items(db, keys, None).await
    }

    async fn get_and_touch(
        &self,
        db: Db,
        keys: &[Bytes],
        expiry: Expiry,
    ) -> Result<Vec<Option<Item>>> {
        let mut items = self.get_items(db, keys, Some(expiry)).await?;
        for item in items.iter_mut().flatten() {
            item.expiry = expiry;
        }
        Ok(items)
    }

    async fn get_and_delete(&self, db: Db, key: &Bytes) -> Result<Option<Item>> {
        let wire = wire_key(db, key)?;
        let mut request = BytesMut::new();
        meta(&mut request, "mg", &wire, &["v", "f", "c", "t"]);
        meta(&mut request, "md", &wire, &[]);
        let mut replies = self.call_one(&wire, request, 2).await?;
        item(&wire, replies.remove(0))
    }

    async fn store(&self, db: Db, store: Store) -> Result<StoreOutcome> {
        let wire = wire_key(db, &store.key)?;
        if wire.long.is_some() && store.mode == StoreMode::Prepend {
            return self.prepend_long(db, store).await;
        }
        let before = if store.return_old || store.expiry == ExpiryUpdate::Keep {
            self.get_items(db, std::slice::from_ref(&store.key), None)
                .await?
                .remove(0)
        } else {
            None
        };
        let flags = ms_flags(&store, before.as_ref());
        let mut request = BytesMut::new();
        // Appends add to the stored bytes, after a long key's header; any
        // other store writes the whole value, header first.
        let data = match store.mode {
            StoreMode::Append | StoreMode::AppendOrCreate => store.value.clone(),
            _ => wire.stored_value(&store.value),
        };
        let len = data.len().to_string();
        let mut all: Vec<&str> = vec![&len];
        all.extend(flags.iter().map(String::as_str));
        meta(&mut request, "ms", &wire, &all);
        request.put_slice(&data);
        request.put_slice(b"\r\n");
        let mut count = 1;
        if store.mode == StoreMode::AppendOrCreate {
            // redis APPEND creates a missing key: append, else add, then read
            // the resulting size (memcached 1.6.18 does not autovivify appends).
            let created = wire.stored_value(&store.value);
            let created_len = created.len().to_string();
            meta(&mut request, "ms", &wire, &[&created_len, "ME", "T0"]);
            request.put_slice(&created);
            request.put_slice(b"\r\n");
            meta(&mut request, "mg", &wire, &["s"]);
            count = 3;
        }
        let mut replies = self.call_one(&wire, request, count).await?;
        let mut status = store_status(replies.remove(0))?;
        if count == 3 && status == StoreStatus::NotStored {
            status = store_status(replies.remove(0))?;
        }
        let len = match replies.pop() {
            Some(Response::Meta { flags, .. }) => number::<usize>(flag(&flags, b's'))
                .unwrap_or(0)
                .saturating_sub(wire.header_len()),
            _ => store.value.len(),
        };
        Ok(StoreOutcome {
            status,
            old: before.filter(|_| store.return_old),
            len,
        })
    }

    async fn store_all_if_absent(&self, _db: Db, _pairs: Vec<(Bytes, Bytes)>) -> Result<bool> {
        Err(unsupported("an atomic MSETNX"))
    }

    async fn delete(&self, db: Db, keys: &[Bytes]) -> Result<Vec<bool>> {
        let deleted = |_: &WireKey, reply| match reply {
            Response::Meta { code, .. } => Ok(&code == b"HD"),
            other => Err(unexpected(other)),
        };
        self.per_key(db, keys, "md", &[], deleted, None).await
    }

    async fn arith(&self, db: Db, key: &Bytes, arith: Arith) -> Result<ArithOutcome> {
        let wire = wire_key(db, key)?;
        if wire.long.is_some() {
            return self
                .rewrite_long(db, key, |current| {
                    let current = current.map(|item| &item.value[..]);
                    Ok(match crate::backend::numeric::apply(arith, current)? {
                        Some((value, outcome)) => (Some(value), outcome),
                        None => (None, ArithOutcome::NotFound),
                    })
                })
                .await;
        }
        let (mode, delta, create) = match arith {
            Arith::Memcache { delta, incr } => (if incr { "MI" } else { "MD" }, delta, None),
            // redis counts an absent key as 0; memcached creates it with J.
            Arith::Redis(delta) if delta >= 0 => ("MI", delta as u64, Some(delta as u64)),
            Arith::Redis(delta) => ("MD", delta.unsigned_abs(), None),
        };
        let delta = format!("D{delta}");
        let mut flags = vec![mode, &delta, "v"];
        let initial;
        if let Some(value) = create {
            initial = format!("J{value}");
            flags.extend(["N0", &initial]);
        }
        let mut request = BytesMut::new();
        meta(&mut request, "ma", &wire, &flags);
        match self.call_one(&wire, request, 1).await?.remove(0) {
            Response::Meta { code, data, .. } if &code == b"VA" => {
                let value: u64 =
                    number(data.as_deref()).ok_or_else(|| unavailable("ma returned no number"))?;
                match arith {
                    Arith::Memcache { .. } => Ok(ArithOutcome::Unsigned(value)),
                    Arith::Redis(_) => i64::try_from(value)
                        .map(ArithOutcome::Signed)
                        .map_err(|_| BackendError::Overflow),
                }
            }
            Response::Meta { code, .. } if &code == b"NF" => match arith {
                Arith::Memcache { .. } => Ok(ArithOutcome::NotFound),
                Arith::Redis(_) => Err(BackendError::Unsupported(
                    "a negative counter is not possible on a memcached backend".into(),
                )),
            },
            Response::ClientError(why) if why.starts_with(b"cannot increment") => match arith {
                Arith::Memcache { .. } => Err(BackendError::NotANumber),
                Arith::Redis(_) => Err(BackendError::NotAnInteger),
            },
            other => Err(unexpected(other)),
        }
    }

    async fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Result<bool> {
        let wire = wire_key(db, key)?;
        if condition != ExpireCondition::Always {
            let current = match self.ttl_of(&wire).await? {
                Ttl::Missing => return Ok(false),
                Ttl::Persistent => Expiry::Never,
                Ttl::Millis(ms) => Expiry::At(now_ms() + ms),
            };
            if !condition.holds(current, expiry) {
                return Ok(false);
            }
        }
        let mut request = BytesMut::new();
        meta(
            &mut request,
            "mg",
            &wire,
            &[&format!("T{}", exptime(expiry))],
        );
        match self.call_one(&wire, request, 1).await?.remove(0) {
            Response::Meta { code, .. } => Ok(&code == b"HD"),
            other => Err(unexpected(other)),
        }
    }

    async fn ttl(&self, db: Db, key: &Bytes) -> Result<Ttl> {
        self.ttl_of(&wire_key(db, key)?).await
    }

    async fn scan(
        &self,
        _db: Db,
        _cursor: u64,
        _pattern: Option<&[u8]>,
        _count: usize,
    ) -> Result<ScanPage> {
        Err(unsupported("listing keys (KEYS, SCAN)"))
    }

    async fn len(&self, _db: Db) -> Result<usize> {
        Err(unsupported("counting keys (DBSIZE)"))
    }

    async fn flush(&self, db: Option<Db>) -> Result<()> {
        if db.is_some_and(|db| db != 0) {
            return Err(unsupported("flushing one redis database other than 0"));
        }
        for pool in &self.pools {
            let mut request = BytesMut::new();
            request.put_slice(b"flush_all\r\n");
            match call(pool, request, Expect::One).await?.remove(0) {
                Response::Ok => {}
                other => return Err(unexpected(other)),
            }
        }
        Ok(())
    }
}
