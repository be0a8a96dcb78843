//! The workflow statements of SQLite.

use sqlx::Sqlite;

use crate::shared::rows::workflow_columns;
use crate::shared::workflows::WorkflowSql;

impl WorkflowSql for Sqlite {
    const INSERT_WORKFLOW: &'static str = "INSERT INTO workflows (id, name, owner, definition, \
         status, steps, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'running', '{}', ?5, ?5) RETURNING seq";

    const GET_WORKFLOW: &'static str = concat!(
        "SELECT ",
        workflow_columns!(),
        " FROM workflows WHERE id = ?1"
    );

    /// The writer holds SQLite's write lock: reading the row is enough.
    const LOCK_WORKFLOW: &'static str = Self::GET_WORKFLOW;

    const LIST_WORKFLOWS: &'static str = concat!(
        "SELECT ",
        workflow_columns!(),
        " FROM workflows WHERE 1 = 1"
    );

    const SAVE_WORKFLOW: &'static str = "UPDATE workflows SET status = ?1, steps = ?2, \
         updated_at = ?3, completed_at = ?4 WHERE id = ?5";
}
