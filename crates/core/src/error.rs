//! The wire-level error vocabulary shared by every front door, and its one table.
//!
//! Each crate has its own `thiserror` enum; each of those maps to one [`ErrorCode`]. The
//! table below ([`ErrorCode::wire`]) gives, side by side, the HTTP status REST answers
//! and the JSON-RPC code MCP answers for each; no adapter maps errors on its own.
//! Whether a client may retry is part of the code, and when it says how long to wait,
//! both doors pass it on (`Retry-After`; `data.retryAfterSeconds`).
//!
//! **What a client may see.** The message of every error names the problem in words
//! meant for the caller, except for `internal` errors: those are a bug or a failure the
//! caller cannot act on, and their text may hold database or file details. A client gets
//! `internal error (reference R; details are in the server log)`, and the full error is
//! logged with R (see `baton_engine::EngineError::to_wire`). REST, MCP requests and the
//! MCP orchestration tools all follow this one rule.

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
    /// The request carries no valid credential where one is required (HTTP 401).
    Unauthenticated,
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
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Internal => "internal",
        }
    }

    /// The wire table: (HTTP status, JSON-RPC error code).
    ///
    /// JSON-RPC has few codes of its own: what is wrong with the request's content is
    /// "invalid params" (-32602, as the MCP specification uses for unknown tools and task
    /// ids), what is wrong with the message itself "invalid request" (-32600), a refusal
    /// of the caller is in the range JSON-RPC reserves for servers (-32001 without a valid
    /// credential, -32003 without the scope), and the rest
    /// is "internal error" (-32603) with the Baton code in `data.code`.
    pub const fn wire(self) -> (u16, i64) {
        match self {
            ErrorCode::InvalidArgument => (400, -32602),
            ErrorCode::NotFound => (404, -32602),
            ErrorCode::Conflict => (409, -32602),
            ErrorCode::PayloadTooLarge => (413, -32600),
            ErrorCode::UnsupportedMediaType => (415, -32600),
            // Internal error on JSON-RPC, as MCP clients have always seen; `data` tells
            // them it is a capacity or availability refusal and when to retry.
            ErrorCode::ResourceExhausted => (429, -32603),
            ErrorCode::Unavailable => (503, -32603),
            ErrorCode::Unauthenticated => (401, -32001),
            ErrorCode::PermissionDenied => (403, -32003),
            ErrorCode::Internal => (500, -32603),
        }
    }

    /// The HTTP status REST answers with (see [`ErrorCode::wire`]).
    pub const fn http_status(self) -> u16 {
        self.wire().0
    }

    /// The JSON-RPC error code MCP answers with (see [`ErrorCode::wire`]).
    pub const fn jsonrpc_code(self) -> i64 {
        self.wire().1
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
