//! `keyway migrate`: copies every live key, with its flags and remaining
//! TTL, from one member to another, in batches, while the site runs.
//!
//! Keys are listed with SCAN (redis, SQL, policies over them) or, for a
//! memcached pool, with each server's `lru_crawler metadump hash` (`all`
//! before memcached 1.6.9; dumps merged until two add nothing: a dump is not
//! a snapshot, and `all` can miss an item memcached moves between its LRU
//! queues meanwhile; reads through the migrate route copy any key the
//! dumps miss). A dumped key is read back from the server that
//! listed it, whatever the pool's placement says: a pool some other client
//! filled may hold keys where Keyway's placement would not look. Each copy
//! is an add, so a newer write that reached the new store first is never
//! overwritten, and running the command again only copies what is missing.
//! A key deleted from the old store while its copy was being made (a logout
//! racing the copy) is deleted again from the new one, so it does not come
//! back. Progress is saved after every batch to a state file and resumed
//! from there.

use std::path::PathBuf;

use bytes::Bytes;

use super::{copy_of, Node, Target};
use crate::backend::memcached::Listed;
use crate::backend::{AnyBackend, BackendError, Ops};
use crate::op::{now_ms, Db, StoreStatus, DATABASES};

/// Keys per batch.
const BATCH: usize = 500;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Keys listed in the old store.
    pub listed: u64,
    /// Copied to the new store.
    pub copied: u64,
    /// Already in the new store (written or copied before): left alone.
    pub present: u64,
    /// Listed live, then gone by the time they were read (deleted — a
    /// logout — or evicted in between).
    pub gone: u64,
    /// Listed, but expired by the time they were read (or already when listed).
    pub expired: u64,
    /// Copied, then found deleted from the old store meanwhile: deleted again.
    pub undone: u64,
}

/// Where a run is, saved after every batch: the database and the SCAN
/// cursor (or, for memcached, the number of dumped keys done).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    db: Db,
    position: u64,
}

pub struct BulkCopy<'a> {
    pub from: &'a Target,
    pub to: &'a Target,
    /// Saved progress; removed when the run completes.
    pub state: PathBuf,
    pub progress: indicatif::ProgressBar,
}

impl BulkCopy<'_> {
    /// The progress bar `keyway migrate` shows.
    pub fn progress_bar() -> indicatif::ProgressBar {
        indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} keys {per_sec} {eta}")
                .expect("a valid template"),
        )
    }

    /// Where a copy keeps its progress: `state`, or a file in `data_dir`
    /// named after the two ends (its directory made if missing).
    pub fn state_file(
        data_dir: &std::path::Path,
        state: Option<PathBuf>,
        from: &str,
        to: &str,
    ) -> Result<PathBuf, String> {
        let state = state.unwrap_or_else(|| data_dir.join(format!("migrate-{from}-{to}.state")));
        if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        }
        Ok(state)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Cannot(String),
    #[error("state file {0}: {1}")]
    State(PathBuf, std::io::Error),
}

impl BulkCopy<'_> {
    pub async fn run(&self) -> Result<Report, CopyError> {
        let start = self.load_state()?;
        let mut report = Report::default();
        match &self.from.node {
            Node::Backend(backend) if matches!(**backend, AnyBackend::Memory(_)) => {
                return Err(CopyError::Cannot(
                    "the old store is a memory:// backend: it lives inside the running Keyway, \
                     and this separate process cannot read it"
                        .into(),
                ))
            }
            Node::Backend(backend) => match &**backend {
                AnyBackend::Memcached(memcached) => {
                    let keys = memcached
                        .list_keys_settled()
                        .await
                        .map_err(CopyError::Cannot)?;
                    self.progress.set_length(keys.len() as u64);
                    self.copy_listed(memcached, keys, start, &mut report)
                        .await?;
                }
                _ => self.copy_scanned(start, &mut report).await?,
            },
            Node::Policy(_) => self.copy_scanned(start, &mut report).await?,
        }
        self.progress.finish_and_clear();
        match std::fs::remove_file(&self.state) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CopyError::State(self.state.clone(), e))
            }
            _ => {}
        }
        Ok(report)
    }

    /// Walks every database with SCAN.
    async fn copy_scanned(&self, start: Checkpoint, report: &mut Report) -> Result<(), CopyError> {
        let mut total = 0;
        for db in 0..DATABASES {
            total += self.from.len(db).await.unwrap_or(0);
        }
        self.progress.set_length(total as u64);
        for db in start.db..DATABASES {
            let mut cursor = if db == start.db { start.position } else { 0 };
            loop {
                let page = match self.from.scan(db, cursor, None, BATCH).await {
                    Err(BackendError::Unsupported(why)) => return Err(CopyError::Cannot(why)),
                    page => page?,
                };
                report.listed += page.keys.len() as u64;
                self.copy_batch(Source::Route(self.from), db, &page.keys, report)
                    .await?;
                cursor = page.cursor;
                if cursor == 0 {
                    break;
                }
                self.save_state(Checkpoint {
                    db,
                    position: cursor,
                })?;
            }
            self.save_state(Checkpoint {
                db: db + 1,
                position: 0,
            })?;
        }
        Ok(())
    }

    /// Copies keys listed up front (memcached), resuming after
    /// `start.position` of them; each is read from the server that listed it.
    async fn copy_listed(
        &self,
        memcached: &crate::backend::memcached::MemcachedBackend,
        keys: Vec<Listed>,
        start: Checkpoint,
        report: &mut Report,
    ) -> Result<(), CopyError> {
        let skip = start.position as usize;
        self.progress.set_position(skip.min(keys.len()) as u64);
        let mut done = skip;
        let now_s = now_ms() / 1000;
        for chunk in keys.get(skip..).unwrap_or_default().chunks(BATCH) {
            report.listed += chunk.len() as u64;
            let (live, dead): (Vec<&Listed>, Vec<&Listed>) = chunk
                .iter()
                .partition(|listed| listed.expires.is_none_or(|at| at > now_s));
            report.expired += dead.len() as u64;
            self.progress.inc(dead.len() as u64);
            // A dump mixes servers and databases: read each group together.
            let mut groups: std::collections::BTreeMap<(usize, Db), Vec<Bytes>> =
                std::collections::BTreeMap::new();
            for listed in live {
                groups
                    .entry((listed.server, listed.db))
                    .or_default()
                    .push(listed.key.clone());
            }
            for ((server, db), batch) in groups {
                let source = Source::Server(memcached, server);
                self.copy_batch(source, db, &batch, report).await?;
            }
            done += chunk.len();
            self.save_state(Checkpoint {
                db: 0,
                position: done as u64,
            })?;
        }
        Ok(())
    }

    /// Copies `keys` as `source` holds them now.
    async fn copy_batch(
        &self,
        source: Source<'_>,
        db: Db,
        keys: &[Bytes],
        report: &mut Report,
    ) -> Result<(), CopyError> {
        if keys.is_empty() {
            return Ok(());
        }
        let items = source.get(db, keys).await?;
        let now = now_ms();
        let mut copied = Vec::new();
        for (key, item) in keys.iter().zip(items) {
            let Some(item) = item else {
                report.gone += 1;
                continue;
            };
            if item.expiry.is_expired_at(now) {
                report.expired += 1;
                continue;
            }
            match self.to.store(db, copy_of(key, &item)).await?.status {
                StoreStatus::Stored => copied.push((key.clone(), item.value)),
                _ => report.present += 1,
            }
        }
        report.copied += copied.len() as u64;
        // A delete through the route between our read and our copy reached
        // the old store before the copy existed: undo the copy, unless the
        // new store's value is no longer ours.
        if !copied.is_empty() {
            let copied_keys: Vec<Bytes> = copied.iter().map(|(key, _)| key.clone()).collect();
            let still = source.get(db, &copied_keys).await?;
            let now_in_to = self.to.get(db, &copied_keys).await?;
            for (((key, value), old), new) in copied.iter().zip(still).zip(now_in_to) {
                if old.is_none() && new.is_some_and(|new| new.value == *value) {
                    self.to.delete(db, std::slice::from_ref(key)).await?;
                    report.undone += 1;
                }
            }
        }
        self.progress.inc(keys.len() as u64);
        Ok(())
    }

    fn load_state(&self) -> Result<Checkpoint, CopyError> {
        let text = match std::fs::read_to_string(&self.state) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checkpoint::default()),
            Err(e) => return Err(CopyError::State(self.state.clone(), e)),
        };
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        match (fields.next(), fields.next()) {
            (Some(Ok(db)), Some(Ok(position))) if db <= DATABASES as u64 => Ok(Checkpoint {
                db: db as Db,
                position,
            }),
            _ => Err(CopyError::State(
                self.state.clone(),
                std::io::Error::other("not \"<db> <position>\"; delete it to start over"),
            )),
        }
    }

    fn save_state(&self, checkpoint: Checkpoint) -> Result<(), CopyError> {
        let text = format!("{} {}\n", checkpoint.db, checkpoint.position);
        let temporary = self.state.with_extension("tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.state))
            .map_err(|e| CopyError::State(self.state.clone(), e))
    }
}

/// Where a batch is read from, and read again after its copy: the same
/// place both times, or a key another placement put elsewhere would read as
/// deleted on the second look and its copy be undone.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// Through the old store's route (SCAN-listed keys).
    Route(&'a Target),
    /// One server of a memcached pool (the server whose dump listed the keys).
    Server(&'a crate::backend::memcached::MemcachedBackend, usize),
}

impl Source<'_> {
    async fn get(self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<crate::op::Item>>, CopyError> {
        Ok(match self {
            Source::Route(target) => target.get(db, keys).await?,
            Source::Server(memcached, server) => memcached.get_on(server, db, keys).await?,
        })
    }
}
