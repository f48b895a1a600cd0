//! The write path: one task per SQL backend takes every queued write, runs as
//! many as are waiting in one transaction, commits, and only then answers
//! them. Fifty clients setting keys cost one commit (and, for plain sets, one
//! multi-row upsert) per batch instead of fifty.
//!
//! One writer also makes Keyway's own read-modify-write operations (add, cas,
//! incr, append...) atomic with respect to each other; row locks (`FOR
//! UPDATE`, SQLite's `BEGIN IMMEDIATE`) make them atomic against other
//! processes sharing the table.

use std::sync::Arc;

use bytes::Bytes;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tokio::sync::{mpsc, oneshot};

use super::changes;
use super::dialect::Dialect;
use super::encryption::{self, Keyring};
use super::table::Table;
use crate::backend::{numeric, Answer, BackendError, Call};
use crate::op::{
    now_ms, plan_store, Arith, ArithOutcome, Db, Expiry, ExpiryUpdate, Item, Store, StoreOutcome,
    StorePlan, StoreStatus,
};

/// Most writes one transaction takes; more wait for the next one.
pub const MAX_BATCH: usize = 256;
/// Rows per multi-row upsert statement (7 parameters each).
const UPSERT_ROWS: usize = 64;

/// A write for the writer task: any [`Call`] that writes or removes (reads
/// go to the pool directly), answered with the [`Answer`] it names.
pub struct Job {
    pub write: Call<'static>,
    /// Who wrote it, for the change log (see `changes::WRITE_ORIGIN`).
    pub origin: u64,
    pub reply: oneshot::Sender<Result<Answer, BackendError>>,
}

/// Runs until every sender is dropped.
pub async fn run(shared: Arc<Table>, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        match run_batch(&shared, &jobs).await {
            Ok(results) => {
                shared.batch_sizes.record(jobs.len());
                for (job, result) in jobs.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            // Nothing was committed. One bad write (a MySQL key too long,
            // say) must not fail its neighbours: retry each on its own.
            Err(_) if jobs.len() > 1 => {
                for job in jobs.drain(..) {
                    let result = match run_batch(&shared, std::slice::from_ref(&job)).await {
                        Ok(mut results) => {
                            shared.batch_sizes.record(1);
                            results.remove(0)
                        }
                        Err(error) => Err(shared.unavailable(error)),
                    };
                    let _ = job.reply.send(result);
                }
            }
            Err(error) => {
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(shared.unavailable(&error)));
                }
            }
        }
    }
}

/// One transaction for `writes`, logging the keys they change; the outer
/// error aborts it (nothing committed), the inner ones are per-write answers
/// (NOT_STORED is not an error, a non-numeric incr is).
async fn run_batch(
    shared: &Table,
    writes: &[Job],
) -> Result<Vec<Result<Answer, BackendError>>, sqlx::Error> {
    let begin = match shared.dialect {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres | Dialect::MySql => "BEGIN",
    };
    let mut tx = shared.pool.begin_with(begin).await?;
    let mut batch = Batch {
        shared,
        conn: &mut tx,
        pending: Vec::new(),
    };
    let mut results = Vec::with_capacity(writes.len());
    let mut changes = Vec::new();
    for job in writes {
        results.push(batch.apply(&job.write).await?);
        changes::changes_of(
            &job.write,
            job.origin,
            shared.dialect.max_key(),
            &mut changes,
        );
    }
    batch.flush_pending().await?;
    changes::log(shared, &mut tx, &mut changes).await?;
    tx.commit().await?;
    Ok(results)
}

/// A row to upsert: (db, key, value, flags, expires_ms, cas).
type Row6 = (i64, Bytes, Bytes, i64, i64, i64);

struct Batch<'a> {
    shared: &'a Table,
    conn: &'a mut AnyConnection,
    /// Plain sets not yet sent, coalesced into multi-row upserts.
    pending: Vec<Row6>,
}

type Applied = Result<Result<Answer, BackendError>, sqlx::Error>;

fn expires_ms(expiry: Expiry) -> i64 {
    match expiry {
        Expiry::Never => 0,
        Expiry::At(at) => at.max(1) as i64,
    }
}

fn item_of(
    row: &AnyRow,
    keyring: Option<&Keyring>,
    db: Db,
    key: &[u8],
) -> Result<Item, sqlx::Error> {
    let stored: Vec<u8> = row.try_get(0)?;
    let value = match keyring {
        Some(keyring) => keyring.open(db as i64, key, stored),
        None => encryption::refuse_sealed(stored),
    }
    .map_err(|why| sqlx::Error::Decode(why.into()))?;
    let flags: i64 = row.try_get(1)?;
    let expires: i64 = row.try_get(2)?;
    let cas: i64 = row.try_get(3)?;
    Ok(Item {
        value: Bytes::from(value),
        flags: flags as u32,
        cas: cas as u64,
        expiry: match expires {
            0 => Expiry::Never,
            at => Expiry::At(at as u64),
        },
    })
}

/// The live item in `key`'s row from `get` or `lock`, opened when sealed.
pub fn live_item(
    row: Option<AnyRow>,
    now: u64,
    keyring: Option<&Keyring>,
    db: Db,
    key: &[u8],
) -> Result<Option<Item>, sqlx::Error> {
    let Some(row) = row else { return Ok(None) };
    let item = item_of(&row, keyring, db, key)?;
    Ok((!item.expiry.is_expired_at(now)).then_some(item))
}

impl Batch<'_> {
    async fn apply(&mut self, write: &Call<'static>) -> Applied {
        if let Some(key) = self.too_long_key(write) {
            return Ok(Err(BackendError::Unsupported(format!(
                "a key of {} bytes is too long for a {} backend (at most {})",
                key.len(),
                self.shared.dialect.name(),
                self.shared.dialect.max_key()
            ))));
        }
        if let Call::Store { db, store } = write {
            // Neither reads nor returns the current item: it can join a
            // multi-row upsert.
            if store.is_plain_set() {
                return Ok(Ok(self.plain_set(*db, store)));
            }
        }
        // Anything else reads what earlier writes of this batch wrote.
        self.flush_pending().await?;
        match write {
            Call::Store { db, store } => self.store(*db, store).await,
            Call::StoreAllIfAbsent { db, pairs } => self.store_all_if_absent(*db, pairs).await,
            Call::Delete { db, keys } => {
                let mut existed = Vec::with_capacity(keys.len());
                for key in keys.iter() {
                    existed.push(self.take(*db, key).await?.is_some());
                }
                Ok(Ok(Answer::Existed(existed)))
            }
            Call::GetAndDelete { db, key } => Ok(Ok(Answer::Item(self.take(*db, key).await?))),
            Call::GetAndTouch { db, keys, expiry } => self.touch(*db, keys, *expiry).await,
            Call::Arith { db, key, arith } => self.arith(*db, key, *arith).await,
            Call::Expire {
                db,
                key,
                expiry,
                condition,
            } => {
                let changed = match self.lock(*db, key).await? {
                    Some(item) if condition.holds(item.expiry, *expiry) => {
                        self.set_expiry(*db, key, *expiry).await?;
                        true
                    }
                    _ => false,
                };
                Ok(Ok(Answer::Done(changed)))
            }
            Call::Flush { db } => self.flush(*db).await,
            // SqlBackend sends reads to the pool, never here.
            Call::Get { .. } | Call::Ttl { .. } | Call::Scan { .. } | Call::Len { .. } => Ok(Err(
                BackendError::Unsupported("internal: a read was queued to the SQL writer".into()),
            )),
        }
    }

    /// Sets the expiry of each live key; the items, with it.
    async fn touch(&mut self, db: Db, keys: &[Bytes], expiry: Expiry) -> Applied {
        let mut items = Vec::with_capacity(keys.len());
        for key in keys.iter() {
            let item = self.lock(db, key).await?.map(|mut item| {
                item.expiry = expiry;
                item
            });
            if item.is_some() {
                self.set_expiry(db, key, expiry).await?;
            }
            items.push(item);
        }
        Ok(Ok(Answer::Items(items)))
    }

    /// Empties one database of the table, or all of it.
    async fn flush(&mut self, db: Option<Db>) -> Applied {
        let st = &self.shared.statements;
        match db {
            Some(db) => {
                sqlx::query(&st.flush_db)
                    .bind(db as i64)
                    .execute(&mut *self.conn)
                    .await?;
            }
            None => {
                sqlx::query(&st.flush_all).execute(&mut *self.conn).await?;
            }
        }
        Ok(Ok(Answer::Flushed))
    }

    fn too_long_key<'w>(&self, write: &'w Call<'static>) -> Option<&'w Bytes> {
        let max = self.shared.dialect.max_key();
        write.keys().find(|key| key.len() > max)
    }

    fn plain_set(&mut self, db: Db, store: &Store) -> Answer {
        let ExpiryUpdate::Set(expiry) = store.expiry else {
            unreachable!("plain sets set their expiry")
        };
        let row = (
            db as i64,
            store.key.clone(),
            store.value.clone(),
            store.flags as i64,
            expires_ms(expiry),
            self.shared.new_cas(),
        );
        // An already-expired expiry (memcached's negative exptime) stores a
        // row no read can see, which the sweeper removes: the same as a delete.
        self.pending.push(row);
        Answer::Stored(StoreOutcome {
            status: StoreStatus::Stored,
            old: None,
            len: store.value.len(),
        })
    }

    /// Sends the coalesced plain sets. A key set twice in one batch keeps
    /// its last value (PostgreSQL refuses to upsert one row twice in a statement).
    async fn flush_pending(&mut self) -> Result<(), sqlx::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut self.pending);
        let mut seen = std::collections::HashSet::with_capacity(rows.len());
        rows.reverse();
        rows.retain(|row| seen.insert((row.0, row.1.clone())));
        rows.reverse();
        for chunk in rows.chunks(UPSERT_ROWS) {
            self.upsert(chunk).await?;
        }
        Ok(())
    }

    async fn upsert(&mut self, rows: &[Row6]) -> Result<(), sqlx::Error> {
        let sql = self.shared.statements.upsert(rows.len());
        let mut query = sqlx::query(&sql);
        // Sealed copies only when encrypting; plain values are bound as they are.
        let sealed: Vec<Vec<u8>> = match &self.shared.keyring {
            Some(keyring) => rows
                .iter()
                .map(|(db, key, value, ..)| keyring.seal(*db, key, value))
                .collect(),
            None => Vec::new(),
        };
        for (i, (db, key, value, flags, expires, cas)) in rows.iter().enumerate() {
            // Read from the value as written, before it is sealed.
            let owner = super::owners::tag(key, value, *flags);
            let value: &[u8] = sealed.get(i).map_or(&value[..], |sealed| &sealed[..]);
            query = query
                .bind(*db)
                .bind(&key[..])
                .bind(value)
                .bind(*flags)
                .bind(*expires)
                .bind(*cas)
                .bind(owner);
        }
        query.execute(&mut *self.conn).await?;
        Ok(())
    }

    /// The live item under `key`, its row locked until commit.
    async fn lock(&mut self, db: Db, key: &Bytes) -> Result<Option<Item>, sqlx::Error> {
        let row = sqlx::query(&self.shared.statements.lock)
            .bind(db as i64)
            .bind(&key[..])
            .fetch_optional(&mut *self.conn)
            .await?;
        live_item(row, now_ms(), self.shared.keyring.as_ref(), db, key)
    }

    async fn put(&mut self, db: Db, key: &Bytes, item: &Item) -> Result<(), sqlx::Error> {
        if item.expiry.is_expired_at(now_ms()) {
            return self.delete(db, key).await;
        }
        let row = (
            db as i64,
            key.clone(),
            item.value.clone(),
            item.flags as i64,
            expires_ms(item.expiry),
            item.cas as i64,
        );
        self.upsert(&[row]).await
    }

    async fn delete(&mut self, db: Db, key: &Bytes) -> Result<(), sqlx::Error> {
        sqlx::query(&self.shared.statements.delete)
            .bind(db as i64)
            .bind(&key[..])
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// Deletes `key`, returning its item if it was live.
    async fn take(&mut self, db: Db, key: &Bytes) -> Result<Option<Item>, sqlx::Error> {
        let item = self.lock(db, key).await?;
        self.delete(db, key).await?;
        Ok(item)
    }

    async fn set_expiry(&mut self, db: Db, key: &Bytes, expiry: Expiry) -> Result<(), sqlx::Error> {
        if expiry.is_expired_at(now_ms()) {
            return self.delete(db, key).await;
        }
        sqlx::query(&self.shared.statements.set_expiry)
            .bind(expires_ms(expiry))
            .bind(db as i64)
            .bind(&key[..])
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn store(&mut self, db: Db, store: &Store) -> Applied {
        let current = self.lock(db, &store.key).await?;
        let (value, flags, expiry) = match plan_store(store, current.as_ref(), Bytes::clone) {
            StorePlan::Write {
                value,
                flags,
                expiry,
            } => (value, flags, expiry),
            StorePlan::Refuse(status) => {
                let outcome = StoreOutcome::refused_showing(status, store, current);
                return Ok(Ok(Answer::Stored(outcome)));
            }
        };
        let len = value.len();
        let item = Item {
            value,
            flags,
            cas: self.shared.new_cas() as u64,
            expiry,
        };
        self.put(db, &store.key, &item).await?;
        Ok(Ok(Answer::Stored(StoreOutcome {
            status: StoreStatus::Stored,
            old: if store.return_old { current } else { None },
            len,
        })))
    }

    async fn store_all_if_absent(&mut self, db: Db, pairs: &[(Bytes, Bytes)]) -> Applied {
        for (key, _) in pairs {
            if self.lock(db, key).await?.is_some() {
                return Ok(Ok(Answer::Done(false)));
            }
        }
        for (key, value) in pairs {
            let item = Item {
                value: value.clone(),
                flags: 0,
                cas: self.shared.new_cas() as u64,
                expiry: Expiry::Never,
            };
            self.put(db, key, &item).await?;
        }
        Ok(Ok(Answer::Done(true)))
    }

    async fn arith(&mut self, db: Db, key: &Bytes, arith: Arith) -> Applied {
        let current = self.lock(db, key).await?;
        let (value, outcome) = match numeric::apply(arith, current.as_ref().map(|c| &c.value[..])) {
            Ok(Some(result)) => result,
            Ok(None) => return Ok(Ok(Answer::Arith(ArithOutcome::NotFound))),
            Err(error) => return Ok(Err(error)),
        };
        let (flags, expiry) = current.map_or((0, Expiry::Never), |c| (c.flags, c.expiry));
        let item = Item {
            value,
            flags,
            cas: self.shared.new_cas() as u64,
            expiry,
        };
        self.put(db, key, &item).await?;
        Ok(Ok(Answer::Arith(outcome)))
    }
}
