//! The session-owner index: a `session_owner` column, written with every
//! row, so that one user's sessions among a hundred thousand are one
//! indexed query (`keyway sessions revoke`), and the inventory reads owners
//! without reading values. The owner is read from the value as the writer
//! stores it (`keyway_protocol::django`), before it is sealed at rest; it
//! is a user id (the Keystone user id for Horizon), never a credential.
//!
//! Column values: `u:<id>` a signed-in user's session, `a` an anonymous
//! one, `?` a session this reader cannot read, `-` a key that is not a
//! session; NULL a row written before the column existed (or an id longer
//! than [`MAX_OWNER`]): those are read and indexed the first time an
//! inventory or a revoke passes over them (the one-time reindex).

use bytes::Bytes;
use keyway_protocol::django::{read_owner, session_key, Owner};
use sqlx::Row;

use super::dialect::{number_placeholders, Dialect};
use super::{encryption, SqlBackend};
use crate::backend::Result;
use crate::op::{now_ms, Db, Expiry};

/// Longest user id indexed (MySQL's column is a VARCHAR(255)).
const MAX_OWNER: usize = 250;
/// Rows per page read.
const PAGE: i64 = 2000;

/// The column value for a row (see the module docs).
pub fn tag(key: &[u8], value: &[u8], flags: i64) -> Option<String> {
    if session_key(key).is_none() {
        return Some("-".into());
    }
    match read_owner(value, flags as u32) {
        Owner::User(id) if id.len() <= MAX_OWNER => Some(format!("u:{id}")),
        Owner::User(_) => None,
        Owner::Anonymous => Some("a".into()),
        Owner::Unreadable(_) => Some("?".into()),
    }
}

fn owner_of_tag(tag: &str) -> Option<Owner> {
    match tag {
        "a" => Some(Owner::Anonymous),
        "?" => Some(Owner::Unreadable("not pickle, JSON or msgpack".into())),
        "-" => None,
        user => user.strip_prefix("u:").map(|id| Owner::User(id.into())),
    }
}

/// The index's statements, built once.
pub struct OwnerStatements {
    /// Adding the column and its index to a table made before them (run
    /// after `create`; "already there" errors are expected and ignored).
    pub upgrade: Vec<String>,
    /// after_id, limit, now → id, db, key, owner, expires_ms.
    page: String,
    /// now, after_id, limit → id, db, key, value, flags, cas (rows not yet indexed).
    unindexed: String,
    /// owner tag, now → db, key.
    of_owner: String,
    /// tag, id, cas.
    backfill: String,
}

impl OwnerStatements {
    pub fn new(dialect: Dialect, t: &str) -> Self {
        let (column, add) = match dialect {
            Dialect::Sqlite => ("TEXT", "ADD COLUMN"),
            Dialect::Postgres => ("TEXT", "ADD COLUMN IF NOT EXISTS"),
            Dialect::MySql => ("VARCHAR(255) NULL", "ADD COLUMN"),
        };
        let index = match dialect {
            Dialect::MySql => format!("CREATE INDEX {t}_owner ON {t} (session_owner)"),
            _ => format!("CREATE INDEX IF NOT EXISTS {t}_owner ON {t} (session_owner)"),
        };
        let key = match dialect {
            Dialect::MySql => "HEX(cache_key)",
            _ => "cache_key",
        };
        let db = match dialect {
            Dialect::Sqlite => "db",
            Dialect::Postgres => "CAST(db AS BIGINT)",
            Dialect::MySql => "CAST(db AS SIGNED)",
        };
        let live = "(expires_ms = 0 OR expires_ms > ?)";
        let n = |sql: String| number_placeholders(dialect, &sql);
        Self {
            upgrade: vec![
                format!("ALTER TABLE {t} {add} session_owner {column}"),
                index,
            ],
            page: n(format!(
                "SELECT id, {db}, {key}, session_owner, expires_ms FROM {t} \
                 WHERE id > ? AND {live} ORDER BY id LIMIT ?"
            )),
            unindexed: n(format!(
                "SELECT id, {db}, {key}, cache_value, flags, cas FROM {t} \
                 WHERE session_owner IS NULL AND {live} AND id > ? ORDER BY id LIMIT ?"
            )),
            of_owner: n(format!(
                "SELECT {db}, {key} FROM {t} WHERE session_owner = ? AND {live}"
            )),
            backfill: n(format!(
                "UPDATE {t} SET session_owner = ? WHERE id = ? AND cas = ?"
            )),
        }
    }
}

/// A session row, its owner from the index.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub db: Db,
    pub key: Bytes,
    pub owner: Owner,
    pub expiry: Expiry,
}

impl SqlBackend {
    fn key_of(&self, row: &sqlx::any::AnyRow, index: usize) -> Result<Bytes> {
        let shared = &self.shared;
        Ok(Bytes::from(if shared.dialect == Dialect::MySql {
            let text: String = row.try_get(index).map_err(|e| shared.unavailable(e))?;
            hex::decode(text).map_err(|e| shared.unavailable(e))?
        } else {
            row.try_get::<Vec<u8>, _>(index)
                .map_err(|e| shared.unavailable(e))?
        }))
    }

    /// Indexes every row written before the index existed: reads each
    /// value (opened if sealed) and writes its tag, unless the row was
    /// written meanwhile (its CAS id changed: the writer tagged it).
    pub async fn index_owners(&self) -> Result<u64> {
        let shared = &self.shared;
        let statements = &shared.statements.owners;
        let mut after = 0i64;
        let mut indexed = 0;
        loop {
            let rows = self
                .timed(async {
                    sqlx::query(&statements.unindexed)
                        .bind(now_ms() as i64)
                        .bind(after)
                        .bind(PAGE)
                        .fetch_all(&shared.pool)
                        .await
                        .map_err(|e| shared.unavailable(e))
                })
                .await?;
            for row in &rows {
                let id: i64 = row.try_get(0).map_err(|e| shared.unavailable(e))?;
                let db: i64 = row.try_get(1).map_err(|e| shared.unavailable(e))?;
                let key = self.key_of(row, 2)?;
                let stored: Vec<u8> = row.try_get(3).map_err(|e| shared.unavailable(e))?;
                let flags: i64 = row.try_get(4).map_err(|e| shared.unavailable(e))?;
                let cas: i64 = row.try_get(5).map_err(|e| shared.unavailable(e))?;
                after = id;
                let value = match &shared.keyring {
                    Some(keyring) => keyring.open(db, &key, stored),
                    None => encryption::refuse_sealed(stored),
                };
                let tag = match value {
                    Ok(value) => tag(&key, &value, flags),
                    Err(_) => Some("?".into()),
                };
                let Some(tag) = tag else { continue };
                self.timed(async {
                    sqlx::query(&statements.backfill)
                        .bind(tag)
                        .bind(id)
                        .bind(cas)
                        .execute(&shared.pool)
                        .await
                        .map_err(|e| shared.unavailable(e))
                })
                .await?;
                indexed += 1;
            }
            if (rows.len() as i64) < PAGE {
                return Ok(indexed);
            }
        }
    }

    /// Every live session row, with its owner from the index (rows not
    /// yet indexed are indexed first).
    pub async fn session_rows(&self) -> Result<Vec<SessionRow>> {
        self.index_owners().await?;
        let shared = &self.shared;
        let mut after = 0i64;
        let mut out = Vec::new();
        loop {
            let rows = self
                .timed(async {
                    sqlx::query(&shared.statements.owners.page)
                        .bind(after)
                        .bind(now_ms() as i64)
                        .bind(PAGE)
                        .fetch_all(&shared.pool)
                        .await
                        .map_err(|e| shared.unavailable(e))
                })
                .await?;
            for row in &rows {
                after = row.try_get(0).map_err(|e| shared.unavailable(e))?;
                let tag: Option<String> = row.try_get(3).map_err(|e| shared.unavailable(e))?;
                let key = self.key_of(row, 2)?;
                let owner = match tag.as_deref() {
                    Some(tag) => owner_of_tag(tag),
                    // An id too long to index: read it where it lies.
                    None => {
                        session_key(&key).map(|_| Owner::Unreadable("owner id too long".into()))
                    }
                };
                let Some(owner) = owner else { continue };
                let db: i64 = row.try_get(1).map_err(|e| shared.unavailable(e))?;
                let expires: i64 = row.try_get(4).map_err(|e| shared.unavailable(e))?;
                out.push(SessionRow {
                    db: db as Db,
                    key,
                    owner,
                    expiry: if expires == 0 {
                        Expiry::Never
                    } else {
                        Expiry::At(expires as u64)
                    },
                });
            }
            if (rows.len() as i64) < PAGE {
                return Ok(out);
            }
        }
    }

    /// The (db, key) of every live session of `user`: one indexed query
    /// (rows not yet indexed are indexed first).
    pub async fn sessions_of(&self, user: &str) -> Result<Vec<(Db, Bytes)>> {
        self.index_owners().await?;
        let shared = &self.shared;
        let rows = self
            .timed(async {
                sqlx::query(&shared.statements.owners.of_owner)
                    .bind(format!("u:{user}"))
                    .bind(now_ms() as i64)
                    .fetch_all(&shared.pool)
                    .await
                    .map_err(|e| shared.unavailable(e))
            })
            .await?;
        rows.iter()
            .map(|row| {
                let db: i64 = row.try_get(0).map_err(|e| shared.unavailable(e))?;
                Ok((db as Db, self.key_of(row, 1)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_say_what_a_row_is() {
        let key = b":1:django.contrib.sessions.cacheabcdefghijklmnopqrstuvwxyz012345";
        assert_eq!(tag(b"views.x", b"anything", 0).as_deref(), Some("-"));
        assert_eq!(
            tag(key, br#"{"_auth_user_id":"7"}"#, 0).as_deref(),
            Some("u:7")
        );
        assert_eq!(tag(key, br#"{"a":1}"#, 0).as_deref(), Some("a"));
        assert_eq!(tag(key, b"junk", 0).as_deref(), Some("?"));
        let long = format!(r#"{{"_auth_user_id":"{}"}}"#, "x".repeat(300));
        assert_eq!(tag(key, long.as_bytes(), 0), None);
        assert_eq!(owner_of_tag("u:7"), Some(Owner::User("7".into())));
        assert_eq!(owner_of_tag("-"), None);
    }
}
