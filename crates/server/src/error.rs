//! Errors on the HTTP wire: `{"error": {"code": "...", "message": "..."}}`.
//!
//! Errors reach this door as a [`baton_engine::WireError`] (what a client may see, by the
//! one rule of `baton_core::error`), and their status comes from the one wire table
//! (`ErrorCode::http_status`).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_core::ErrorCode;
use baton_engine::EngineError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// Structured detail for the client (e.g. every problem of a workflow definition).
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::NotFound, message)
    }
}

pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl From<baton_engine::WireError> for ApiError {
    fn from(w: baton_engine::WireError) -> Self {
        ApiError {
            code: w.code,
            message: w.message,
            retry_after: w.retry_after,
            details: w.details,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError::from(e.to_wire())
    }
}

impl From<baton_upstream::UpstreamError> for ApiError {
    fn from(e: baton_upstream::UpstreamError) -> Self {
        match e {
            baton_upstream::UpstreamError::Store(e) => ApiError::from(e),
            e => ApiError::new(e.code(), e.to_string()),
        }
    }
}

impl From<baton_store::StoreError> for ApiError {
    fn from(e: baton_store::StoreError) -> Self {
        ApiError::from(EngineError::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
        if let Some(d) = self.details {
            body["error"]["details"] = d;
        }
        let mut resp = (status_of(self.code), axum::Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
