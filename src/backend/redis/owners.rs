//! The session-owner index on redis: a set per signed-in user,
//! `keyway:sessions-of:{<id>}` (the braces make it one hash slot on a
//! cluster), holding the keys of their sessions, in the sessions' database.
//! A session write through Keyway adds its key (SADD is idempotent, so a
//! session saved on every request adds nothing) and keeps the set alive as
//! long as its longest-lived member ([`INDEX_SCRIPT`]); a revoke reads the set,
//! checks each member is still that user's session (a logged-out session
//! stays listed until then), and drops the stale ones. Sessions written
//! before the index existed, or by something other than Keyway, are found
//! by a one-time reindex of each database (SCAN and read), marked done by
//! `keyway:sessions-indexed`.

use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};
use keyway_protocol::django::{read_owner, session_key, Owner};
use sha1::{Digest, Sha1};

use super::values::encode_value;
use super::{command, integer, text, RedisBackend, Reply};
use crate::backend::{Backend, Result};
use crate::op::{now_ms, Db, Expiry, ExpiryUpdate, Store, StoreOutcome, StoreStatus, DATABASES};

const SET_PREFIX: &[u8] = b"keyway:sessions-of:{";
/// Present once a database's sessions written before the index were indexed.
const INDEXED: &[u8] = b"keyway:sessions-indexed";
/// Adds a session to its owner's set; the set lives as long as its
/// longest-lived member: a new set (or one holding only this session) takes
/// the session's expiry, a larger one only grows (GT), a session that
/// never expires makes it persistent. (One script: the choice depends on
/// the set's size after the add.)
const INDEX_SCRIPT: &[u8] = b"local added = redis.call('SADD', KEYS[1], ARGV[1]) \
if ARGV[2] == 'never' then redis.call('PERSIST', KEYS[1]) \
elseif ARGV[2] ~= 'keep' then \
  if redis.call('SCARD', KEYS[1]) == 1 then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) \
  else redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT') end \
end \
return added";
/// A Django session's plain set, refused if the session has ended, and
/// indexed under its owner when it has one: the marker check, the write
/// and [`INDEX_SCRIPT`]'s add in one step (`django_sessions::ended`).
/// KEYS: the session key, its marker, and the owner's set if any; ARGV:
/// the stored value, its PXAT or `never`. 1 if written, 0 if ended.
const SESSION_WRITE_SCRIPT: &[u8] = b"if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end \
if ARGV[2] == 'never' then redis.call('SET', KEYS[1], ARGV[1]) \
else redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2]) end \
if KEYS[3] then \
  redis.call('SADD', KEYS[3], KEYS[1]) \
  if ARGV[2] == 'never' then redis.call('PERSIST', KEYS[3]) \
  elseif redis.call('SCARD', KEYS[3]) == 1 then redis.call('PEXPIREAT', KEYS[3], ARGV[2]) \
  else redis.call('PEXPIREAT', KEYS[3], ARGV[2], 'GT') end \
end \
return 1";
static SESSION_WRITE_SHA: LazyLock<String> =
    LazyLock::new(|| hex::encode(Sha1::digest(SESSION_WRITE_SCRIPT)));
/// Keys listed and read per page of the reindex.
const PAGE: usize = 5000;

fn set_key(user: &str) -> Bytes {
    let mut key = BytesMut::with_capacity(SET_PREFIX.len() + user.len() + 1);
    key.put_slice(SET_PREFIX);
    key.put_slice(user.as_bytes());
    key.put_u8(b'}');
    key.freeze()
}

/// The set `key`'s session is indexed in, when it is a signed-in user's.
fn owner_set(key: &[u8], value: &[u8], flags: u32) -> Option<Bytes> {
    session_key(key)?;
    match read_owner(value, flags) {
        Owner::User(user) => Some(set_key(&user)),
        _ => None,
    }
}

impl RedisBackend {
    /// [`SESSION_WRITE_SCRIPT`] for a plain set carrying its session's
    /// ended `marker`; `None` for a write it does not cover (one already
    /// expired is a delete, which cannot bring a session back).
    pub(super) async fn session_write(
        &self,
        db: Db,
        store: &Store,
        marker: &[u8],
    ) -> Option<Result<StoreOutcome>> {
        let at = match store.expiry {
            ExpiryUpdate::Set(Expiry::Never) => b"never".to_vec(),
            ExpiryUpdate::Set(Expiry::At(at)) if at > now_ms() => text(at),
            _ => return None,
        };
        let stored = encode_value(&store.value, store.flags);
        let set = owner_set(&store.key, &store.value, store.flags);
        let sha = SESSION_WRITE_SHA.as_bytes();
        let mut args: Vec<&[u8]> = vec![sha, b"2", &store.key, marker];
        if let Some(set) = &set {
            args[1] = b"3";
            args.push(set);
        }
        args.extend([&stored[..], &at[..]]);
        let reply = self.eval(db, &store.key, SESSION_WRITE_SCRIPT, &args);
        let written = match reply.await {
            Ok(reply) => integer(&reply),
            Err(error) => Err(error),
        };
        Some(written.map(|written| StoreOutcome {
            status: match written {
                1 => StoreStatus::Stored,
                _ => StoreStatus::NotStored,
            },
            old: None,
            len: store.value.len(),
        }))
    }

    /// After a write of `key` (stored): indexes it under its owner when it
    /// is a signed-in user's session.
    pub(super) async fn index_session(
        &self,
        db: Db,
        key: &[u8],
        value: &[u8],
        flags: u32,
        expiry: ExpiryUpdate,
    ) -> Result<()> {
        if session_key(key).is_none() {
            return Ok(());
        }
        let Owner::User(user) = read_owner(value, flags) else {
            return Ok(());
        };
        let set = set_key(&user);
        let at = match expiry {
            ExpiryUpdate::Set(Expiry::At(at)) => text(at),
            ExpiryUpdate::Set(Expiry::Never) => b"never".to_vec(),
            ExpiryUpdate::Keep => b"keep".to_vec(),
        };
        let reply = self
            .one(db, &set, &[b"EVAL", INDEX_SCRIPT, b"1", &set, key, &at])
            .await?;
        if let Reply::Error(why) = reply {
            // The write stands; only the index missed it (a revoke of this
            // user would then miss this session): say so, once.
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    error = %why,
                    "redis refused the session-owner index script (EVAL): revoking a user \
                     may miss sessions written now; allow EVAL for Keyway's redis user"
                )
            });
        }
        Ok(())
    }

    /// The (db, key) of every live session of `user`, from the index.
    pub async fn sessions_of(&self, user: &str) -> Result<Vec<(Db, Bytes)>> {
        let databases = if self.is_cluster() { 1 } else { DATABASES };
        let set = set_key(user);
        let mut found = Vec::new();
        for db in 0..databases {
            match self.sessions_in(db, &set, user, &mut found).await {
                // A URL naming a database offsets Keyway's: the last ones
                // fall past redis's 16 and are refused. Nothing is there.
                Err(_) if db > 0 => break,
                result => result?,
            }
        }
        Ok(found)
    }

    async fn sessions_in(
        &self,
        db: Db,
        set: &[u8],
        user: &str,
        found: &mut Vec<(Db, Bytes)>,
    ) -> Result<()> {
        if self.one(db, INDEXED, &[b"EXISTS", INDEXED]).await? != Reply::Integer(1) {
            self.reindex(db).await?;
        }
        let members: Vec<Bytes> = match self.one(db, set, &[b"SMEMBERS", set]).await? {
            Reply::Array(members) | Reply::Set(members) => members
                .into_iter()
                .filter_map(|member| match member {
                    Reply::Bulk(key) => Some(key),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if members.is_empty() {
            return Ok(());
        }
        let items = self.get(db, &members).await?;
        let mut stale: Vec<&[u8]> = vec![b"SREM", set];
        for (key, item) in members.iter().zip(items) {
            match item {
                Some(item) if read_owner(&item.value, item.flags) == Owner::User(user.into()) => {
                    found.push((db, key.clone()))
                }
                _ => stale.push(key),
            }
        }
        if stale.len() > 2 {
            self.one(db, set, &stale).await?;
        }
        Ok(())
    }

    /// Indexes every session of `db` (those written before the index, or
    /// not through Keyway), then marks the database indexed.
    async fn reindex(&self, db: Db) -> Result<()> {
        let mut cursor = 0;
        loop {
            let (page, next) = crate::backend::session_page(self, db, cursor, PAGE).await?;
            // Each session's expiry is unknown here: its set is kept as it is.
            let owned: Vec<(Bytes, Bytes)> = page
                .into_iter()
                .filter_map(|(key, item)| match read_owner(&item.value, item.flags) {
                    Owner::User(user) => Some((set_key(&user), key)),
                    _ => None,
                })
                .collect();
            if self.is_cluster() {
                // Sets live on the nodes their users hash to: one at a time.
                for (set, key) in &owned {
                    self.one(db, set, &[b"EVAL", INDEX_SCRIPT, b"1", set, key, b"keep"])
                        .await?;
                }
            } else if !owned.is_empty() {
                // One server: the whole page in one pipelined request.
                self.run(db, b"", owned.len(), |r| {
                    for (set, key) in &owned {
                        command(r, &[b"EVAL", INDEX_SCRIPT, b"1", set, key, b"keep"]);
                    }
                })
                .await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        self.one(db, INDEXED, &[b"SET", INDEXED, b"1"]).await?;
        Ok(())
    }
}
