//! Response bodies. Field names are the API's contract; they change only additively.

use baton_core::{Task, TaskError, TaskStatus, Timestamp};
use serde::Serialize;
use serde_json::Value;

pub fn task_url(id: &impl std::fmt::Display) -> String {
    format!("/v1/tasks/{id}")
}

#[derive(Debug, Serialize)]
pub struct Links {
    pub poll_url: String,
    pub cancel_url: String,
    pub result_url: String,
    pub events_url: String,
}

impl Links {
    pub fn for_task(task: &Task) -> Self {
        let base = task_url(&task.id);
        Links {
            poll_url: base.clone(),
            cancel_url: base.clone(),
            result_url: format!("{base}/result"),
            events_url: format!("{base}/events"),
        }
    }
}

/// The answer to a submission.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub task_id: String,
    pub status: TaskStatus,
    /// `false` when an idempotency key matched an existing task.
    pub created: bool,
    pub created_at: Timestamp,
    pub run_at: Timestamp,
    #[serde(flatten)]
    pub links: Links,
}

impl Accepted {
    pub fn new(task: &Task, created: bool) -> Self {
        Accepted {
            task_id: task.id.to_string(),
            status: task.status,
            created,
            created_at: task.created_at,
            run_at: task.run_at,
            links: Links::for_task(task),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LeaseView {
    pub worker: String,
    pub expires_at: Timestamp,
}

#[derive(Debug, Serialize)]
pub struct TaskView {
    pub task_id: String,
    pub tool: String,
    pub arguments: Value,
    pub queue: String,
    pub priority: i32,
    pub status: TaskStatus,
    pub progress: Option<f64>,
    pub progress_message: Option<String>,
    pub attempt: u32,
    pub max_attempts: u32,
    pub run_at: Timestamp,
    pub timeout_ms: Option<u64>,
    pub idempotency_key: Option<String>,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Tasks created while this one ran (single-task views only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub estimated_completion: Option<Timestamp>,
    /// Why a pending task is not starting (e.g. its server is unavailable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
    pub cancel_requested: bool,
    pub lease: Option<LeaseView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_requests: Option<Value>,
    pub error: Option<TaskError>,
    /// Present in single-task views of completed tasks; lists leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(flatten)]
    pub links: Links,
}

impl TaskView {
    pub fn new(task: Task, estimated_completion: Option<Timestamp>, with_result: bool) -> Self {
        let links = Links::for_task(&task);
        TaskView {
            task_id: task.id.to_string(),
            tool: task.tool,
            arguments: task.arguments,
            queue: task.queue,
            priority: task.priority,
            status: task.status,
            progress: task.progress,
            progress_message: task.progress_message,
            attempt: task.attempt,
            max_attempts: task.max_attempts,
            run_at: task.run_at,
            timeout_ms: task.timeout_ms,
            idempotency_key: task.idempotency_key,
            owner: task.owner,
            parent_id: task.parent_id.map(|p| p.to_string()),
            children: None,
            workflow_id: task.step.as_ref().map(|s| s.workflow_id.clone()),
            step_id: task.step.map(|s| s.step_id),
            metadata: task.metadata,
            created_at: task.created_at,
            started_at: task.started_at,
            updated_at: task.updated_at,
            completed_at: task.completed_at,
            estimated_completion,
            waiting_reason: None,
            cancel_requested: task.cancel_requested,
            lease: task.lease.map(|l| LeaseView {
                worker: l.owner,
                expires_at: l.expires_at,
            }),
            input_requests: task.input_requests,
            error: task.error,
            result: if with_result { task.result } else { None },
            links,
        }
    }
}

/// `GET /v1/tasks/{id}/result`.
#[derive(Debug, Serialize)]
pub struct ResultView {
    pub task_id: String,
    pub status: TaskStatus,
    pub attempt: u32,
    pub completed_at: Option<Timestamp>,
    pub result: Option<Value>,
    pub error: Option<TaskError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_message: Option<String>,
}

impl ResultView {
    pub fn new(task: Task) -> Self {
        let finished = task.status.is_final();
        ResultView {
            task_id: task.id.to_string(),
            status: task.status,
            attempt: task.attempt,
            completed_at: task.completed_at,
            result: task.result,
            error: task.error,
            progress: if finished { None } else { task.progress },
            progress_message: if finished {
                None
            } else {
                task.progress_message
            },
        }
    }
}
