//! The change log: how Keyways that share a SQL table learn of each other's
//! writes, so that a per-host tier in front of the table (a write-through
//! policy's memory cache) never serves a value another host has replaced or
//! deleted.
//!
//! Every write transaction the [`writer`](super::writer) commits also adds one
//! row per changed key to `{table}_changes`, numbered with a counter it bumps
//! just before committing. The counter is one row, so its lock orders the
//! writing transactions of every process: a reader that sees number N has
//! seen every change numbered below N (a plain sequence or auto-increment
//! would not promise that: their numbers are taken at insert time and commit
//! in any order). A [`ChangeFeed`] polls the log every `poll_interval_ms` and
//! broadcasts what it read, with the instant the poll started, to the tiers
//! that subscribed: a tier that has applied a poll begun at `t` holds nothing
//! older than any write acknowledged before `t`.
//!
//! Why polling and not PostgreSQL's LISTEN/NOTIFY: one mechanism for all
//! three databases (MySQL/MariaDB and SQLite have no notifications); a hard
//! staleness bound (a silent network drop stops the polls, and so the tier's
//! trust, within `max_staleness_ms`, where a dead LISTEN connection can go
//! unnoticed); and NOTIFY takes a database-wide lock at every notifying
//! commit. The cost is one indexed range query per interval per Keyway.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sqlx::{AnyConnection, Row};
use tokio::sync::broadcast;

use super::dialect::Dialect;
use super::writer::{Shared, Write};
use crate::op::{now_ms, Db};

tokio::task_local! {
    /// Who is writing: a tier sets this around its writes to the durable
    /// store, so that it can tell its own changes from others' in the log.
    pub static WRITE_ORIGIN: u64;
}

/// The origin the current task writes as (0: nobody in particular).
pub fn current_origin() -> u64 {
    WRITE_ORIGIN.try_with(|origin| *origin).unwrap_or(0)
}

/// Log entries kept for late pollers; a feed that could not poll for
/// longer than [`GAP_AFTER`] tells its tiers to start afresh.
const RETENTION: Duration = Duration::from_secs(300);
const GAP_AFTER: Duration = Duration::from_secs(60);
/// Entries read per poll query; more are read by further queries.
const PAGE: i64 = 10_000;
/// Polls kept for a slow tier before it must start afresh.
const FEED_CAPACITY: usize = 1024;
/// Entries per insert statement (6 parameters each).
const INSERT_ROWS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Key = 0,
    FlushDb = 1,
    FlushAll = 2,
}

/// One logged change: a key of `db` (or all of `db`, or everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub db: Db,
    pub key: Bytes,
    pub origin: u64,
}

/// What one poll read. `gap`: changes may have been missed before it (the
/// feed just started, or could not poll for a long time); a tier that gets
/// it drops everything it holds.
#[derive(Debug)]
pub struct Poll {
    pub started: Instant,
    pub changes: Vec<Change>,
    pub gap: bool,
}

/// The changes `write` makes, written as `origin`.
pub(super) fn changes_of(write: &Write, origin: u64, max_key: usize, out: &mut Vec<Change>) {
    let mut key = |db: Db, key: &Bytes| {
        if key.len() <= max_key {
            out.push(Change {
                kind: ChangeKind::Key,
                db,
                key: key.clone(),
                origin,
            });
        }
    };
    match write {
        Write::Store(db, store) => key(*db, &store.key),
        Write::StoreAllIfAbsent(db, pairs) => pairs.iter().for_each(|(k, _)| key(*db, k)),
        Write::Delete(db, keys) | Write::Touch(db, keys, _) => {
            keys.iter().for_each(|k| key(*db, k))
        }
        Write::GetAndDelete(db, k) | Write::Arith(db, k, _) | Write::Expire(db, k, ..) => {
            key(*db, k)
        }
        Write::Flush(db) => out.push(Change {
            kind: if db.is_some() {
                ChangeKind::FlushDb
            } else {
                ChangeKind::FlushAll
            },
            db: db.unwrap_or(0),
            key: Bytes::new(),
            origin,
        }),
    }
}

/// Adds `changes` to the log inside the writing transaction `conn`, as its
/// last statements before the commit (the counter's lock is held until then).
pub(super) async fn log(
    shared: &Shared,
    conn: &mut AnyConnection,
    changes: &mut Vec<Change>,
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(changes.len());
    changes.retain(|c| seen.insert((c.kind as u8, c.db, c.key.clone(), c.origin)));
    let st = &shared.statements.changes;
    sqlx::query(&st.bump).execute(&mut *conn).await?;
    let seq: i64 = sqlx::query(&st.current)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let at = now_ms() as i64;
    for chunk in changes.chunks(INSERT_ROWS) {
        let sql = st.insert(chunk.len());
        let mut query = sqlx::query(&sql);
        for change in chunk {
            query = query
                .bind(seq)
                .bind(change.kind as i64)
                .bind(i64::from(change.db))
                .bind(&change.key[..])
                .bind(change.origin as i64);
            query = query.bind(at);
        }
        query.execute(&mut *conn).await?;
    }
    shared
        .changes_logged
        .fetch_add(changes.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// Deletes log entries older than [`RETENTION`].
pub(super) async fn trim(shared: &Shared) {
    let before = now_ms().saturating_sub(RETENTION.as_millis() as u64) as i64;
    let result = sqlx::query(&shared.statements.changes.trim)
        .bind(before)
        .execute(&shared.pool)
        .await;
    if let Err(error) = result {
        tracing::warn!(backend = shared.dialect.name(), %error, "trimming the change log failed");
    }
}

/// A SQL backend's change feed: started by the first tier that subscribes,
/// stopped with the backend.
#[derive(Default)]
pub struct ChangeFeed {
    sender: OnceLock<broadcast::Sender<Arc<Poll>>>,
    pub figures: FeedFigures,
}

/// What `/metrics` and INFO show of a feed.
#[derive(Default)]
pub struct FeedFigures {
    /// True while polls succeed.
    pub up: AtomicBool,
    pub polls: AtomicU64,
    pub poll_errors: AtomicU64,
    /// Entries read (every origin's).
    pub changes_read: AtomicU64,
}

impl ChangeFeed {
    /// A receiver of every poll from now on; the first call starts polling
    /// `shared`'s log every `interval` until `stop` is cancelled.
    pub fn subscribe(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        interval: Duration,
        stop: &tokio_util::sync::CancellationToken,
    ) -> broadcast::Receiver<Arc<Poll>> {
        let sender = self.sender.get_or_init(|| {
            let (sender, _) = broadcast::channel(FEED_CAPACITY);
            tokio::spawn(poll_loop(
                shared.clone(),
                self.clone(),
                sender.clone(),
                interval,
                stop.clone(),
            ));
            sender
        });
        sender.subscribe()
    }

    pub fn started(&self) -> bool {
        self.sender.get().is_some()
    }
}

async fn poll_loop(
    shared: Arc<Shared>,
    feed: Arc<ChangeFeed>,
    sender: broadcast::Sender<Arc<Poll>>,
    interval: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<i64> = None;
    let mut last_success: Option<Instant> = None;
    let figures = &feed.figures;
    let mut down_logged = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        let started = Instant::now();
        let limit = interval.max(Duration::from_secs(2));
        let result = tokio::time::timeout(limit, poll_once(&shared, &mut last))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", limit.as_millis())));
        figures.polls.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok((changes, mut gap)) => {
                gap |= last_success.is_none_or(|at| started - at > GAP_AFTER);
                last_success = Some(started);
                figures
                    .changes_read
                    .fetch_add(changes.len() as u64, Ordering::Relaxed);
                if !figures.up.swap(true, Ordering::Relaxed) && down_logged {
                    tracing::info!(
                        backend = shared.dialect.name(),
                        "change feed up: tiers in front of this store serve reads again"
                    );
                }
                // No receivers is fine: a tier subscribes again on reload.
                let _ = sender.send(Arc::new(Poll {
                    started,
                    changes,
                    gap,
                }));
            }
            Err(error) => {
                figures.poll_errors.fetch_add(1, Ordering::Relaxed);
                figures.up.store(false, Ordering::Relaxed);
                if !down_logged {
                    down_logged = true;
                    tracing::warn!(
                        backend = shared.dialect.name(),
                        %error,
                        "change feed down: reads skip the tiers in front of this store and go to it directly until it answers"
                    );
                }
                continue;
            }
        }
        down_logged = false;
    }
}

/// Reads the entries after `last` (creating the log first if it is missing).
/// The first call only learns where the log stands, and reports a gap.
async fn poll_once(shared: &Shared, last: &mut Option<i64>) -> Result<(Vec<Change>, bool), String> {
    let st = &shared.statements.changes;
    let Some(after) = *last else {
        shared.create_schema().await.map_err(|e| e.to_string())?;
        let seq: i64 = sqlx::query(&st.current)
            .fetch_one(&shared.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| e.to_string())?;
        *last = Some(seq);
        return Ok((Vec::new(), true));
    };
    let mut after = after;
    let mut changes = Vec::new();
    let mut gap = false;
    loop {
        let rows = sqlx::query(&st.poll)
            .bind(after)
            .bind(PAGE)
            .fetch_all(&shared.pool)
            .await
            .map_err(|e| e.to_string())?;
        let full = rows.len() as i64 == PAGE;
        let mut page_last = after;
        for row in &rows {
            let (seq, change) = change_of(shared.dialect, row).map_err(|e| e.to_string())?;
            page_last = seq;
            changes.push(change);
        }
        if !full {
            after = page_last;
            break;
        }
        // The last seq of a full page may continue on the next: read it
        // again (applying a change twice is harmless), unless the whole page
        // was that one seq, which cannot be paged: then start afresh.
        if rows.first().and_then(|r| r.try_get::<i64, _>(0).ok()) == Some(page_last) {
            gap = true;
            after = page_last;
        } else {
            after = page_last - 1;
        }
    }
    *last = Some(after);
    Ok((changes, gap))
}

fn change_of(dialect: Dialect, row: &sqlx::any::AnyRow) -> Result<(i64, Change), sqlx::Error> {
    let seq: i64 = row.try_get(0)?;
    let kind = match row.try_get::<i64, _>(1)? {
        1 => ChangeKind::FlushDb,
        2 => ChangeKind::FlushAll,
        _ => ChangeKind::Key,
    };
    let db: i64 = row.try_get(2)?;
    let key = if dialect == Dialect::MySql {
        let text: String = row.try_get(3)?;
        hex::decode(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?
    } else {
        row.try_get::<Vec<u8>, _>(3)?
    };
    let origin: i64 = row.try_get(4)?;
    Ok((
        seq,
        Change {
            kind,
            db: db as Db,
            key: Bytes::from(key),
            origin: origin as u64,
        },
    ))
}
