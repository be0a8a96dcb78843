//! The task: one durable tool call.
//!
//! ```text
//!              claim                 handler ok
//!   pending ─────────────▶ running ──────────────▶ completed
//!     ▲  │                  │  │ ▲   handler error, no attempts left / not retryable
//!     │  │ cancel           │  │ └──────────────▶ failed (dead letter; retry by hand)
//!     │  ▼                  │  │ cancel reaches the handler
//!     │ cancelled ◀─────────┘  └──────────────────▶ input_required ─▶ running
//!     │                        retryable error, lease expired, released on shutdown
//!     └────────────────────────────────────────────
//! ```
//! `completed`, `failed` and `cancelled` are final; only a manual retry moves a `failed`
//! or `cancelled` task back to `pending`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{TaskId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    Running,
    InputRequired,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::InputRequired,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The statuses a task can leave without a manual retry.
    pub const ACTIVE: [TaskStatus; 3] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::InputRequired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::InputRequired => "input_required",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// Whether a worker holds a lease on a task in this status.
    pub fn is_leased(self) -> bool {
        matches!(self, TaskStatus::Running | TaskStatus::InputRequired)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status `{s}`; expected one of: {}",
                    TaskStatus::ALL.map(|s| s.as_str()).join(", ")
                )
            })
    }
}

/// Priority: higher runs first. The named levels are points on the numeric scale.
pub mod priority {
    pub const MIN: i32 = 0;
    pub const MAX: i32 = 100;
    pub const LOW: i32 = 25;
    pub const NORMAL: i32 = 50;
    pub const HIGH: i32 = 75;

    pub fn from_name(name: &str) -> Option<i32> {
        match name {
            "low" => Some(LOW),
            "normal" => Some(NORMAL),
            "high" => Some(HIGH),
            _ => None,
        }
    }
}

/// Why a task failed: `code` is machine-readable (`tool_error`, `timeout`,
/// `lease_expired`, `upstream_unavailable`…), `message` is for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl TaskError {
    pub fn new(code: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        TaskError {
            code: code.into(),
            message: message.into(),
            retryable,
            data: None,
        }
    }
}

/// The lease a worker holds on a running task. `token` is the fencing token: every
/// write a worker makes names it, so a worker whose lease was taken away cannot write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub token: i64,
    pub expires_at: Timestamp,
}

/// The workflow step a task runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StepRef {
    pub workflow_id: String,
    pub step_id: String,
}

/// A validated task about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub id: TaskId,
    pub tool: String,
    pub arguments: Value,
    pub queue: String,
    pub priority: i32,
    pub max_attempts: u32,
    pub run_at: Timestamp,
    pub timeout_ms: Option<u64>,
    pub idempotency_key: Option<String>,
    pub owner: String,
    pub parent_id: Option<TaskId>,
    /// Set when the task runs a step of a workflow.
    pub step: Option<StepRef>,
    pub metadata: Option<Value>,
    pub created_at: Timestamp,
    /// Once finished, the task may be deleted after this (its own time to live); `None`:
    /// the retention period alone decides.
    pub expires_at: Option<Timestamp>,
    /// The W3C `traceparent` of the request that made it: its runs join that trace.
    pub trace_parent: Option<String>,
    /// Claims rotate between the groups of a priority level: a group is the task's owner
    /// and this key (none: the owner alone), so one group's backlog does not starve the
    /// others (see [`Task::fair_key`]).
    pub group_key: Option<String>,
    /// Where to send one webhook-style callback when the task ends (completed, failed or
    /// cancelled).
    pub callback_url: Option<String>,
    /// Set when the tool's result may come from the result cache (see [`CacheLookup`]).
    pub cache: Option<CacheLookup>,
}

/// How a new task may use the result cache: a completed call with the same key since
/// `fresh_since` answers it at once, and while an identical call is in flight it waits
/// for that call's result instead of calling the tool again (single-flight).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheLookup {
    /// The call's identity: a digest of the principal, the tool and the canonical
    /// arguments.
    pub key: String,
    /// The oldest completion that may answer; `None` (a refresh): no stored result may,
    /// the tool runs and its result becomes the newest entry.
    pub fresh_since: Option<Timestamp>,
}

/// A stored task. Its JSON is also how the archive keeps a task (see `baton-engine`'s
/// `archive`), so fields change only additively there too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    /// Store-assigned insertion order: ties in scheduling and list cursors.
    pub seq: i64,
    pub tool: String,
    pub arguments: Value,
    pub queue: String,
    pub priority: i32,
    pub status: TaskStatus,
    pub progress: Option<f64>,
    pub progress_message: Option<String>,
    /// How many times a worker has started this task.
    pub attempt: u32,
    pub max_attempts: u32,
    pub run_at: Timestamp,
    pub timeout_ms: Option<u64>,
    pub idempotency_key: Option<String>,
    pub owner: String,
    pub parent_id: Option<TaskId>,
    /// Set when the task runs a step of a workflow.
    pub step: Option<StepRef>,
    pub metadata: Option<Value>,
    pub created_at: Timestamp,
    /// When the current (or last) attempt started.
    pub started_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// When the task reached a final status.
    pub completed_at: Option<Timestamp>,
    pub result: Option<Value>,
    pub error: Option<TaskError>,
    pub cancel_requested: bool,
    pub lease: Option<Lease>,
    /// What the tool waits for while `input_required`.
    pub input_requests: Option<Value>,
    /// Handler state that must survive a restart (e.g. an upstream task id).
    pub checkpoint: Option<Value>,
    /// Once finished, the task may be deleted after this (see [`NewTask::expires_at`]).
    pub expires_at: Option<Timestamp>,
    /// See [`NewTask::trace_parent`].
    pub trace_parent: Option<String>,
    /// See [`NewTask::group_key`].
    pub group_key: Option<String>,
    /// The task's place in its priority level, given by the store when it is created:
    /// its group's next place, but never behind the head of the line, so a group that
    /// was idle joins at the head and then alternates with the others (round-robin),
    /// while a group's own tasks keep their order.
    pub fair_key: i64,
    /// Set while the task is an entry of the result cache, or may become one (it is the
    /// call the others with its key wait for).
    pub cache_key: Option<String>,
    /// The completed task whose result this one took from the cache, without calling
    /// the tool.
    pub cached_from: Option<TaskId>,
    /// The identical call this pending task waits for (single-flight): it is not
    /// claimed, and ends with that call's result (or runs itself, if that call fails).
    pub follows: Option<TaskId>,
}

impl Task {
    /// How long the last attempt ran, for finished tasks.
    pub fn duration_ms(&self) -> Option<u64> {
        Some(self.completed_at?.millis_since(self.started_at?))
    }
}

/// Whether `v` is a W3C trace context `traceparent` Baton keeps: version `00`, a 32-hex
/// trace id and a 16-hex parent id, neither all zeros, and 2-hex flags.
pub fn is_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}
