//! Extractors whose rejections are API errors that name the problem.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use baton_core::auth::Identity;
use baton_core::{ErrorCode, TaskId};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Malformed JSON, a wrong type or an unknown field gives a 400 that says
/// where; a body over the limit gives a 413. The content type was checked before the
/// request reached the route (see [`crate::guard`]).
pub struct ApiJson<T>(pub T);

/// The node's `http.max_body_bytes`, in every request's extensions, so that a refusal
/// can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The `413` of a body over the limit, naming it.
pub fn too_large(limit: Option<usize>) -> ApiError {
    let limit = limit.map_or(String::new(), |n| format!(": at most {n} bytes"));
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body is larger than this server accepts{limit} (http.max_body_bytes)"),
    )
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(limit)
            } else {
                ApiError::invalid(format!("could not read the request body: {rej}"))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::invalid(
                "request body is empty; expected a JSON object",
            ));
        }
        // Every body of this API is an object; serde would read an array positionally
        // and report a puzzling field error.
        Some(b'[') => {
            return Err(ApiError::invalid(
                "invalid request: expected a JSON object, got an array",
            ));
        }
        Some(_) => {}
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(format!("malformed JSON: {inner}"))
        } else if path == "." {
            ApiError::invalid(format!("invalid request: {inner}"))
        } else {
            ApiError::invalid(format!("invalid `{path}`: {inner}"))
        }
    })
}

/// Query parameters; unknown or malformed ones are a 400.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|rej| {
                let text = rej.body_text();
                let text = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::invalid(format!("invalid query string: {text}"))
            })
    }
}

pub fn parse_task_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse()
        .map_err(|e: baton_core::id::ParseTaskIdError| ApiError::invalid(e.to_string()))
}

/// Who a request is: the identity the node's authentication put on it (see
/// [`crate::auth`]). A router used without that layer trusts the `Baton-Principal`
/// header, as a node without authentication does; a malformed one is a 400.
pub struct Caller(pub Identity);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(identity) = parts.extensions.get::<Identity>() {
            return Ok(Caller(identity.clone()));
        }
        baton_core::principal::from_header(
            parts
                .headers
                .get(baton_core::principal::HEADER)
                .map(|v| v.as_bytes()),
        )
        .map(|p| Caller(Identity::trusted(p)))
        .map_err(ApiError::invalid)
    }
}

/// The principal (tenant) a request acts as.
pub struct Principal(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state)
            .await
            .map(|Caller(id)| Principal(id.principal))
    }
}
