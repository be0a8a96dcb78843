//! What the front doors show: one view per thing, the same over REST and MCP. REST adds
//! the links a client follows; the MCP tools return these as `structuredContent`, and
//! their output schemas are generated from them, as the OpenAPI document's are.
//!
//! Field names are the API's contract: they change only additively.

use std::collections::BTreeMap;

use baton_core::{Task, TaskError, TaskStatus, Timestamp};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// Who holds a running task.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LeaseView {
    /// The process (node id) running it.
    pub worker: String,
    pub expires_at: Timestamp,
}

/// A task.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TaskView {
    pub task_id: String,
    /// Qualified tool name, `server__tool`.
    pub tool: String,
    pub arguments: Value,
    pub queue: String,
    /// 0 to 100; higher runs first.
    pub priority: i32,
    pub status: TaskStatus,
    /// 0.0 to 1.0, as the tool last reported it.
    pub progress: Option<f64>,
    pub progress_message: Option<String>,
    /// Attempts started so far.
    pub attempt: u32,
    pub max_attempts: u32,
    pub run_at: Timestamp,
    pub timeout_ms: Option<u64>,
    pub idempotency_key: Option<String>,
    /// The principal it belongs to.
    pub owner: String,
    /// With the owner, the group whose tasks take turns with other groups' (see
    /// `group_key` in the submission).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// The task that created it (agent-to-agent delegation).
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
    /// Its own time to live (`ttl_ms`) runs out then: once finished and past it, the task
    /// may be deleted before the retention period is over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// When it will probably finish, from its progress or the tool's recent durations.
    pub estimated_completion: Option<Timestamp>,
    /// Why a pending task is not starting (e.g. its server is unavailable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
    pub cancel_requested: bool,
    pub lease: Option<LeaseView>,
    /// Questions the tool asks while the task is `input_required`, by request id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_requests: Option<Value>,
    pub error: Option<TaskError>,
    /// The tool's result (an MCP `CallToolResult`): in single-task views of completed
    /// tasks; lists leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The task that called the tool, when the result cache answered this one with that
    /// call's result (the tool was not called for this task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<String>,
    /// The identical call this pending task waits for (single-flight): it takes that
    /// call's result when it completes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Read back from the archive: retention deleted the task from the store after
    /// archiving it (`[archive]`). Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

impl TaskView {
    pub fn new(task: Task, estimated_completion: Option<Timestamp>, with_result: bool) -> Self {
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
            group_key: task.group_key,
            parent_id: task.parent_id.map(|p| p.to_string()),
            children: None,
            workflow_id: task.step.as_ref().map(|s| s.workflow_id.clone()),
            step_id: task.step.map(|s| s.step_id),
            metadata: task.metadata,
            created_at: task.created_at,
            started_at: task.started_at,
            updated_at: task.updated_at,
            completed_at: task.completed_at,
            expires_at: task.expires_at,
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
            cached_from: task.cached_from.map(|t| t.to_string()),
            waiting_for: task.follows.map(|t| t.to_string()),
            archived: false,
        }
    }
}

/// A task's outcome (`GET /v1/tasks/{id}/result`, `task_result`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ResultView {
    pub task_id: String,
    pub status: TaskStatus,
    /// Whether the task reached a final status.
    pub finished: bool,
    pub attempt: u32,
    pub completed_at: Option<Timestamp>,
    /// The tool's result, when it completed.
    pub result: Option<Value>,
    pub error: Option<TaskError>,
    /// The task whose call the result came from, when the result cache answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<String>,
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
            finished,
            attempt: task.attempt,
            completed_at: task.completed_at,
            result: task.result,
            error: task.error,
            cached_from: task.cached_from.map(|t| t.to_string()),
            progress: if finished { None } else { task.progress },
            progress_message: if finished {
                None
            } else {
                task.progress_message
            },
        }
    }
}

/// A process sharing the store (a node or a worker), as it last reported itself.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PeerView {
    pub id: String,
    /// `node` (API and workers), `api` (no workers), `worker` (no API), `mcp` (stdio).
    pub role: String,
    /// Where its API listens, if it has one.
    pub address: Option<String>,
    pub version: String,
    /// `live`, `stopped` or `lost`, as the store has it.
    pub state: String,
    /// `healthy`, `late` (a heartbeat overdue), `lost` (silent for a lease; its tasks
    /// were queued again) or `stopped` (stopped cleanly).
    pub health: String,
    pub started_at: Timestamp,
    pub last_heartbeat: Timestamp,
    /// Tasks it runs now.
    pub running: u64,
    /// Tasks it finished since it started.
    pub finished: u64,
    /// Tasks it finished per second, recently.
    pub throughput: f64,
    /// Asked to stop claiming tasks (it finishes what it runs).
    pub draining: bool,
    /// Whether this is the process answering.
    #[serde(rename = "self")]
    pub is_self: bool,
}

/// A queue: its depth per status and recent throughput.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct QueueView {
    pub name: String,
    pub paused: bool,
    /// Tasks per status (every status is present, zero included).
    pub counts: BTreeMap<String, u64>,
    /// Tasks completed in the last minute.
    pub completed_last_minute: u64,
    /// When the oldest runnable pending task became runnable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_pending_run_at: Option<Timestamp>,
}

impl From<baton_store::QueueStats> for QueueView {
    fn from(q: baton_store::QueueStats) -> Self {
        QueueView {
            name: q.name,
            paused: q.paused,
            counts: q.counts,
            completed_last_minute: q.completed_last_minute,
            oldest_pending_run_at: q.oldest_pending_run_at,
        }
    }
}

/// A queue paused or resumed: `POST /v1/queues/{name}/pause` and `…/resume`, the MCP
/// tools `queue_pause` and `queue_resume`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct QueueState {
    pub name: String,
    pub paused: bool,
}

/// A queue cleared: `POST /v1/queues/{name}/clear`, the MCP tool `queue_clear`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct QueueCleared {
    pub name: String,
    /// The statuses cleared.
    pub statuses: Vec<TaskStatus>,
    /// Tasks cancelled (running ones told to stop).
    pub cancelled: u64,
}

/// Every queue, and the node's counters.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct QueuesView {
    pub queues: Vec<QueueView>,
    /// Tasks pending, running or waiting for input (as the submit-time cap sees them).
    pub active_tasks: u64,
    /// Tasks running on the node answering.
    pub running_here: u64,
}

/// A page of a task's log (`GET /v1/tasks/{id}/logs`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LogPage {
    /// Oldest first.
    pub logs: Vec<baton_core::log::LogLine>,
    /// Pass as `after` to read on from here.
    pub next_after: i64,
    /// The task is over and no line follows these.
    pub finished: bool,
}
