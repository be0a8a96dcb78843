//! `/v1/queues`: depth per status, throughput, pause, resume and clear; `/v1/stats`; and
//! `/v1/peers`, the processes sharing the store.

use axum::Json;
use axum::extract::{Path, State};

use super::AppState;
use super::extract::{ApiJson, ApiQuery, Principal};
use super::views::{ClearQueue, OneOrMany, Peers, QueueCleared, QueueState, Stats};
use crate::error::ApiError;

/// The caller's queues: each principal has its own, with its own counts and pauses.
pub async fn list(
    State(s): State<AppState>,
    Principal(principal): Principal,
) -> Result<Json<baton_engine::views::QueuesView>, ApiError> {
    Ok(Json(s.engine.queues_view(Some(&principal)).await?))
}

pub async fn pause(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(name): Path<String>,
) -> Result<Json<QueueState>, ApiError> {
    s.engine.set_queue_paused(&principal, &name, true).await?;
    Ok(Json(QueueState { name, paused: true }))
}

pub async fn resume(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(name): Path<String>,
) -> Result<Json<QueueState>, ApiError> {
    s.engine.set_queue_paused(&principal, &name, false).await?;
    Ok(Json(QueueState {
        name,
        paused: false,
    }))
}

/// `POST /v1/queues/{name}/clear`: cancels the queue's open tasks of the statuses asked
/// for (pending by default). Needs `confirm: true`.
pub async fn clear(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ClearQueue>,
) -> Result<Json<QueueCleared>, ApiError> {
    if body.confirm != Some(true) {
        return Err(ApiError::invalid(
            "confirm: clearing cancels the queue's tasks; send `\"confirm\": true` to do it",
        ));
    }
    let statuses = body.status.map(OneOrMany::into_vec).unwrap_or_default();
    Ok(Json(
        s.engine.clear_queue(&principal, &name, &statuses).await?,
    ))
}

/// Cheap node counters (no store scan): for dashboards and benchmarks that poll.
pub async fn stats(State(s): State<AppState>) -> Json<Stats> {
    Json(Stats {
        active_tasks: s.engine.active_tasks(),
        running_here: s.engine.running_here() as u64,
        node: s.engine.config().node_id.clone(),
        store: s.engine.backend().into(),
    })
}

/// `GET /v1/peers`: the nodes and workers sharing this store, with their health.
pub async fn peers(State(s): State<AppState>) -> Result<Json<Peers>, ApiError> {
    Ok(Json(Peers {
        peers: s.engine.peer_views().await?,
    }))
}

/// `POST /v1/peers/{id}/drain`: the peer stops claiming tasks and finishes what it runs.
pub async fn drain_peer(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<baton_engine::views::PeerView>, ApiError> {
    Ok(Json(s.engine.drain_peer(&id).await?))
}

/// `GET /v1/analytics`: the caller's tasks over a window (every principal's for admins).
pub async fn analytics(
    State(s): State<AppState>,
    super::extract::Caller(who): super::extract::Caller,
    super::extract::ApiQuery(p): super::extract::ApiQuery<baton_engine::analytics::AnalyticsParams>,
) -> Result<Json<baton_engine::analytics::AnalyticsView>, ApiError> {
    let owner = (!who.scopes.contains(&baton_core::auth::Scope::Admin)).then_some(who.principal);
    Ok(Json(s.engine.analytics(owner.as_deref(), &p).await?))
}

/// `DELETE /v1/cache`: the cached results of a tool (`?tool=`), or of every tool, answer
/// no more calls.
pub async fn invalidate_cache(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<baton_engine::cache::InvalidateCache>,
) -> Result<Json<baton_engine::cache::CacheInvalidated>, ApiError> {
    Ok(Json(s.engine.invalidate(&q).await?))
}
