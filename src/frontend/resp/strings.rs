//! String commands: GET/SET and their variants, multi-key MGET/MSET, counters.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::commands::StringCmd;
use super::requests::{GetEx, Set, SetEx};
use super::{not_an_integer, parse_i64, wrong_arity, CmdResult, RespSession};
use crate::backend::BackendError;
use crate::op::{
    Arith, ArithOutcome, Expiry, ExpiryUpdate, Store, StoreMode, StoreOutcome, StoreStatus,
};
use crate::router::RouteError;

impl RespSession {
    async fn mget(&self, args: &[Bytes]) -> CmdResult {
        let items = match self.shared.resp_router.get(self.db, &args[1..]).await {
            // MGET answers nil for a key holding a collection (the
            // single-key read says WRONGTYPE, as GET must).
            Err(RouteError::Backend(BackendError::WrongType)) if args.len() == 2 => vec![None],
            items => items?,
        };
        self.shared.stats.record_reads(&items);
        Ok(Reply::Array(
            items
                .into_iter()
                .map(|i| Reply::bulk_or_null(i.map(|i| i.value)))
                .collect(),
        ))
    }

    pub(super) async fn string_command(
        &mut self,
        cmd: StringCmd,
        name: &'static str,
        args: &[Bytes],
    ) -> CmdResult {
        let router = &self.shared.resp_router;
        let db = self.db;
        match cmd {
            StringCmd::Get => {
                let items = router.get(db, &args[1..2]).await?;
                self.shared.stats.record_reads(&items);
                Ok(Reply::bulk_or_null(
                    items.into_iter().next().flatten().map(|i| i.value),
                ))
            }
            StringCmd::MGet => self.mget(args).await,
            StringCmd::Set => self.set(Set::parse(args)?).await,
            StringCmd::SetNx => self.setnx(args).await,
            StringCmd::SetEx | StringCmd::PSetEx => {
                self.setex(SetEx::parse(cmd, name, args)?).await
            }
            StringCmd::GetDel => Ok(Reply::bulk_or_null(
                router.get_and_delete(db, &args[1]).await?.map(|i| i.value),
            )),
            StringCmd::GetEx => self.getex(GetEx::parse(args)?).await,
            StringCmd::MSet | StringCmd::MSetNx => self.mset(cmd, name, args).await,
            StringCmd::Incr | StringCmd::Decr | StringCmd::IncrBy | StringCmd::DecrBy => {
                self.incr(cmd, args).await
            }
            StringCmd::Append => {
                let store = Store::new(
                    args[1].clone(),
                    args[2].clone(),
                    StoreMode::AppendOrCreate,
                    ExpiryUpdate::Keep,
                );
                Ok(Reply::Integer(router.store(db, store).await?.len as i64))
            }
            StringCmd::GetSet => self.getset(args).await,
            StringCmd::GetRange => self.getrange(args).await,
            StringCmd::SetRange => self.setrange(args).await,
            StringCmd::StrLen => {
                let items = router.get(db, &args[1..2]).await?;
                Ok(Reply::Integer(
                    items[0].as_ref().map_or(0, |i| i.value.len() as i64),
                ))
            }
        }
    }

    /// `SETNX key value`
    async fn setnx(&self, args: &[Bytes]) -> CmdResult {
        let never = ExpiryUpdate::Set(Expiry::Never);
        let store = Store::new(args[1].clone(), args[2].clone(), StoreMode::Add, never);
        let outcome = self.store(store).await?;
        Ok(Reply::Integer(i64::from(
            outcome.status == StoreStatus::Stored,
        )))
    }

    /// `SETEX key seconds value`, `PSETEX key ms value`
    async fn setex(&self, SetEx { key, expiry, value }: SetEx) -> CmdResult {
        let expiry = ExpiryUpdate::Set(expiry);
        self.store(Store::new(key, value, StoreMode::Set, expiry))
            .await?;
        Ok(Reply::ok())
    }

    /// `MSET` / `MSETNX key value [key value ...]`
    async fn mset(&self, cmd: StringCmd, name: &'static str, args: &[Bytes]) -> CmdResult {
        let router = &self.shared.resp_router;
        let db = self.db;
        if args.len() % 2 == 0 {
            return Err(wrong_arity(name));
        }
        let pairs: Vec<(Bytes, Bytes)> = args[1..]
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        if cmd == StringCmd::MSet {
            router.store_many(db, pairs).await?;
            return Ok(Reply::ok());
        }
        match router.store_all_if_absent(db, pairs).await? {
            Some(stored) => Ok(Reply::Integer(i64::from(stored))),
            None => Err(Reply::error(
                "ERR MSETNX keys must all route to the same backend",
            )),
        }
    }

    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`
    async fn incr(&self, cmd: StringCmd, args: &[Bytes]) -> CmdResult {
        let router = &self.shared.resp_router;
        let db = self.db;
        let delta = match cmd {
            StringCmd::Incr => 1,
            StringCmd::Decr => -1,
            StringCmd::IncrBy => parse_i64(&args[2])?,
            _ => parse_i64(&args[2])?
                .checked_neg()
                .ok_or_else(|| Reply::error("ERR decrement would overflow"))?,
        };
        match router.arith(db, &args[1], Arith::Redis(delta)).await? {
            ArithOutcome::Signed(n) => Ok(Reply::Integer(n)),
            _ => Err(not_an_integer()),
        }
    }

    /// `GETSET key value`: SET ... GET, the expiry dropped
    async fn getset(&self, args: &[Bytes]) -> CmdResult {
        // SET ... GET: the old value back, the expiry dropped.
        let never = ExpiryUpdate::Set(Expiry::Never);
        let mut store = Store::new(args[1].clone(), args[2].clone(), StoreMode::Set, never);
        store.return_old = true;
        let old = self.store(store).await?.old;
        Ok(Reply::bulk_or_null(old.map(|item| item.value)))
    }

    /// `GETRANGE key start end`
    async fn getrange(&self, args: &[Bytes]) -> CmdResult {
        let router = &self.shared.resp_router;
        let db = self.db;
        let (start, end) = (parse_i64(&args[2])?, parse_i64(&args[3])?);
        let items = router.get(db, &args[1..2]).await?;
        let value = items[0]
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default();
        Ok(Reply::Bulk(substring(&value, start, end)))
    }

    /// SETRANGE: the value padded with zero bytes to `offset` and
    /// overwritten there, its expiry kept; a read then a CAS write (retried
    /// when another client wrote in between), as the stores have no ranges.
    async fn setrange(&self, args: &[Bytes]) -> CmdResult {
        const MAX: i64 = 512 * 1024 * 1024;
        let offset = parse_i64(&args[2])?;
        if offset < 0 {
            return Err(Reply::error("ERR offset is out of range"));
        }
        let patch = &args[3];
        let too_long =
            || Reply::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        for _ in 0..16 {
            let current = self
                .shared
                .resp_router
                .get(self.db, &args[1..2])
                .await?
                .remove(0);
            let old_len = current.as_ref().map_or(0, |item| item.value.len());
            if patch.is_empty() {
                return Ok(Reply::Integer(old_len as i64));
            }
            if offset.saturating_add(patch.len() as i64) > MAX {
                return Err(too_long());
            }
            let offset = offset as usize;
            let mut value = current
                .as_ref()
                .map_or_else(Vec::new, |item| item.value.to_vec());
            if value.len() < offset + patch.len() {
                value.resize(offset + patch.len(), 0);
            }
            value[offset..offset + patch.len()].copy_from_slice(patch);
            let len = value.len() as i64;
            let (mode, flags) = match &current {
                Some(item) => (StoreMode::Cas(item.cas), item.flags),
                None => (StoreMode::Add, 0),
            };
            let mut store = Store::new(
                args[1].clone(),
                Bytes::from(value),
                mode,
                ExpiryUpdate::Keep,
            );
            store.flags = flags;
            if self.store(store).await?.status == StoreStatus::Stored {
                return Ok(Reply::Integer(len));
            }
        }
        Err(Reply::error(
            "ERR the value kept changing under SETRANGE; try again",
        ))
    }

    /// Stores through the router, counting the write.
    async fn store(&self, store: Store) -> Result<StoreOutcome, Reply> {
        self.shared.stats.sets.add(1);
        Ok(self.shared.resp_router.store(self.db, store).await?)
    }

    /// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`
    async fn set(&self, set: Set) -> CmdResult {
        let mut store = Store::new(set.key, set.value, set.mode, set.expiry);
        store.return_old = set.get;
        let outcome = self.store(store).await?;
        Ok(match (set.get, outcome.status) {
            (true, _) => Reply::bulk_or_null(outcome.old.map(|i| i.value)),
            (false, StoreStatus::Stored) => Reply::ok(),
            (false, _) => Reply::Null,
        })
    }

    /// `GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]`
    async fn getex(&self, getex: GetEx) -> CmdResult {
        let router = &self.shared.resp_router;
        let key = std::slice::from_ref(&getex.key);
        let items = match getex.expiry {
            None => router.get(self.db, key).await?,
            Some(expiry) => router.get_and_touch(self.db, key, expiry).await?,
        };
        Ok(Reply::bulk_or_null(
            items.into_iter().next().flatten().map(|i| i.value),
        ))
    }
}

/// GETRANGE's substring, with redis's rules for negative and outlying ends.
fn substring(value: &Bytes, start: i64, end: i64) -> Bytes {
    let len = value.len() as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return Bytes::new();
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 {
        (len + end).max(0)
    } else {
        end.min(len - 1)
    };
    if start > end {
        return Bytes::new();
    }
    value.slice(start as usize..=end as usize)
}
