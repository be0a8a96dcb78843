//! Errors on the HTTP wire: `{"error": {"code": "...", "message": "..."}}`.
//!
//! This is the only place an error becomes a status code. Messages of client errors and
//! of `unavailable` name the problem; internal errors are logged with a reference and
//! the client gets the reference, never the details.

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
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let code = e.code();
        let retry_after = e.retry_after();
        let details = match &e {
            EngineError::InvalidWorkflow(problems) => serde_json::to_value(problems).ok(),
            _ => None,
        };
        let message = if code == ErrorCode::Internal {
            let reference = format!("{:08x}", rand::random::<u32>());
            tracing::error!(error = %e, reference, "internal error");
            format!("internal error (reference {reference}; details are in the server log)")
        } else {
            if code == ErrorCode::Unavailable {
                tracing::warn!(error = %e, "request refused: dependency unavailable");
            }
            e.to_string()
        };
        ApiError {
            code,
            message,
            retry_after,
            details,
        }
    }
}

impl From<baton_upstream::UpstreamError> for ApiError {
    fn from(e: baton_upstream::UpstreamError) -> Self {
        ApiError::new(e.code(), e.to_string())
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
