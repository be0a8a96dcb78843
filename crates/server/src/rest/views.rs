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
    /// Its own time to live runs out then (when it asked for one shorter than the
    /// retention).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// The result cache answered it at once with the result of this task's call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<String>,
    /// It waits for this task, an identical call in flight, and will take its result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
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
            expires_at: task.expires_at,
            cached_from: task.cached_from.map(|t| t.to_string()),
            waiting_for: task.follows.map(|t| t.to_string()),
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

/// The links of a workflow.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WorkflowLinks {
    pub poll_url: String,
    pub cancel_url: String,
    pub dag_url: String,
    pub timeline_url: String,
    pub result_url: String,
}

impl WorkflowLinks {
    pub fn for_id(id: &str) -> Self {
        let url = format!("/v1/workflows/{id}");
        WorkflowLinks {
            poll_url: url.clone(),
            cancel_url: url.clone(),
            dag_url: format!("{url}/dag"),
            timeline_url: format!("{url}/timeline"),
            result_url: format!("{url}/result"),
        }
    }
}

/// A workflow with the links a REST client follows.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LinkedWorkflow {
    #[serde(flatten)]
    pub view: baton_engine::workflow::WorkflowView,
    #[serde(flatten)]
    pub links: WorkflowLinks,
}

impl LinkedWorkflow {
    pub fn new(view: baton_engine::workflow::WorkflowView) -> Self {
        let links = WorkflowLinks::for_id(&view.workflow_id);
        LinkedWorkflow { view, links }
    }
}

/// `GET /v1/tasks`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TaskList {
    pub tasks: Vec<Linked<TaskView>>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// `POST /v1/tasks/batch`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BatchAccepted {
    pub tasks: Vec<Accepted>,
}

/// `DELETE /v1/tasks/{id}`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CancelAnswer {
    pub task_id: String,
    pub status: TaskStatus,
    pub cancel_requested: bool,
    /// Cancelled at once (it had not started), or the tool is being stopped.
    pub message: String,
    pub poll_url: String,
}

/// `GET /v1/workflows`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WorkflowList {
    pub workflows: Vec<LinkedWorkflow>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// `GET /v1/workflows/{id}/timeline`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Timeline {
    pub workflow_id: String,
    pub events: Vec<baton_engine::workflow::TimelineEntry>,
}

pub use baton_engine::views::{QueueCleared, QueueState};

/// The body of `POST /v1/queues/{name}/clear`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearQueue {
    /// Which tasks: `pending` (the default), `running`, `input_required`, or a list of
    /// them.
    #[serde(default)]
    pub status: Option<OneOrMany>,
    /// Must be `true`: clearing cancels tasks.
    #[serde(default)]
    pub confirm: Option<bool>,
}

/// A string, or a list of them.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `GET /v1/stats`: cheap node counters (no store scan).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Stats {
    /// Tasks pending, running or waiting for input, as admission sees them.
    pub active_tasks: u64,
    /// Tasks running on this node.
    pub running_here: u64,
    /// This node's id.
    pub node: String,
    /// `sqlite` or `postgres`.
    pub store: String,
}

/// `GET /v1/peers`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Peers {
    pub peers: Vec<baton_engine::views::PeerView>,
}

/// A group of replica servers.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct GroupView {
    pub name: String,
    pub members: Vec<String>,
}

/// `GET /v1/servers`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ServerList {
    pub servers: Vec<baton_upstream::ServerStatus>,
    pub groups: Vec<GroupView>,
}

/// `DELETE /v1/servers/{name}`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Removed {
    pub removed: String,
}

/// One tool of the catalog.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ToolEntry {
    /// Qualified name, `server__tool`.
    pub name: String,
    pub server: String,
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    pub input_schema: serde_json::Value,
    /// With `?q=`: its BM25 relevance to the query (higher is better, comparable within
    /// one search only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

/// `GET /v1/tools`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ToolList {
    pub tools: Vec<ToolEntry>,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Health {
    /// `ok` (alive) or `ready` (the store answers, the node is not draining).
    pub status: String,
    /// `sqlite` or `postgres` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}
