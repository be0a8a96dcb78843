//! The engine's errors. Each maps to one wire [`ErrorCode`]; the message is written for
//! the person who sent the request.

use std::time::Duration;

use baton_core::ErrorCode;
use baton_core::submit::InvalidRequest;
use baton_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Invalid(#[from] InvalidRequest),
    #[error("unknown tool `{tool}`{hint}")]
    UnknownTool { tool: String, hint: String },
    #[error("invalid arguments for `{tool}`: {details}")]
    InvalidArguments { tool: String, details: String },
    #[error("task {0} not found")]
    TaskNotFound(String),
    #[error("workflow {0} not found")]
    WorkflowNotFound(String),
    #[error("queue `{0}` not found")]
    QueueNotFound(String),
    #[error("key {0} not found")]
    KeyNotFound(String),
    #[error("schedule `{0}` not found")]
    ScheduleNotFound(String),
    #[error("webhook {0} not found")]
    WebhookNotFound(String),
    #[error("delivery {0} not found")]
    DeliveryNotFound(String),
    #[error("no live peer `{0}`")]
    PeerNotFound(String),
    #[error("invalid workflow: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidWorkflow(Vec<baton_workflow::Problem>),
    #[error("{0}")]
    Conflict(String),
    #[error("too many active tasks ({active} of at most {limit}); retry after {} s", retry_after.as_secs())]
    TooManyActive {
        active: u64,
        limit: u64,
        retry_after: Duration,
    },
    #[error("Baton is shutting down")]
    ShuttingDown,
    /// Configured servers are on their first connection attempt.
    #[error("servers still connecting: {}", .0.join(", "))]
    Starting(Vec<String>),
    #[error(transparent)]
    Store(StoreError),
    /// The archive holds the item but it could not be read.
    #[error("the archive: {0}")]
    Archive(#[from] crate::archive::ArchiveError),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            // A conflict with stored state is the request's, not the store's.
            StoreError::Conflict(m) => EngineError::Conflict(m),
            other => EngineError::Store(other),
        }
    }
}

impl EngineError {
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::Invalid(_)
            | EngineError::UnknownTool { .. }
            | EngineError::InvalidArguments { .. }
            | EngineError::InvalidWorkflow(_) => ErrorCode::InvalidArgument,
            EngineError::TaskNotFound(_)
            | EngineError::WorkflowNotFound(_)
            | EngineError::QueueNotFound(_)
            | EngineError::KeyNotFound(_)
            | EngineError::ScheduleNotFound(_)
            | EngineError::WebhookNotFound(_)
            | EngineError::DeliveryNotFound(_)
            | EngineError::PeerNotFound(_) => ErrorCode::NotFound,
            EngineError::Conflict(_) => ErrorCode::Conflict,
            EngineError::TooManyActive { .. } => ErrorCode::ResourceExhausted,
            EngineError::ShuttingDown | EngineError::Starting(_) => ErrorCode::Unavailable,
            EngineError::Store(e) => e.code(),
            EngineError::Archive(crate::archive::ArchiveError::Objects(
                crate::objects::ObjectsError::Unavailable(_),
            )) => ErrorCode::Unavailable,
            EngineError::Archive(_) => ErrorCode::Internal,
        }
    }

    /// How long a client should wait before trying again, when waiting helps.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EngineError::TooManyActive { retry_after, .. } => Some(*retry_after),
            EngineError::ShuttingDown => Some(Duration::from_secs(5)),
            EngineError::Starting(_) => Some(Duration::from_secs(1)),
            EngineError::Store(e) if e.code().is_retryable() => Some(Duration::from_secs(1)),
            EngineError::Archive(_) if self.code() == ErrorCode::Unavailable => {
                Some(Duration::from_secs(5))
            }
            _ => None,
        }
    }
}

/// An error as a client may see it, for every front door (see [`baton_core::error`]):
/// the code, a message for the caller, how long to wait before retrying when that helps,
/// and structured details where there are some.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<Duration>,
    pub details: Option<serde_json::Value>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }
}

impl EngineError {
    /// The error as a client may see it. An internal error is logged here with a
    /// reference, and the client gets the reference only; a refusal because a dependency
    /// is unavailable is logged as a warning.
    pub fn to_wire(&self) -> WireError {
        let code = self.code();
        let message = match code {
            ErrorCode::Internal => {
                let reference = format!("{:08x}", rand::random::<u32>());
                tracing::error!(error = %self, reference, "internal error");
                format!("internal error (reference {reference}; details are in the server log)")
            }
            ErrorCode::Unavailable => {
                tracing::warn!(error = %self, "request refused: dependency unavailable");
                self.to_string()
            }
            _ => self.to_string(),
        };
        WireError {
            code,
            message,
            retry_after: self.retry_after(),
            details: match self {
                EngineError::InvalidWorkflow(problems) => serde_json::to_value(problems).ok(),
                _ => None,
            },
        }
    }
}

impl From<EngineError> for WireError {
    fn from(e: EngineError) -> Self {
        e.to_wire()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One rule for every door: an internal error's text stays in the log; a refusal
    /// keeps its message and says when to retry.
    #[test]
    fn what_a_client_may_see() {
        let internal = EngineError::Store(StoreError::Database(
            "relation \"tasks\" does not exist at 10.0.0.7".into(),
        ));
        let w = internal.to_wire();
        assert_eq!(w.code, ErrorCode::Internal);
        assert!(
            w.message.starts_with("internal error (reference "),
            "{}",
            w.message
        );
        assert!(!w.message.contains("10.0.0.7"));
        let busy = EngineError::TooManyActive {
            active: 10,
            limit: 10,
            retry_after: Duration::from_secs(3),
        };
        let w = busy.to_wire();
        assert_eq!(
            (w.code, w.retry_after),
            (ErrorCode::ResourceExhausted, Some(Duration::from_secs(3)))
        );
        assert!(w.message.contains("too many active tasks"));
        let down = EngineError::Store(StoreError::Unavailable("connection refused".into()));
        assert_eq!(down.to_wire().retry_after, Some(Duration::from_secs(1)));
    }
}
