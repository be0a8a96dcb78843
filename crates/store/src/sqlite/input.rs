//! Input requests on SQLite: their statements, and collecting the answers.

use baton_core::TaskId;
use serde_json::Value;
use sqlx::Sqlite;

use super::error::db_err;
use super::rows::parse_json;
use super::writer::Writer;
use crate::StoreResult;
use crate::shared::input::InputSql;
use crate::shared::rows::leased;

impl InputSql for Sqlite {
    const ASK_FOR_INPUT: &'static str = concat!(
        "UPDATE tasks SET status = 'input_required', input_requests = ?1, \
         input_responses = NULL, updated_at = ?2 WHERE id = ?3 AND lease_token = ?4 AND ",
        leased!(),
        " AND lease_expires_at >= ?2 RETURNING attempt"
    );

    const ACCEPT_INPUT: &'static str = "UPDATE tasks SET status = 'running', \
         input_requests = NULL, input_responses = ?1, updated_at = ?2 WHERE id = ?3";
}

// The statements of collecting the answers.

const STORED_INPUT: &str = "SELECT input_responses FROM tasks WHERE id = ? AND lease_token = ? \
     AND input_responses IS NOT NULL";

const CLEAR_INPUT: &str = "UPDATE tasks SET input_responses = NULL WHERE id = ?";

/// See [`Store::take_input`](crate::Store::take_input).
pub(super) async fn take_input(
    w: &mut Writer,
    id: TaskId,
    token: i64,
) -> StoreResult<Option<Value>> {
    let raw: Option<String> = sqlx::query_scalar(STORED_INPUT)
        .bind(id.to_string())
        .bind(token)
        .fetch_optional(&mut w.conn)
        .await
        .map_err(db_err)?;
    if raw.is_some() {
        sqlx::query(CLEAR_INPUT)
            .bind(id.to_string())
            .execute(&mut w.conn)
            .await
            .map_err(db_err)?;
    }
    parse_json(raw)
}
