//! The workflow statements of PostgreSQL.

use sqlx::Postgres;

use crate::shared::rows::workflow_columns;
use crate::shared::workflows::WorkflowSql;

impl WorkflowSql for Postgres {
    const INSERT_WORKFLOW: &'static str = "INSERT INTO workflows (id, name, owner, definition, \
         status, steps, created_at, updated_at) \
         VALUES ($1, $2, $3, $4::json, 'running', '{}', $5, $5) RETURNING seq";

    const GET_WORKFLOW: &'static str = concat!(
        "SELECT ",
        workflow_columns!(),
        " FROM workflows WHERE id = $1"
    );

    const LOCK_WORKFLOW: &'static str = concat!(
        "SELECT ",
        workflow_columns!(),
        " FROM workflows WHERE id = $1 FOR UPDATE"
    );

    const LIST_WORKFLOWS: &'static str =
        concat!("SELECT ", workflow_columns!(), " FROM workflows WHERE true");

    const SAVE_WORKFLOW: &'static str = "UPDATE workflows SET status = $1, steps = $2::json, \
         updated_at = $3, completed_at = $4 WHERE id = $5";
}
