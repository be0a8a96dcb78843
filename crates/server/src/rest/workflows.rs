//! `/v1/workflows`: submit (JSON or YAML), list, get, cancel, retry, DAG, timeline,
//! result.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_engine::workflow::{DagFormat, DagOutput, parse_definition};
use baton_store::WorkflowStatus;
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiQuery, Principal, parse_task_id};
use super::tasks::{accepted, check_wait};
use super::views::{LinkedWorkflow, Timeline, WorkflowList};
use crate::error::ApiError;

pub fn workflow_url(id: &str) -> String {
    format!("/v1/workflows/{id}")
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitParams {
    /// A second submission with the same key answers with the workflow the first one
    /// made (`200`, header `idempotent-replayed: true`) and stores nothing.
    idempotency_key: Option<String>,
    /// The task submitting it (an agent running that task): the steps' tasks become its
    /// children.
    parent_id: Option<String>,
}

/// `POST /v1/workflows`: the body is the definition, as JSON or YAML.
pub async fn submit(
    State(s): State<AppState>,
    Principal(principal): Principal,
    ApiQuery(p): ApiQuery<SubmitParams>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::invalid("the workflow definition is not UTF-8 text"))?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid(
            "the request body is empty; send the workflow definition as JSON or YAML",
        ));
    }
    let definition = parse_definition(text)?;
    let options = baton_engine::workflow::WorkflowOptions {
        idempotency_key: p.idempotency_key,
        parent: p.parent_id.as_deref().map(parse_task_id).transpose()?,
    };
    let submitted = s
        .engine
        .submit_workflow_with(&principal, definition, options)
        .await?;
    let location = workflow_url(&submitted.workflow.workflow_id);
    if !submitted.created {
        let mut resp = Json(LinkedWorkflow::new(submitted.workflow)).into_response();
        if let Ok(loc) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, loc);
        }
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(resp);
    }
    Ok(accepted(
        LinkedWorkflow::new(submitted.workflow),
        Some(location),
        false,
    ))
}

pub async fn get_workflow(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = s.engine.get_workflow(&principal, &id).await?;
    Ok(Json(LinkedWorkflow::new(view)).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /v1/workflows`: the caller's workflows, newest first, without their steps.
pub async fn list(
    State(s): State<AppState>,
    Principal(principal): Principal,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let page = baton_engine::page::Page::parse(p.limit, p.cursor.as_deref())
        .map_err(|e| ApiError::invalid(e.message))?;
    let status = p
        .status
        .as_deref()
        .map(str::parse::<WorkflowStatus>)
        .transpose()
        .map_err(ApiError::invalid)?;
    let found = s.engine.workflow_page(&principal, status, page).await?;
    Ok(Json(WorkflowList {
        workflows: found
            .workflows
            .into_iter()
            .map(LinkedWorkflow::new)
            .collect(),
        next_cursor: found.next_cursor,
    })
    .into_response())
}

pub async fn cancel(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = s.engine.cancel_workflow(&principal, &id).await?;
    Ok(accepted(LinkedWorkflow::new(view), None, false))
}

pub async fn retry(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = s.engine.retry_workflow(&principal, &id).await?;
    let location = workflow_url(&view.workflow_id);
    Ok(accepted(LinkedWorkflow::new(view), Some(location), false))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DagParams {
    format: Option<String>,
}

/// `GET /v1/workflows/{id}/dag?format=json|dot|mermaid`.
pub async fn dag(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<DagParams>,
) -> Result<Response, ApiError> {
    let format: DagFormat = p
        .format
        .as_deref()
        .unwrap_or("json")
        .parse()
        .map_err(ApiError::invalid)?;
    Ok(
        match s.engine.workflow_dag(&principal, &id, format).await? {
            DagOutput::Json(v) => Json(v).into_response(),
            DagOutput::Text(text) => {
                let content_type = match format {
                    DagFormat::Dot => "text/vnd.graphviz; charset=utf-8",
                    _ => "text/plain; charset=utf-8",
                };
                let mut resp = (StatusCode::OK, text).into_response();
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                resp
            }
        },
    )
}

/// `GET /v1/workflows/{id}/timeline`: every step's task events, in time order.
pub async fn timeline(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let events = s.engine.workflow_timeline(&principal, &id).await?;
    Ok(Json(Timeline {
        workflow_id: id,
        events,
    })
    .into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultParams {
    wait: Option<u64>,
}

/// `GET /v1/workflows/{id}/result[?wait=S]`: the final steps' results; `202` while the
/// workflow runs.
pub async fn result(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<ResultParams>,
) -> Result<Response, ApiError> {
    let wait = check_wait(p.wait)?;
    let v = tokio::select! {
        r = s.engine.workflow_result(&principal, &id, wait) => r?,
        _ = s.shutdown.cancelled() => s.engine.workflow_result(&principal, &id, std::time::Duration::ZERO).await?,
    };
    let running = v.status == WorkflowStatus::Running;
    let mut resp = Json(v).into_response();
    if running {
        *resp.status_mut() = StatusCode::ACCEPTED;
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    Ok(resp)
}
