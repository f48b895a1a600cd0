//! `keyway rekey`: seals every row of a SQL backend under the first key of
//! its `encryption_key_file` — rows under an older key, and rows written
//! before encryption was turned on — in batches, one transaction each.
//!
//! It runs beside serving Keyways: a row is rewritten only if its `cas` is
//! still the one read (a client's write meanwhile wins, and was sealed by
//! the Keyway that made it). Stopped and run again, it resumes in effect:
//! rows already under the sealing key are read and left alone.

use sqlx::Row;

use super::encryption::sealed_with;
use super::{Dialect, SqlBackend};
use crate::backend::{BackendError, Result};

/// A row as rekey reads it.
struct StoredRow {
    id: i64,
    db: i64,
    key: Vec<u8>,
    value: Vec<u8>,
    cas: i64,
}

/// What a rekey found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RekeyReport {
    /// Rows read.
    pub rows: u64,
    /// Rows sealed again under the sealing key.
    pub resealed: u64,
    /// Rows already under it.
    pub current: u64,
    /// Rows a client wrote between the read and the rewrite (left as written).
    pub written_meanwhile: u64,
    /// Rows no key in the file opens (listed on the error output).
    pub unreadable: u64,
}

impl SqlBackend {
    /// Seals every row under the sealing key, `batch` rows per transaction;
    /// `progress` gets the row count, then each batch.
    pub async fn rekey(
        &self,
        batch: usize,
        progress: &indicatif::ProgressBar,
    ) -> Result<RekeyReport> {
        let shared = &self.shared;
        let Some(keyring) = shared.keyring.as_ref() else {
            return Err(BackendError::Unsupported(
                "this backend has no encryption_key_file: set it (the first key seals) and run \
                 rekey again"
                    .into(),
            ));
        };
        self.create_schema().await?;
        let st = &shared.statements;
        let total: i64 = sqlx::query(&st.count_all)
            .fetch_one(&shared.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| shared.unavailable(e))?;
        progress.set_length(total.max(0) as u64);
        let mut report = RekeyReport::default();
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(&st.rekey_page)
                .bind(after)
                .bind(batch.max(1) as i64)
                .fetch_all(&shared.pool)
                .await
                .map_err(|e| shared.unavailable(e))?;
            let Some(last) = rows.last() else { break };
            after = last.try_get(0).map_err(|e| shared.unavailable(e))?;
            self.rekey_page(keyring, &rows, &mut report).await?;
            progress.inc(rows.len() as u64);
        }
        if shared.dialect == Dialect::Sqlite {
            // The rewritten pages' old versions sit in the WAL until a
            // checkpoint; TRUNCATE writes them back (zeroed, with
            // secure_delete) and empties the WAL file.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&shared.pool)
                .await
                .map_err(|e| shared.unavailable(e))?;
        }
        progress.finish();
        Ok(report)
    }

    /// Seals one page of rows in one transaction; a row written since it
    /// was read is left to its writer (counted in `written_meanwhile`).
    async fn rekey_page(
        &self,
        keyring: &super::encryption::Keyring,
        rows: &[sqlx::any::AnyRow],
        report: &mut RekeyReport,
    ) -> Result<()> {
        let shared = &self.shared;
        let st = &shared.statements;
        let mut transaction = shared
            .pool
            .begin()
            .await
            .map_err(|e| shared.unavailable(e))?;
        for row in rows {
            report.rows += 1;
            let StoredRow {
                id,
                db,
                key,
                value: stored,
                cas,
            } = self.rekey_row(row).map_err(|e| shared.unavailable(e))?;
            if sealed_with(&stored) == Some(keyring.sealing_id()) {
                report.current += 1;
                continue;
            }
            let value = match keyring.open(db, &key, stored) {
                Ok(value) => value,
                Err(why) => {
                    report.unreadable += 1;
                    tracing::error!(row = id, db, key = %String::from_utf8_lossy(&key), "{why}");
                    continue;
                }
            };
            let done = sqlx::query(&st.rekey_update)
                .bind(keyring.seal(db, &key, &value))
                .bind(id)
                .bind(cas)
                .execute(&mut *transaction)
                .await
                .map_err(|e| shared.unavailable(e))?;
            if done.rows_affected() == 1 {
                report.resealed += 1;
            } else {
                report.written_meanwhile += 1;
            }
        }
        transaction
            .commit()
            .await
            .map_err(|e| shared.unavailable(e))
    }

    fn rekey_row(&self, row: &sqlx::any::AnyRow) -> std::result::Result<StoredRow, String> {
        let get_i64 = |i| row.try_get::<i64, _>(i).map_err(|e| e.to_string());
        let key = if self.shared.dialect == Dialect::MySql {
            let text: String = row.try_get(2).map_err(|e| e.to_string())?;
            hex::decode(text).map_err(|e| e.to_string())?
        } else {
            row.try_get(2).map_err(|e| e.to_string())?
        };
        let stored: Vec<u8> = row.try_get(3).map_err(|e| e.to_string())?;
        Ok(StoredRow {
            id: get_i64(0)?,
            db: get_i64(1)?,
            key,
            value: stored,
            cas: get_i64(4)?,
        })
    }
}
