//! The append-only event log: one entry per task state change, written in the same
//! transaction as the change. It is the audit trail, the source of SSE replays
//! (`Last-Event-ID` is an event's `seq`), and what live subscribers receive.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{TaskId, TaskStatus, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The task was stored.
    Created,
    /// A worker claimed it (a new attempt began).
    Started,
    /// The handler reported progress.
    Progress,
    /// The tool waits for input from the client.
    InputRequired,
    /// Input was supplied; the tool resumes.
    InputReceived,
    /// A client asked to cancel a running task.
    CancelRequested,
    /// The attempt failed and the task will run again after a backoff.
    RetryScheduled,
    /// The worker's lease expired; the task is queued again (or dead-lettered).
    LeaseExpired,
    /// A worker gave the task back (shutdown, restart); it is queued again.
    Released,
    /// A person asked to run a failed or cancelled task again.
    Retried,
    /// The task's priority changed.
    Reprioritized,
    Completed,
    Failed,
    Cancelled,
}

impl EventKind {
    pub const ALL: [EventKind; 14] = [
        EventKind::Created,
        EventKind::Started,
        EventKind::Progress,
        EventKind::InputRequired,
        EventKind::InputReceived,
        EventKind::CancelRequested,
        EventKind::RetryScheduled,
        EventKind::LeaseExpired,
        EventKind::Released,
        EventKind::Retried,
        EventKind::Reprioritized,
        EventKind::Completed,
        EventKind::Failed,
        EventKind::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Started => "started",
            EventKind::Progress => "progress",
            EventKind::InputRequired => "input_required",
            EventKind::InputReceived => "input_received",
            EventKind::CancelRequested => "cancel_requested",
            EventKind::RetryScheduled => "retry_scheduled",
            EventKind::LeaseExpired => "lease_expired",
            EventKind::Released => "released",
            EventKind::Retried => "retried",
            EventKind::Reprioritized => "reprioritized",
            EventKind::Completed => "completed",
            EventKind::Failed => "failed",
            EventKind::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the event log. `status` is the task's status after the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskEvent {
    pub seq: i64,
    pub task_id: TaskId,
    pub at: crate::Timestamp,
    pub kind: EventKind,
    pub status: TaskStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// For a `completed` event as it is published live: the tool's result, so that
    /// waiters need not read it back. Not part of the log (the result is on the task).
    #[serde(skip)]
    #[schemars(skip)]
    pub result: Option<std::sync::Arc<Value>>,
}

/// An event before the store gives it a sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub task_id: TaskId,
    pub at: Timestamp,
    pub kind: EventKind,
    pub status: TaskStatus,
    pub attempt: Option<u32>,
    pub progress: Option<f64>,
    pub message: Option<String>,
    pub data: Option<Value>,
}

impl NewEvent {
    pub fn new(task_id: TaskId, at: Timestamp, kind: EventKind, status: TaskStatus) -> Self {
        NewEvent {
            task_id,
            at,
            kind,
            status,
            attempt: None,
            progress: None,
            message: None,
            data: None,
        }
    }

    pub fn with_seq(self, seq: i64) -> TaskEvent {
        TaskEvent {
            seq,
            task_id: self.task_id,
            at: self.at,
            kind: self.kind,
            status: self.status,
            attempt: self.attempt,
            progress: self.progress,
            message: self.message,
            data: self.data,
            result: None,
        }
    }
}
