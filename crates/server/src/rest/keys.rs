//! `/v1/keys`: API keys made, listed, revoked and rotated through a running node, and
//! `/v1/audit`, the audit log. Both need their scope (`keys:admin`, `audit:read`; see
//! [`crate::auth::policy`]).
//!
//! A credential cannot hand out more than it has: a key made through the API has at most
//! its maker's scopes, and only an `admin` makes keys for other principals or sees them.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use baton_core::Timestamp;
use baton_core::auth::{Rate, Scope};
use baton_engine::keys::{CreatedKey, KeyView, NewKey};
use baton_store::AuditQuery;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{ApiJson, ApiQuery, Caller};
use crate::error::ApiError;

/// `POST /v1/keys`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for (shown in listings and the audit log).
    pub name: String,
    /// The principal (tenant) the key acts as; default: the caller's.
    pub principal: Option<String>,
    /// E.g. `["tasks:read", "tasks:write"]`.
    pub scopes: Vec<String>,
    /// How long the key works, e.g. `90d`; default: until revoked.
    pub expires_in: Option<String>,
    /// E.g. `50/s`, `600/m`.
    pub rate_limit: Option<String>,
    /// Most active tasks the key's principal may have through it.
    pub max_active: Option<u64>,
}

/// `POST /v1/keys/{key_id}/rotate`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the current secret keeps working, e.g. `1h` (default `24h`; `0s` ends it
    /// at once).
    pub grace: Option<String>,
}

/// `GET /v1/keys`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

fn duration(field: &str, text: &str) -> Result<Duration, ApiError> {
    humantime::parse_duration(text)
        .map_err(|e| ApiError::invalid(format!("invalid `{field}` ({text}): {e}; e.g. 90d, 12h")))
}

/// The key's principal and scopes, if the caller may make such a key.
fn grantable(
    caller: &baton_core::auth::Identity,
    principal: Option<String>,
    scopes: &[String],
) -> Result<(String, BTreeSet<Scope>), ApiError> {
    let scopes: BTreeSet<Scope> = scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<_, _>>()
        .map_err(|m| ApiError::invalid(format!("invalid `scopes`: {m}")))?;
    if let Some(s) = scopes.iter().find(|s| !caller.has(**s)) {
        return Err(ApiError::new(
            baton_core::ErrorCode::PermissionDenied,
            format!("a key cannot have the `{s}` scope its maker lacks"),
        ));
    }
    let principal = principal.unwrap_or_else(|| caller.principal.clone());
    if principal != caller.principal && !caller.is_admin() {
        return Err(ApiError::new(
            baton_core::ErrorCode::PermissionDenied,
            "only an admin credential makes keys for another principal",
        ));
    }
    Ok((principal, scopes))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    let (principal, scopes) = grantable(&caller, body.principal, &body.scopes)?;
    let expires_in = body
        .expires_in
        .as_deref()
        .map(|t| duration("expires_in", t))
        .transpose()?;
    let rate_limit = body
        .rate_limit
        .as_deref()
        .map(|r| r.parse::<Rate>())
        .transpose()
        .map_err(|m| ApiError::invalid(format!("invalid `rate_limit`: {m}")))?;
    let created: CreatedKey = s
        .engine
        .create_key(NewKey {
            name: body.name,
            principal,
            scopes,
            expires_in,
            rate_limit,
            max_active: body.max_active,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Whether the caller may see and change `key`: admins any, others their principal's.
fn visible(caller: &baton_core::auth::Identity, key: &KeyView) -> bool {
    caller.is_admin() || key.principal == caller.principal
}

async fn find(
    s: &AppState,
    caller: &baton_core::auth::Identity,
    key_id: &str,
) -> Result<(), ApiError> {
    let keys = s.engine.list_keys().await?;
    match keys.iter().find(|k| k.key_id == key_id) {
        Some(k) if visible(caller, k) => Ok(()),
        _ => Err(ApiError::not_found(format!("no key {key_id}"))),
    }
}

pub async fn list(
    State(s): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<KeyList>, ApiError> {
    let keys = s
        .engine
        .list_keys()
        .await?
        .into_iter()
        .filter(|k| visible(&caller, k))
        .collect();
    Ok(Json(KeyList { keys }))
}

pub async fn revoke(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(key_id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    find(&s, &caller, &key_id).await?;
    Ok(Json(s.engine.revoke_key(&key_id).await?))
}

pub async fn rotate(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(key_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<CreatedKey>, ApiError> {
    // The body is optional: none, or `{"grace": "1h"}`.
    let body: RotateKey = if body.iter().all(u8::is_ascii_whitespace) {
        RotateKey::default()
    } else {
        super::extract::parse_json(&body)?
    };
    find(&s, &caller, &key_id).await?;
    let grace = match body.grace {
        Some(t) => duration("grace", &t)?,
        None => Duration::from_secs(24 * 3600),
    };
    Ok(Json(s.engine.rotate_key(&key_id, grace).await?))
}

/// `GET /v1/audit` filters.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub principal: Option<String>,
    /// E.g. `tasks.submit`, `keys.revoke`, `mcp.tools/call`.
    pub action: Option<String>,
    /// A task id, key id, server or queue name.
    pub target: Option<String>,
    /// RFC 3339; entries at or after it.
    pub since: Option<String>,
    /// RFC 3339; entries before it.
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn time(field: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|t| {
        Timestamp::parse_rfc3339(t)
            .map_err(|e| ApiError::invalid(format!("invalid `{field}`: {e}")))
    })
    .transpose()
}

/// The audit log, newest first. Admins see every principal's entries; other holders of
/// `audit:read` see their own principal's.
pub async fn audit(
    State(s): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Json<baton_engine::audit::AuditPage>, ApiError> {
    let page = baton_engine::page::Page::parse(p.limit, p.cursor.as_deref())
        .map_err(|e| ApiError::invalid(e.message))?;
    let principal = match p.principal {
        Some(other) if other != caller.principal && !caller.is_admin() => {
            return Err(ApiError::new(
                baton_core::ErrorCode::PermissionDenied,
                "only an admin credential reads another principal's audit entries",
            ));
        }
        Some(p) => Some(p),
        None if caller.is_admin() => None,
        None => Some(caller.principal.clone()),
    };
    let query = AuditQuery {
        principal,
        action: p.action,
        target: p.target,
        since: time("since", p.since.as_deref())?,
        until: time("until", p.until.as_deref())?,
        ..Default::default()
    };
    Ok(Json(s.engine.audit_log(query, page).await?))
}
