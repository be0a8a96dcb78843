//! The wire-level error vocabulary shared by every front door.
//!
//! Each crate has its own `thiserror` enum; each of those maps to one [`ErrorCode`], and
//! the REST and MCP adapters map an `ErrorCode` to an HTTP status or a JSON-RPC code in
//! exactly one place each. Whether a client may retry is part of the code.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or names something invalid (HTTP 400).
    InvalidArgument,
    /// No such task, tool, queue… or not visible to the caller (HTTP 404).
    NotFound,
    /// The request conflicts with the current state, e.g. cancelling a finished task
    /// (HTTP 409).
    Conflict,
    /// The request body exceeds the configured limit (HTTP 413).
    PayloadTooLarge,
    /// The request body is not of a media type the endpoint takes (HTTP 415).
    UnsupportedMediaType,
    /// A capacity limit was reached; retry later (HTTP 429 with `Retry-After`).
    ResourceExhausted,
    /// The store or another dependency is temporarily unavailable; retry later (HTTP 503).
    Unavailable,
    /// The caller is not allowed to do this (HTTP 403).
    PermissionDenied,
    /// A bug or an unexpected failure; details are logged, not returned (HTTP 500).
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether the same request may succeed later without change.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::ResourceExhausted | ErrorCode::Unavailable)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
