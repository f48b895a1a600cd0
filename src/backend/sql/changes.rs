//! The change log: how Keyways that share a SQL table learn of each other's
//! writes, so that a per-host tier in front of the table (a write-through
//! policy's memory cache) never serves a value another host has replaced or
//! deleted.
//!
//! Every write transaction the [`writer`](super::writer) commits also adds one
//! row to `{table}_changes` — the keys it changed, packed — numbered with a
//! counter it bumps just before committing. The counter is one row, so its lock orders the
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

use super::table::Table;
use crate::backend::Call;
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
/// Log rows (transactions) read per poll query; more are read by further queries.
const PAGE: i64 = 1_000;
/// Polls kept for a slow tier before it must start afresh.
const FEED_CAPACITY: usize = 1024;

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

/// The changes `write` makes, written as `origin` (keys too long for the
/// table are refused, so they change nothing).
pub(super) fn changes_of(
    write: &Call<'static>,
    origin: u64,
    max_key: usize,
    out: &mut Vec<Change>,
) {
    if let Call::Flush { db } = write {
        let kind = match db {
            Some(_) => ChangeKind::FlushDb,
            None => ChangeKind::FlushAll,
        };
        out.push(Change {
            kind,
            db: db.unwrap_or(0),
            key: Bytes::new(),
            origin,
        });
        return;
    }
    let Some(db) = write.db() else {
        return;
    };
    out.extend(
        write
            .keys()
            .filter(|key| key.len() <= max_key)
            .map(|key| Change {
                kind: ChangeKind::Key,
                db,
                key: key.clone(),
                origin,
            }),
    );
}

/// Adds `changes` to the log inside the writing transaction `conn`, as its
/// last statements before the commit (the counter's lock is held until then).
pub(super) async fn log(
    shared: &Table,
    conn: &mut AnyConnection,
    changes: &mut Vec<Change>,
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(changes.len());
    changes.retain(|c| seen.insert((c.kind as u8, c.db, c.key.clone(), c.origin)));
    let st = &shared.statements.changes;
    if let Some(bump) = &st.bump {
        sqlx::query(bump).execute(&mut *conn).await?;
    }
    sqlx::query(&st.insert)
        .bind(pack(changes))
        .bind(now_ms() as i64)
        .execute(&mut *conn)
        .await?;
    shared
        .changes_logged
        .fetch_add(changes.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// A transaction's changes as one blob: per change its kind and db (a byte
/// each), origin (8 bytes), key length (4 bytes, little-endian) and key.
fn pack(changes: &[Change]) -> Vec<u8> {
    let size = changes.iter().map(|c| 14 + c.key.len()).sum();
    let mut out = Vec::with_capacity(size);
    for change in changes {
        out.push(change.kind as u8);
        out.push(change.db);
        out.extend_from_slice(&change.origin.to_le_bytes());
        out.extend_from_slice(&(change.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&change.key);
    }
    out
}

/// The changes in a blob [`pack`] made; `None` if it is not one.
fn unpack(blob: &[u8], out: &mut Vec<Change>) -> Option<()> {
    let mut rest = blob;
    while !rest.is_empty() {
        let (head, tail) = rest.split_at_checked(14)?;
        let kind = match head[0] {
            0 => ChangeKind::Key,
            1 => ChangeKind::FlushDb,
            2 => ChangeKind::FlushAll,
            _ => return None,
        };
        let origin = u64::from_le_bytes(head[2..10].try_into().ok()?);
        let len = u32::from_le_bytes(head[10..14].try_into().ok()?) as usize;
        let (key, tail) = tail.split_at_checked(len)?;
        out.push(Change {
            kind,
            db: head[1],
            key: Bytes::copy_from_slice(key),
            origin,
        });
        rest = tail;
    }
    Some(())
}

/// Where the log stood at past sweeps, so that entries older than
/// [`RETENTION`] can be deleted by number (the log has no time index: one
/// index fewer on every write).
#[derive(Default)]
pub(super) struct TrimClock(parking_lot::Mutex<std::collections::VecDeque<(Instant, i64)>>);

/// Notes where the log stands and deletes the entries written before the
/// oldest mark that is at least [`RETENTION`] old. Runs with the sweeper.
pub(super) async fn trim(shared: &Table, clock: &TrimClock) {
    let st = &shared.statements.changes;
    let now = Instant::now();
    let current = sqlx::query(&st.current).fetch_one(&shared.pool).await;
    // The database is down: the sweep after will do.
    let Ok(seq) = current.and_then(|row| row.try_get::<i64, _>(0)) else {
        return;
    };
    let below = {
        let mut marks = clock.0.lock();
        marks.push_back((now, seq));
        let mut below = None;
        while marks
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= RETENTION)
        {
            below = marks.pop_front().map(|(_, seq)| seq);
        }
        below
    };
    let Some(below) = below else { return };
    let result = sqlx::query(&st.trim)
        .bind(below)
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
        shared: &Arc<Table>,
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

    /// `off` (no tier follows it), `up` or `down`, for INFO.
    pub fn state(&self) -> &'static str {
        match (self.started(), self.figures.up.load(Ordering::Relaxed)) {
            (false, _) => "off",
            (true, true) => "up",
            (true, false) => "down",
        }
    }
}

async fn poll_loop(
    shared: Arc<Table>,
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
    // What the last poll found: None before the first, so that a feed that
    // never comes up is reported too.
    let mut was_up: Option<bool> = None;
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
        figures.up.store(result.is_ok(), Ordering::Relaxed);
        match (&result, was_up) {
            (Ok(_), Some(false)) => tracing::info!(
                backend = shared.dialect.name(),
                "change feed up: tiers in front of this store serve reads again"
            ),
            (Err(error), None | Some(true)) => tracing::warn!(
                backend = shared.dialect.name(),
                %error,
                "change feed down: reads skip the tiers in front of this store and go to it directly until it answers"
            ),
            _ => {}
        }
        was_up = Some(result.is_ok());
        let Ok(changes) = result else {
            figures.poll_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        // The first poll, or one after a long outage, may have missed
        // changes (trimmed from the log meanwhile): tiers start afresh.
        let gap = last_success.is_none_or(|at| started - at > GAP_AFTER);
        last_success = Some(started);
        figures
            .changes_read
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        // No receivers is fine: a tier subscribes again on reload.
        let _ = sender.send(Arc::new(Poll {
            started,
            changes,
            gap,
        }));
    }
}

/// Reads the entries after `last` (creating the log first if it is missing).
/// The first call only learns where the log stands.
async fn poll_once(shared: &Table, last: &mut Option<i64>) -> Result<Vec<Change>, String> {
    let st = &shared.statements.changes;
    let Some(after) = *last else {
        shared.create_schema().await.map_err(|e| e.to_string())?;
        let seq: i64 = sqlx::query(&st.current)
            .fetch_one(&shared.feed_pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| e.to_string())?;
        *last = Some(seq);
        return Ok(Vec::new());
    };
    let mut after = after;
    let mut changes = Vec::new();
    loop {
        let rows = sqlx::query(&st.poll)
            .bind(after)
            .bind(PAGE)
            .fetch_all(&shared.feed_pool)
            .await
            .map_err(|e| e.to_string())?;
        for row in &rows {
            let seq: i64 = row.try_get(0).map_err(|e| e.to_string())?;
            let blob: Vec<u8> = row.try_get(1).map_err(|e| e.to_string())?;
            unpack(&blob, &mut changes)
                .ok_or_else(|| format!("change-log entry {seq} is not one Keyway wrote"))?;
            after = seq;
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    *last = Some(after);
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_changes_unpack_to_the_same() {
        let changes = vec![
            Change {
                kind: ChangeKind::Key,
                db: 3,
                key: Bytes::from_static(b"k\r\n\0"),
                origin: u64::MAX,
            },
            Change {
                kind: ChangeKind::FlushAll,
                db: 0,
                key: Bytes::new(),
                origin: 0,
            },
        ];
        let mut out = Vec::new();
        unpack(&pack(&changes), &mut out).unwrap();
        assert_eq!(out, changes);
        assert!(unpack(&pack(&changes)[..5], &mut Vec::new()).is_none());
        assert!(unpack(b"\x09", &mut Vec::new()).is_none());
    }
}
