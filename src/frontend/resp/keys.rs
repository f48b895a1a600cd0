//! Commands on keys (items.rs has those that carry or describe a whole
//! item): deletion, existence, expiry, listing and flushing.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::commands::KeyCmd;
use super::requests::{check_flush_mode, Expire, Scan};
use super::{CmdResult, RespSession};
use crate::backend::BackendError;
use crate::op::{ExpireCondition, Expiry, Ttl};
use crate::router::RouteError;

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
            KeyCmd::Exists | KeyCmd::Touch => self.exists(args).await,
            KeyCmd::Expire | KeyCmd::PExpire | KeyCmd::ExpireAt | KeyCmd::PExpireAt => {
                let expire = Expire::parse(cmd, name, args)?;
                let changed = router
                    .expire(db, &expire.key, expire.at, expire.condition)
                    .await?;
                Ok(Reply::Integer(i64::from(changed)))
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
            KeyCmd::Scan => self.scan(Scan::parse(args)?).await,
            KeyCmd::DbSize => Ok(Reply::Integer(router.len(db).await? as i64)),
            KeyCmd::FlushDb | KeyCmd::FlushAll => {
                check_flush_mode(args)?;
                router.flush((cmd == KeyCmd::FlushDb).then_some(db)).await?;
                Ok(Reply::ok())
            }
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

    /// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`
    /// EXISTS and TOUCH: how many of the keys are there (a key named
    /// twice counts twice).
    async fn exists(&self, args: &[Bytes]) -> CmdResult {
        let router = &self.shared.resp_router;
        let db = self.db;
        let present = match router.get(db, &args[1..]).await {
            Ok(items) => items.iter().filter(|i| i.is_some()).count(),
            // A collection on a memory route among keys on other routes:
            // asked key by key (the memory route answers for a collection
            // alone).
            Err(RouteError::Backend(BackendError::WrongType)) => {
                let mut present = 0;
                for key in &args[1..] {
                    if router.ttl(db, key).await? != Ttl::Missing {
                        present += 1;
                    }
                }
                present
            }
            Err(error) => return Err(error.into()),
        };
        Ok(Reply::Integer(present as i64))
    }

    async fn scan(&self, scan: Scan) -> CmdResult {
        let page = self
            .shared
            .resp_router
            .scan(self.db, scan.cursor, scan.pattern.as_deref(), scan.count)
            .await?;
        let mut keys = Vec::with_capacity(page.keys.len());
        for key in page.keys {
            if let Some(kind) = &scan.kind {
                if self.type_of(&key).await != kind[..] {
                    continue;
                }
            }
            keys.push(Reply::Bulk(key));
        }
        Ok(Reply::Array(vec![
            Reply::bulk(page.cursor.to_string()),
            Reply::Array(keys),
        ]))
    }
}
