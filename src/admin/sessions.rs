//! Who is signed in: every Django session in every store a listener's
//! routes reach, read where it lies (a write-through's memory tier and its
//! database alike, both sides of a migration, each server of a memcached
//! pool as `lru_crawler metadump` lists it), its owner read from its value
//! without running it. Revoking a user ends each of their sessions through
//! its route, so every member, tier and host sees the delete (and the
//! ended marker) as it sees a logout.
//!
//! A user's sessions come from the owner index where the store keeps one
//! (SQL: a column, `backend::sql::owners`; redis: a set per user,
//! `backend::redis::owners`), elsewhere from listing the store (SCAN with a
//! pattern, or the memcached dump) and reading only the values that can be
//! theirs. Sessions written before the index existed are indexed on first
//! use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use keyway_protocol::django::{may_belong_to, read_owner, session_key, Owner};
use serde::Serialize;

use crate::backend::{session_page, AnyBackend, BackendError};
use crate::django_sessions::{digest, Reason, FIGURES};
use crate::op::{now_ms, Db, Expiry, Item, DATABASES};
use crate::router::Router;
use crate::session::Shared;

/// Keys listed per SCAN page and read per batch.
const PAGE: usize = 5000;

/// One session, as found in one store.
#[derive(Debug, Clone)]
pub struct Found {
    pub db: Db,
    pub key: Bytes,
    pub owner: Owner,
    pub expiry: Expiry,
    /// The backend it was read from.
    pub store: String,
}

/// Every session the backends `router`'s routes store in hold, skipping the
/// backends named in `skip` (listed already through another listener);
/// with `only`, just that user's (values that cannot be theirs are not
/// read). Also the backends it listed.
pub async fn list(
    router: &Router,
    skip: &HashSet<String>,
    only: Option<&str>,
) -> Result<(Vec<Found>, Vec<String>), BackendError> {
    let mut found = Vec::new();
    let mut listed = Vec::new();
    for (name, backend) in router.reached_backends() {
        if skip.contains(name) {
            continue;
        }
        listed.push(name.to_string());
        match backend {
            AnyBackend::Memcached(pool) => {
                let dumped = pool
                    .list_keys_settled()
                    .await
                    .map_err(|e| BackendError::Unsupported(format!("{name}: {e}")))?;
                let mut by_server: BTreeMap<(usize, Db), Vec<Bytes>> = BTreeMap::new();
                for listed in dumped.into_iter().filter(|l| session_key(&l.key).is_some()) {
                    by_server
                        .entry((listed.server, listed.db))
                        .or_default()
                        .push(listed.key);
                }
                for ((server, db), keys) in by_server {
                    for chunk in keys.chunks(PAGE) {
                        let items = pool.get_on(server, db, chunk).await?;
                        let items = chunk.iter().cloned().zip(items);
                        let items = items.filter_map(|(key, item)| Some((key, item?)));
                        read(name, db, items.collect(), only, &mut found);
                    }
                }
            }
            // The owner index: no value read.
            AnyBackend::Sql(sql) => {
                found.extend(sql.session_rows().await?.into_iter().map(|row| Found {
                    db: row.db,
                    key: row.key,
                    owner: row.owner,
                    expiry: row.expiry,
                    store: name.to_string(),
                }));
            }
            _ => {
                for db in 0..DATABASES {
                    match scan_db(name, backend, db, only, &mut found).await {
                        // A store with fewer databases (a Redis Cluster has
                        // only 0) refuses the others: nothing is there.
                        Err(_) if db > 0 => break,
                        result => result?,
                    }
                }
            }
        }
    }
    Ok((found, listed))
}

async fn scan_db(
    name: &str,
    backend: &AnyBackend,
    db: Db,
    only: Option<&str>,
    found: &mut Vec<Found>,
) -> Result<(), BackendError> {
    let mut cursor = 0;
    loop {
        let (page, next) = match backend {
            AnyBackend::Memory(memory) => session_page(memory, db, cursor, PAGE).await?,
            AnyBackend::Redis(redis) => session_page(&**redis, db, cursor, PAGE).await?,
            AnyBackend::Sql(sql) => session_page(sql, db, cursor, PAGE).await?,
            AnyBackend::Memcached(pool) => session_page(pool, db, cursor, PAGE).await?,
        };
        read(name, db, page, only, found);
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Reads the owner of each item found; with `only`, skips (unread) the
/// values that cannot be that user's.
fn read(
    store: &str,
    db: Db,
    items: Vec<(Bytes, Item)>,
    only: Option<&str>,
    found: &mut Vec<Found>,
) {
    for (key, item) in items {
        if only.is_some_and(|user| !may_belong_to(&item.value, item.flags, user)) {
            continue;
        }
        found.push(Found {
            db,
            owner: read_owner(&item.value, item.flags),
            expiry: item.expiry,
            store: store.to_string(),
            key,
        });
    }
}

/// Both listeners' keyspaces, each backend listed once.
async fn list_all(shared: &Shared) -> Result<Vec<(&Router, Found)>, BackendError> {
    let mut skip = HashSet::new();
    let mut all = Vec::new();
    for router in [&shared.memcache_router, &shared.resp_router] {
        let (found, listed) = list(router, &skip, None).await?;
        skip.extend(listed);
        all.extend(found.into_iter().map(|f| (router, f)));
    }
    Ok(all)
}

#[derive(Debug, Serialize)]
pub struct UserCount {
    pub user: String,
    pub sessions: usize,
}

/// `GET /sessions`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Distinct sessions (a session held in a memory tier and its database
    /// counts once).
    pub total: usize,
    pub anonymous: usize,
    /// Sessions whose value this reader could not read (not pickle, JSON or
    /// msgpack, or damaged): their owners are unknown.
    pub unreadable: usize,
    /// Users with at least one session.
    pub users_signed_in: usize,
    /// The users with the most sessions, largest first (at most
    /// `sessions.max_users_listed`).
    pub users: Vec<UserCount>,
    /// Every backend listed.
    pub stores: Vec<String>,
}

/// One session of a user, as `/sessions?user=` shows it: never the key.
#[derive(Debug, Serialize)]
pub struct SessionView {
    /// First 16 hex digits of SHA-256 of the key (the audit lines' `session`).
    pub session: String,
    pub engine: &'static str,
    /// Seconds left; null for a session that never expires.
    pub expires_in_seconds: Option<u64>,
    /// Every backend holding it.
    pub stores: Vec<String>,
    pub db: Db,
}

#[derive(Debug, Serialize)]
pub struct UserSessions {
    pub user: String,
    pub sessions: usize,
    pub list: Vec<SessionView>,
}

/// Distinct sessions by (db, key), with every store holding each.
fn distinct(found: Vec<(&Router, Found)>) -> Vec<(Found, Vec<String>)> {
    let mut index: HashMap<(Db, Bytes), usize> = HashMap::new();
    let mut out: Vec<(Found, Vec<String>)> = Vec::new();
    for (_, f) in found {
        match index.get(&(f.db, f.key.clone())) {
            Some(&i) => out[i].1.push(f.store),
            None => {
                index.insert((f.db, f.key.clone()), out.len());
                let store = f.store.clone();
                out.push((f, vec![store]));
            }
        }
    }
    out
}

pub async fn summary(shared: &Shared) -> Result<Summary, BackendError> {
    let found = list_all(shared).await?;
    let mut stores: Vec<String> = found.iter().map(|(_, f)| f.store.clone()).collect();
    stores.sort();
    stores.dedup();
    let sessions = distinct(found);
    let mut by_user: HashMap<&str, usize> = HashMap::new();
    let (mut anonymous, mut unreadable) = (0, 0);
    for (found, _) in &sessions {
        match &found.owner {
            Owner::User(user) => *by_user.entry(user).or_default() += 1,
            Owner::Anonymous => anonymous += 1,
            Owner::Unreadable(_) => unreadable += 1,
        }
    }
    let mut users: Vec<UserCount> = by_user
        .iter()
        .map(|(user, &sessions)| UserCount {
            user: user.to_string(),
            sessions,
        })
        .collect();
    users.sort_by(|a, b| b.sessions.cmp(&a.sessions).then(a.user.cmp(&b.user)));
    let users_signed_in = users.len();
    users.truncate(shared.config.sessions.max_users_listed);
    let summary = Summary {
        total: sessions.len(),
        anonymous,
        unreadable,
        users_signed_in,
        users,
        stores,
    };
    FIGURES.sessions.store(summary.total as i64, Relaxed);
    FIGURES.users.store(summary.users_signed_in as i64, Relaxed);
    FIGURES.anonymous.store(anonymous as i64, Relaxed);
    FIGURES.unreadable.store(unreadable as i64, Relaxed);
    FIGURES.inventory_timestamp.store(now_ms() / 1000, Relaxed);
    Ok(summary)
}

/// `GET /sessions?user=ID`.
pub async fn of_user(shared: &Shared, user: &str) -> Result<UserSessions, BackendError> {
    let now = now_ms();
    let found = list_all(shared).await?;
    let list: Vec<SessionView> = distinct(found)
        .into_iter()
        .filter(|(f, _)| matches!(&f.owner, Owner::User(u) if u == user))
        .map(|(f, stores)| SessionView {
            session: digest(&f.key),
            engine: session_key(&f.key).map_or("", |k| k.engine.as_str()),
            expires_in_seconds: match f.expiry {
                Expiry::Never => None,
                Expiry::At(at) => Some(at.saturating_sub(now) / 1000),
            },
            stores,
            db: f.db,
        })
        .collect();
    Ok(UserSessions {
        user: user.to_string(),
        sessions: list.len(),
        list,
    })
}

/// `POST /sessions/revoke?user=ID`.
#[derive(Debug, Serialize)]
pub struct Revoked {
    pub user: String,
    /// Sessions that existed and were ended.
    pub revoked: usize,
    pub elapsed_ms: u64,
}

/// The sessions of `user` in the backends `router` reaches (but those in
/// `skip`): from a SQL backend's owner index, from any other by listing.
async fn sessions_of(
    router: &Router,
    skip: &mut HashSet<String>,
    user: &str,
) -> Result<Vec<(Db, Bytes)>, BackendError> {
    let mut keys = Vec::new();
    let mut others = skip.clone();
    for (name, backend) in router.reached_backends() {
        if skip.contains(name) {
            continue;
        }
        match backend {
            AnyBackend::Sql(sql) => keys.extend(sql.sessions_of(user).await?),
            AnyBackend::Redis(redis) => keys.extend(redis.sessions_of(user).await?),
            _ => continue,
        }
        others.insert(name.to_string());
    }
    let (found, listed) = list(router, &others, Some(user)).await?;
    keys.extend(
        found
            .into_iter()
            .filter(|f| matches!(&f.owner, Owner::User(u) if u == user))
            .map(|f| (f.db, f.key)),
    );
    skip.extend(others);
    skip.extend(listed);
    Ok(keys)
}

/// Ends every session of `user`, each through the route its listener's
/// clients reach it by.
pub async fn revoke(shared: &Shared, user: &str) -> Result<Revoked, BackendError> {
    let started = std::time::Instant::now();
    let mut skip = HashSet::new();
    let mut found = Vec::new();
    for router in [&shared.memcache_router, &shared.resp_router] {
        let keys = sessions_of(router, &mut skip, user).await?;
        found.extend(keys.into_iter().map(|key| (router, key)));
    }
    let mut done: HashSet<(Db, Bytes)> = HashSet::new();
    let mut revoked = 0;
    for (router, (db, key)) in found {
        if !done.insert((db, key.clone())) {
            continue;
        }
        let ended = router
            .end_session(db, &key, Reason::Revoke, Some(user))
            .await
            .map_err(|e| match e {
                crate::router::RouteError::Backend(e) => e,
                other => BackendError::Unsupported(other.to_string()),
            })?;
        revoked += usize::from(ended);
    }
    Ok(Revoked {
        user: user.to_string(),
        revoked,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
