//! `/v1/schedules`: tasks submitted on a cron, per principal (see
//! `baton_engine::schedules`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use baton_engine::schedules::{
    ScheduleList, ScheduleRequest, ScheduleRuns, ScheduleUpdate, ScheduleView,
};
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiJson, ApiQuery, Principal};
use crate::error::ApiError;

/// `POST /v1/schedules`.
pub async fn create(
    State(s): State<AppState>,
    Principal(principal): Principal,
    ApiJson(req): ApiJson<ScheduleRequest>,
) -> Result<Response, ApiError> {
    let view = s.engine.create_schedule(&principal, req).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /v1/schedules`.
pub async fn list(
    State(s): State<AppState>,
    Principal(principal): Principal,
) -> Result<Json<ScheduleList>, ApiError> {
    Ok(Json(s.engine.schedules(&principal).await?))
}

/// `GET /v1/schedules/{name}`.
pub async fn get_schedule(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    Ok(Json(s.engine.schedule(&principal, &name).await?))
}

/// `PATCH /v1/schedules/{name}`.
pub async fn update(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(name): Path<String>,
    ApiJson(upd): ApiJson<ScheduleUpdate>,
) -> Result<Json<ScheduleView>, ApiError> {
    Ok(Json(
        s.engine.update_schedule(&principal, &name, upd).await?,
    ))
}

/// `DELETE /v1/schedules/{name}`: the schedule goes; the tasks it made stay.
pub async fn delete(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.engine.delete_schedule(&principal, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_paused(
    s: &AppState,
    principal: &str,
    name: &str,
    paused: bool,
) -> Result<Json<ScheduleView>, ApiError> {
    let upd = ScheduleUpdate {
        paused: Some(paused),
        ..ScheduleUpdate::default()
    };
    Ok(Json(s.engine.update_schedule(principal, name, upd).await?))
}

/// `POST /v1/schedules/{name}/pause`.
pub async fn pause(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&s, &principal, &name, true).await
}

/// `POST /v1/schedules/{name}/resume`: ticks count from now (missed ones are not fired).
pub async fn resume(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&s, &principal, &name, false).await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    /// Runs to show, newest first (default 50, at most 1000).
    limit: Option<u32>,
}

/// `GET /v1/schedules/{name}/runs`.
pub async fn runs(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(name): Path<String>,
    ApiQuery(p): ApiQuery<RunParams>,
) -> Result<Json<ScheduleRuns>, ApiError> {
    Ok(Json(
        s.engine.schedule_runs(&principal, &name, p.limit).await?,
    ))
}
