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
    #[error(transparent)]
    Store(StoreError),
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
            EngineError::TaskNotFound(_) | EngineError::WorkflowNotFound(_) => ErrorCode::NotFound,
            EngineError::Conflict(_) => ErrorCode::Conflict,
            EngineError::TooManyActive { .. } => ErrorCode::ResourceExhausted,
            EngineError::ShuttingDown => ErrorCode::Unavailable,
            EngineError::Store(e) => e.code(),
        }
    }

    /// How long a client should wait before trying again, when waiting helps.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EngineError::TooManyActive { retry_after, .. } => Some(*retry_after),
            EngineError::ShuttingDown => Some(Duration::from_secs(5)),
            EngineError::Store(e) if e.code().is_retryable() => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}
