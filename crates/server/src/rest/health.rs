//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the store answers
//! and the node is not draining).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::error::ApiError;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    s.engine.ready().await?;
    Ok(Json(
        json!({"status": "ready", "store": s.engine.backend()}),
    ))
}

pub async fn index() -> Json<Value> {
    Json(json!({
        "name": "baton",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": {
            "tasks": "/v1/tasks",
            "queues": "/v1/queues",
            "tools": "/v1/tools",
            "health": "/healthz",
            "ready": "/readyz"
        }
    }))
}
