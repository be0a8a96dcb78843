//! Input requests on PostgreSQL: their statements, and collecting the answers.

use baton_core::TaskId;
use serde_json::Value;
use sqlx::Postgres;
use sqlx::postgres::PgPool;
use sqlx::types::Json;

use super::error::db_err;
use super::rows::uuid;
use crate::StoreResult;
use crate::shared::input::InputSql;
use crate::shared::rows::leased;

impl InputSql for Postgres {
    const ASK_FOR_INPUT: &'static str = concat!(
        "UPDATE tasks SET status = 'input_required', input_requests = $1::json, \
         input_responses = NULL, updated_at = $2 WHERE id = $3 AND lease_token = $4 AND ",
        leased!(),
        " AND lease_expires_at >= $2 RETURNING attempt"
    );

    const ACCEPT_INPUT: &'static str = "UPDATE tasks SET status = 'running', \
         input_requests = NULL, input_responses = $1::json, updated_at = $2 WHERE id = $3";
}

/// Read and clear in one statement: the CTE sees the row before the update.
const TAKE_INPUT: &str = "WITH old AS (SELECT seq, input_responses FROM tasks \
       WHERE id = $1 AND lease_token = $2 AND input_responses IS NOT NULL FOR UPDATE) \
     UPDATE tasks SET input_responses = NULL FROM old WHERE tasks.seq = old.seq \
     RETURNING old.input_responses";

/// See [`Store::take_input`](crate::Store::take_input).
pub(super) async fn take_input(
    pool: &PgPool,
    id: TaskId,
    token: i64,
) -> StoreResult<Option<Value>> {
    let taken: Option<Json<Value>> = sqlx::query_scalar(TAKE_INPUT)
        .bind(uuid(id))
        .bind(token)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    Ok(taken.map(|j| j.0))
}
