//! How SQLite holds values: ids and JSON as text, flags as integers.

use baton_core::TaskId;
use serde_json::Value;
use sqlx::sqlite::{SqliteQueryResult, SqliteRow};
use sqlx::{Row, Sqlite};

use super::error::db_err;
use crate::shared::dialect::Dialect;
use crate::shared::rows::{DialectRow, decode_err};
use crate::{StoreError, StoreResult};

impl Dialect for Sqlite {
    type Id = String;

    fn id(id: TaskId) -> String {
        id.to_string()
    }

    fn db_err(e: sqlx::Error) -> StoreError {
        db_err(e)
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    const PARAM: char = '?';

    const SKIP_LOCKED: &'static str = "";

    const FOR_UPDATE: &'static str = "";
}

/// JSON stored as text.
pub(super) fn parse_json(s: Option<String>) -> StoreResult<Option<Value>> {
    s.map(|s| serde_json::from_str(&s).map_err(decode_err))
        .transpose()
}

impl DialectRow for SqliteRow {
    fn decode_error(_col: &str, e: sqlx::Error) -> StoreError {
        decode_err(e)
    }

    fn decode_json(&self, col: &str) -> StoreResult<Option<Value>> {
        parse_json(self.try_get(col).map_err(decode_err)?)
    }

    fn decode_id(&self, col: &str) -> StoreResult<TaskId> {
        let id: String = self.try_get(col).map_err(decode_err)?;
        id.parse().map_err(decode_err)
    }

    fn decode_opt_id(&self, col: &str) -> StoreResult<Option<TaskId>> {
        let id: Option<String> = self.try_get(col).map_err(decode_err)?;
        id.map(|p| p.parse()).transpose().map_err(decode_err)
    }
}
