//! `/v1/servers`: the MCP servers whose tools Baton runs.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use baton_upstream::{Origin, ServerConfig, UpstreamError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{ApiJson, ApiQuery};
use crate::error::ApiError;

/// How long `POST /v1/servers` waits for the new server to answer.
const FIRST_CONNECT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only servers with this tag (discovery by capability).
    tag: Option<String>,
}

pub async fn list(State(s): State<AppState>, ApiQuery(p): ApiQuery<ListParams>) -> Json<Value> {
    let servers: Vec<_> = s
        .upstreams
        .list()
        .into_iter()
        .filter(|srv| p.tag.as_ref().is_none_or(|t| srv.config.tags.contains(t)))
        .map(|srv| srv.status())
        .collect();
    let groups: Vec<Value> = s
        .upstreams
        .groups()
        .into_iter()
        .map(|(name, members)| json!({"name": name, "members": members}))
        .collect();
    Json(json!({"servers": servers, "groups": groups}))
}

pub async fn get_server(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server = s
        .upstreams
        .get(&name)
        .ok_or_else(|| ApiError::from(UpstreamError::NotFound(name)))?;
    Ok(Json(json!(server.status())))
}

/// Registers a server, waits until it answers (or says why it cannot), then stores it so
/// that it survives restarts.
pub async fn add(
    State(s): State<AppState>,
    ApiJson(config): ApiJson<ServerConfig>,
) -> Result<Response, ApiError> {
    let name = config.name.clone();
    let server = s.upstreams.add(config.clone(), Origin::Api)?;
    if let Err(why) = server.first_attempt(FIRST_CONNECT).await {
        let _ = s.upstreams.remove(&name).await;
        return Err(UpstreamError::Unreachable { name, why }.into());
    }
    let definition = serde_json::to_value(&config).map_err(|e| ApiError::invalid(e.to_string()))?;
    if let Err(e) = s
        .engine
        .store()
        .put_server(&name, definition, s.engine.now())
        .await
    {
        let _ = s.upstreams.remove(&name).await;
        return Err(e.into());
    }
    Ok((StatusCode::CREATED, Json(json!(server.status()))).into_response())
}

pub async fn remove(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server = s
        .upstreams
        .get(&name)
        .ok_or_else(|| ApiError::from(UpstreamError::NotFound(name.clone())))?;
    if server.origin == Origin::Config {
        return Err(UpstreamError::FromConfig(name).into());
    }
    s.upstreams.remove(&name).await?;
    s.engine.store().delete_server(&name).await?;
    Ok(Json(json!({"removed": name})))
}
