//! The SQL each database needs. Everything else in the SQL backend is shared:
//! the three dialects differ only in column types, placeholders, upsert
//! syntax, row locking and how a bounded delete is written.

pub use crate::config::Dialect;

impl Dialect {
    /// Longest key the table accepts: MySQL indexes at most 3072 bytes, so
    /// its key column is a VARBINARY(1024); the others take any length.
    pub fn max_key(self) -> usize {
        match self {
            Dialect::MySql => 1024,
            Dialect::Sqlite | Dialect::Postgres => usize::MAX,
        }
    }
}

/// Every statement the backend runs, built once. Parameters are listed in
/// order beside each one. Expiry is unix milliseconds, 0 meaning never.
pub struct Statements {
    dialect: Dialect,
    table: String,
    pub create: Vec<String>,
    /// db, key, now → value, flags, expires_ms, cas (live items only).
    pub get: String,
    /// db, key → value, flags, expires_ms, cas, expired or not, locking the row.
    pub lock: String,
    /// db, key.
    pub delete: String,
    /// expires_ms, db, key.
    pub set_expiry: String,
    /// db, now → count of live items.
    pub count: String,
    /// db, now, after_id, limit → id, key (hex-encoded on MySQL), in id order.
    pub scan: String,
    /// now, limit: deletes up to `limit` expired rows.
    pub sweep: String,
    /// after_id, limit → id, db, key (hex-encoded on MySQL), value, cas: every
    /// row, expired or not, in id order (`keyway rekey`).
    pub rekey_page: String,
    /// value, id, cas: a row sealed again, unless written meanwhile.
    pub rekey_update: String,
    /// Every row.
    pub count_all: String,
    /// db.
    pub flush_db: String,
    pub flush_all: String,
    /// The change log other Keyways poll (see `super::changes`).
    pub changes: ChangeStatements,
    /// The session-owner index (see `super::owners`).
    pub owners: super::owners::OwnerStatements,
}

/// The change log: `{t}_changes` holds one row per writing transaction —
/// its number, the changed keys packed in one blob, and when — and
/// `{t}_change_seq` the one counter row whose lock orders the writing
/// transactions.
pub struct ChangeStatements {
    dialect: Dialect,
    table: String,
    /// Takes the counter row's lock until commit and moves it on (None:
    /// `insert` does it, in one statement on PostgreSQL).
    pub bump: Option<String>,
    /// → the last committed seq.
    pub current: String,
    /// changes, at_ms: this transaction's entry, numbered with the counter
    /// it has just bumped (read in the statement: no round trip).
    pub insert: String,
    /// after_seq, limit → seq, changes; in seq order.
    pub poll: String,
    /// below_seq: deletes older entries.
    pub trim: String,
}

const COLUMNS: &str = "cache_value, flags, expires_ms, cas";
const LIVE: &str = "(expires_ms = 0 OR expires_ms > ?)";

impl Statements {
    pub fn new(dialect: Dialect, table: &str) -> Self {
        let t = table;
        let create = match dialect {
            Dialect::Sqlite => vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {t} (\
                     id INTEGER PRIMARY KEY, \
                     db INTEGER NOT NULL, \
                     cache_key BLOB NOT NULL, \
                     cache_value BLOB NOT NULL, \
                     flags INTEGER NOT NULL, \
                     expires_ms INTEGER NOT NULL, \
                     cas INTEGER NOT NULL, \
                     UNIQUE (db, cache_key))"
                ),
                format!("CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires_ms)"),
            ],
            Dialect::Postgres => vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {t} (\
                     id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                     db SMALLINT NOT NULL, \
                     cache_key BYTEA NOT NULL, \
                     cache_value BYTEA NOT NULL, \
                     flags BIGINT NOT NULL, \
                     expires_ms BIGINT NOT NULL, \
                     cas BIGINT NOT NULL, \
                     UNIQUE (db, cache_key))"
                ),
                format!("CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires_ms)"),
            ],
            Dialect::MySql => vec![format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                 id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
                 db SMALLINT NOT NULL, \
                 cache_key VARBINARY(1024) NOT NULL, \
                 cache_value LONGBLOB NOT NULL, \
                 flags BIGINT NOT NULL, \
                 expires_ms BIGINT NOT NULL, \
                 cas BIGINT NOT NULL, \
                 UNIQUE KEY {t}_key (db, cache_key), \
                 KEY {t}_expires (expires_ms)) ENGINE=InnoDB"
            )],
        };
        let lock_suffix = match dialect {
            // SQLite locks the whole database: the writer's BEGIN IMMEDIATE.
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
        };
        let scan_key = match dialect {
            // MySQL reports VARBINARY as text, which sqlx's Any driver
            // decodes as UTF-8; hex keeps binary keys intact.
            Dialect::MySql => "HEX(cache_key)",
            Dialect::Sqlite | Dialect::Postgres => "cache_key",
        };
        // sqlx's Any driver reads a SMALLINT only as i16; rekey reads i64.
        let db_wide = match dialect {
            Dialect::Sqlite => "db",
            Dialect::Postgres => "CAST(db AS BIGINT)",
            Dialect::MySql => "CAST(db AS SIGNED)",
        };
        let sweep = match dialect {
            Dialect::Sqlite => format!(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} \
                 WHERE expires_ms <> 0 AND expires_ms <= ? LIMIT ?)"
            ),
            Dialect::Postgres => format!(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} \
                 WHERE expires_ms <> 0 AND expires_ms <= ? LIMIT ? FOR UPDATE SKIP LOCKED)"
            ),
            Dialect::MySql => {
                format!("DELETE FROM {t} WHERE expires_ms <> 0 AND expires_ms <= ? LIMIT ?")
            }
        };
        let changes = ChangeStatements::new(dialect, t);
        let mut create = create;
        create.extend(changes.create());
        let statements = Self {
            changes,
            owners: super::owners::OwnerStatements::new(dialect, t),
            dialect,
            table: t.to_string(),
            create,
            get: format!("SELECT {COLUMNS} FROM {t} WHERE db = ? AND cache_key = ? AND {LIVE}"),
            lock: format!("SELECT {COLUMNS} FROM {t} WHERE db = ? AND cache_key = ?{lock_suffix}"),
            delete: format!("DELETE FROM {t} WHERE db = ? AND cache_key = ?"),
            set_expiry: format!("UPDATE {t} SET expires_ms = ? WHERE db = ? AND cache_key = ?"),
            count: format!("SELECT COUNT(*) FROM {t} WHERE db = ? AND {LIVE}"),
            scan: format!(
                "SELECT id, {scan_key} FROM {t} WHERE db = ? AND {LIVE} AND id > ? ORDER BY id LIMIT ?"
            ),
            sweep,
            rekey_page: format!(
                "SELECT id, {db_wide}, {scan_key}, cache_value, cas FROM {t} \
                 WHERE id > ? ORDER BY id LIMIT ?"
            ),
            rekey_update: format!("UPDATE {t} SET cache_value = ? WHERE id = ? AND cas = ?"),
            count_all: format!("SELECT COUNT(*) FROM {t}"),
            flush_db: format!("DELETE FROM {t} WHERE db = ?"),
            flush_all: format!("DELETE FROM {t}"),
        };
        statements.numbered()
    }

    /// An upsert of `rows` rows of (db, key, value, flags, expires_ms, cas,
    /// session_owner).
    pub fn upsert(&self, rows: usize) -> String {
        let t = &self.table;
        let row = "(?, ?, ?, ?, ?, ?, ?)";
        let values = vec![row; rows].join(", ");
        let sql = match self.dialect {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "INSERT INTO {t} (db, cache_key, cache_value, flags, expires_ms, cas, session_owner) \
                 VALUES {values} \
                 ON CONFLICT (db, cache_key) DO UPDATE SET cache_value = excluded.cache_value, \
                 flags = excluded.flags, expires_ms = excluded.expires_ms, cas = excluded.cas, \
                 session_owner = excluded.session_owner"
            ),
            Dialect::MySql => format!(
                "INSERT INTO {t} (db, cache_key, cache_value, flags, expires_ms, cas, session_owner) \
                 VALUES {values} \
                 ON DUPLICATE KEY UPDATE cache_value = VALUES(cache_value), \
                 flags = VALUES(flags), expires_ms = VALUES(expires_ms), cas = VALUES(cas), \
                 session_owner = VALUES(session_owner)"
            ),
        };
        number_placeholders(self.dialect, &sql)
    }

    /// PostgreSQL wants `$1, $2, ...` where the others take `?`.
    fn numbered(mut self) -> Self {
        let d = self.dialect;
        for sql in [
            &mut self.get,
            &mut self.lock,
            &mut self.delete,
            &mut self.set_expiry,
            &mut self.count,
            &mut self.scan,
            &mut self.sweep,
            &mut self.rekey_page,
            &mut self.rekey_update,
            &mut self.flush_db,
            &mut self.changes.insert,
            &mut self.changes.poll,
            &mut self.changes.trim,
        ] {
            *sql = number_placeholders(d, sql);
        }
        self
    }
}

impl ChangeStatements {
    fn new(dialect: Dialect, table: &str) -> Self {
        let t = table;
        Self {
            dialect,
            table: t.to_string(),
            bump: (dialect != Dialect::Postgres)
                .then(|| format!("UPDATE {t}_change_seq SET seq = seq + 1 WHERE id = 1")),
            current: format!("SELECT seq FROM {t}_change_seq WHERE id = 1"),
            insert: match dialect {
                Dialect::Postgres => format!(
                    "WITH bumped AS (UPDATE {t}_change_seq SET seq = seq + 1 WHERE id = 1 \
                     RETURNING seq) INSERT INTO {t}_changes (seq, changes, at_ms) \
                     SELECT seq, ?, ? FROM bumped"
                ),
                Dialect::Sqlite | Dialect::MySql => format!(
                    "INSERT INTO {t}_changes (seq, changes, at_ms) \
                     VALUES ((SELECT seq FROM {t}_change_seq WHERE id = 1), ?, ?)"
                ),
            },
            poll: format!(
                "SELECT seq, changes FROM {t}_changes WHERE seq > ? ORDER BY seq LIMIT ?"
            ),
            trim: format!("DELETE FROM {t}_changes WHERE seq < ?"),
        }
    }

    fn create(&self) -> Vec<String> {
        let t = &self.table;
        let (int, blob, ignore, conflict, engine) = match self.dialect {
            Dialect::Sqlite => ("INTEGER", "BLOB", "OR IGNORE ", "", ""),
            Dialect::Postgres => ("BIGINT", "BYTEA", "", " ON CONFLICT (id) DO NOTHING", ""),
            Dialect::MySql => ("BIGINT", "LONGBLOB", "IGNORE ", "", " ENGINE=InnoDB"),
        };
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {t}_changes (seq {int} NOT NULL PRIMARY KEY, \
                 changes {blob} NOT NULL, at_ms {int} NOT NULL){engine}"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {t}_change_seq (id {int} NOT NULL PRIMARY KEY, \
                 seq {int} NOT NULL){engine}"
            ),
            format!("INSERT {ignore}INTO {t}_change_seq (id, seq) VALUES (1, 0){conflict}"),
        ]
    }
}

pub(super) fn number_placeholders(dialect: Dialect, sql: &str) -> String {
    if dialect != Dialect::Postgres {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        let st = Statements::new(Dialect::Postgres, "t");
        assert_eq!(
            st.get,
            "SELECT cache_value, flags, expires_ms, cas FROM t WHERE db = $1 AND cache_key = $2 \
             AND (expires_ms = 0 OR expires_ms > $3)"
        );
        assert!(st
            .upsert(2)
            .contains("($8, $9, $10, $11, $12, $13, $14) ON CONFLICT"));
        assert!(Statements::new(Dialect::MySql, "t")
            .upsert(1)
            .contains("VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY"));
    }
}
