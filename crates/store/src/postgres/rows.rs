//! How PostgreSQL holds values: ids as `uuid`, JSON as `json`, flags as `boolean`.

use baton_core::TaskId;
use serde_json::Value;
use sqlx::postgres::{PgQueryResult, PgRow};
use sqlx::types::{Json, Uuid};
use sqlx::{Postgres, Row};

use super::error::db_err;
use crate::shared::dialect::Dialect;
use crate::shared::rows::{DialectRow, decode_err};
use crate::{StoreError, StoreResult};

impl Dialect for Postgres {
    type Id = Uuid;

    fn id(id: TaskId) -> Uuid {
        uuid(id)
    }

    fn db_err(e: sqlx::Error) -> StoreError {
        db_err(e)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    const PARAM: char = '$';

    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    const FOR_UPDATE: &'static str = " FOR UPDATE";
}

/// A task id as PostgreSQL binds it.
pub(super) fn uuid(id: TaskId) -> Uuid {
    *id.as_uuid()
}

impl DialectRow for PgRow {
    fn decode_error(col: &str, e: sqlx::Error) -> StoreError {
        decode_err(format!("column {col}: {e}"))
    }

    fn decode_json(&self, col: &str) -> StoreResult<Option<Value>> {
        let json: Option<Json<Value>> =
            self.try_get(col).map_err(|e| Self::decode_error(col, e))?;
        Ok(json.map(|j| j.0))
    }

    fn decode_id(&self, col: &str) -> StoreResult<TaskId> {
        let id: Uuid = self.try_get(col).map_err(|e| Self::decode_error(col, e))?;
        Ok(TaskId::from_uuid(id))
    }

    fn decode_opt_id(&self, col: &str) -> StoreResult<Option<TaskId>> {
        let id: Option<Uuid> = self.try_get(col).map_err(|e| Self::decode_error(col, e))?;
        Ok(id.map(TaskId::from_uuid))
    }
}
