//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the store answers
//! and the node is not draining).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::views::Health;
use crate::error::ApiError;

pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        store: None,
    })
}

pub async fn readyz(State(s): State<AppState>) -> Result<Json<Health>, ApiError> {
    s.engine.ready().await?;
    Ok(Json(Health {
        status: "ready".into(),
        store: Some(s.engine.backend().into()),
    }))
}

pub async fn index() -> Json<Value> {
    Json(json!({
        "name": "baton",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": {
            "tasks": "/v1/tasks",
            "queues": "/v1/queues",
            "tools": "/v1/tools",
            "openapi": "/openapi.json",
            "health": "/healthz",
            "ready": "/readyz"
        }
    }))
}
