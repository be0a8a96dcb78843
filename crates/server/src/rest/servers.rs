//! `/v1/servers`: the MCP servers whose tools Baton runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use baton_upstream::ServerStatus;
use baton_upstream::{ServerConfig, UpstreamError};
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiJson, ApiQuery};
use super::views::{GroupView, Removed, ServerList};
use crate::error::ApiError;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only servers with this tag (discovery by capability).
    tag: Option<String>,
}

pub async fn list(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Json<ServerList> {
    let servers: Vec<_> = s
        .upstreams
        .list()
        .into_iter()
        .filter(|srv| p.tag.as_ref().is_none_or(|t| srv.config.tags.contains(t)))
        .map(|srv| srv.status())
        .collect();
    let groups = s
        .upstreams
        .groups()
        .into_iter()
        .map(|(name, members)| GroupView { name, members })
        .collect();
    Json(ServerList { servers, groups })
}

pub async fn get_server(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ServerStatus>, ApiError> {
    let server = s
        .upstreams
        .get(&name)
        .ok_or_else(|| ApiError::from(UpstreamError::NotFound(name)))?;
    Ok(Json(server.status()))
}

/// Registers a server, waits until it answers (or says why it cannot), then stores it so
/// that it survives restarts.
pub async fn add(
    State(s): State<AppState>,
    ApiJson(config): ApiJson<ServerConfig>,
) -> Result<Response, ApiError> {
    // Checked before anything is spawned: a refused registration runs nothing.
    if config.command.is_some() && !s.allow_runtime_commands {
        return Err(ApiError::new(
            baton_core::ErrorCode::PermissionDenied,
            "this node does not register stdio servers (commands it would run) at runtime; \
             add the server to the config file's [[servers]], or set \
             upstream.allow_runtime_commands = true",
        ));
    }
    let server = s.upstreams.register(config).await?;
    Ok((StatusCode::CREATED, Json(server.status())).into_response())
}

pub async fn remove(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    s.upstreams.unregister(&name).await?;
    Ok(Json(Removed { removed: name }))
}
