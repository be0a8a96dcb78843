//! A finished task as the `CallToolResult` a client gets: the tool's own result when it
//! completed, an error result naming the task otherwise.

use baton_core::{Task, TaskStatus};
use serde_json::{Value, json};

use crate::errors::error_result;

/// What a waiting call returns: the tool's result as the server sent it; a failure as an
/// `isError` result that names the task.
pub fn final_result(task: &Task) -> Value {
    match task.status {
        TaskStatus::Completed => task.result.clone().unwrap_or(json!({"content": []})),
        TaskStatus::Failed => match &task.error {
            // The tool's own isError result, exactly as it came.
            Some(e) if e.data.as_ref().is_some_and(|d| d.get("isError").is_some()) => {
                e.data.clone().unwrap_or_default()
            }
            Some(e) => error_result(format!(
                "task {} failed: {} [{}]",
                task.id, e.message, e.code
            )),
            None => error_result(format!("task {} failed", task.id)),
        },
        TaskStatus::Cancelled => error_result(format!("task {} was cancelled", task.id)),
        other => error_result(format!("task {} is {other}", task.id)),
    }
}
