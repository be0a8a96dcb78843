//! Response bodies. Field names are the API's contract; they change only additively.

use baton_core::{Task, TaskStatus, Timestamp};
pub use baton_engine::views::{ResultView, TaskView};
use serde::Serialize;

pub fn task_url(id: &impl std::fmt::Display) -> String {
    format!("/v1/tasks/{id}")
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Links {
    pub poll_url: String,
    pub cancel_url: String,
    pub result_url: String,
    pub events_url: String,
}

impl Links {
    pub fn for_task(task: &Task) -> Self {
        Links::for_id(&task.id)
    }

    pub fn for_id(id: &impl std::fmt::Display) -> Self {
        let base = task_url(id);
        Links {
            poll_url: base.clone(),
            cancel_url: base.clone(),
            result_url: format!("{base}/result"),
            events_url: format!("{base}/events"),
        }
    }
}

/// The answer to a submission.
#[derive(Debug, Serialize, schemars::JsonSchema)]
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

/// A view with the links a REST client follows.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Linked<T> {
    #[serde(flatten)]
    pub view: T,
    #[serde(flatten)]
    pub links: Links,
}

impl Linked<TaskView> {
    pub fn task(view: TaskView) -> Self {
        let links = Links::for_id(&view.task_id);
        Linked { view, links }
    }
}
