//! `/v1/webhooks`: a principal's webhooks, their deliveries and secrets (see
//! `baton_engine::webhooks`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use baton_engine::webhooks::{
    DeliveryPage, DeliveryView, RotateRequest, WebhookList, WebhookRequest, WebhookRotated,
    WebhookView,
};
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiJson, ApiQuery, Caller, Principal, parse_json};
use crate::error::ApiError;

/// `POST /v1/webhooks`: the answer holds the secret, shown this once.
pub async fn create(
    State(s): State<AppState>,
    Caller(caller): Caller,
    ApiJson(req): ApiJson<WebhookRequest>,
) -> Result<Response, ApiError> {
    let created = s
        .engine
        .create_webhook(&caller.principal, caller.is_admin(), req)
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET /v1/webhooks`.
pub async fn list(
    State(s): State<AppState>,
    Principal(principal): Principal,
) -> Result<Json<WebhookList>, ApiError> {
    Ok(Json(s.engine.webhooks(&principal).await?))
}

/// `GET /v1/webhooks/{id}`.
pub async fn get_webhook(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(s.engine.webhook(&principal, &id).await?))
}

/// `DELETE /v1/webhooks/{id}`: the webhook and its deliveries go.
pub async fn delete(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.engine.delete_webhook(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/webhooks/{id}/rotate` (body optional): a new secret, shown this once; the
/// old one keeps signing for the overlap.
pub async fn rotate(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<WebhookRotated>, ApiError> {
    let req: RotateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateRequest::default()
    } else {
        parse_json(&body)?
    };
    Ok(Json(s.engine.rotate_webhook(&principal, &id, req).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryParams {
    /// Deliveries per page, newest first (default 50, at most 1000).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /v1/webhooks/{id}/deliveries`.
pub async fn deliveries(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<DeliveryParams>,
) -> Result<Json<DeliveryPage>, ApiError> {
    Ok(Json(
        s.engine
            .webhook_deliveries(&principal, &id, p.limit, p.cursor.as_deref())
            .await?,
    ))
}

/// `POST /v1/webhooks/{id}/deliveries/{delivery_id}/redeliver`: sent again now, with the
/// same `webhook-id`.
pub async fn redeliver(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let view: DeliveryView = s.engine.redeliver(&principal, &id, &delivery_id).await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}
