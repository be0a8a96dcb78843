//! `/v1/tasks`: submit, batch submit, get, result (long-poll), cancel, retry, list; and
//! `/v1/tools`, the catalog.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_core::TaskStatus;
use baton_core::submit::SubmitRequest;
use baton_engine::engine::Cancelled;
use baton_engine::page::{self, Page};
use baton_engine::reads::TaskFilter;
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiJson, ApiQuery, Principal, parse_task_id};
use super::views::{
    Accepted, BatchAccepted, CancelAnswer, Linked, ResultView, TaskList, TaskView, ToolEntry,
    ToolList, task_url,
};
use crate::error::ApiError;

/// Most tasks in one batch request.
pub const MAX_BATCH: usize = 10_000;

pub(crate) fn accepted(
    body: impl serde::Serialize,
    location: Option<String>,
    replayed: bool,
) -> Response {
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// `Idempotency-Key` header, folded into the request (it must agree with the body's).
fn apply_idempotency_header(headers: &HeaderMap, req: &mut SubmitRequest) -> Result<(), ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(());
    };
    let key = v
        .to_str()
        .map_err(|_| ApiError::invalid("Idempotency-Key header must be visible ASCII"))?
        .to_string();
    match &req.idempotency_key {
        Some(body) if *body != key => Err(ApiError::invalid(
            "Idempotency-Key header and idempotency_key in the body differ",
        )),
        _ => {
            req.idempotency_key = Some(key);
            Ok(())
        }
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitParams {
    /// Wait up to this many seconds for the task to finish and answer with its result
    /// (`200`); if it has not finished by then, the usual `202`.
    wait: Option<u64>,
}

pub async fn submit(
    State(s): State<AppState>,
    Principal(principal): Principal,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<SubmitParams>,
    ApiJson(mut req): ApiJson<SubmitRequest>,
) -> Result<Response, ApiError> {
    let wait = check_wait(p.wait)?;
    apply_idempotency_header(&headers, &mut req)?;
    let sub = s.engine.submit(&principal, req).await?;
    if !wait.is_zero() {
        // The task is durable already; waiting only saves the client a second request.
        let task = tokio::select! {
            t = s.engine.wait(&principal, sub.task.id, wait) => t?,
            _ = s.shutdown.cancelled() => sub.task.clone(),
        };
        if task.status.is_final() {
            let mut resp = Json(ResultView::new(task)).into_response();
            if let Ok(loc) = HeaderValue::from_str(&task_url(&sub.task.id)) {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            return Ok(resp);
        }
    }
    Ok(accepted(
        Accepted::new(&sub.task, sub.created),
        Some(task_url(&sub.task.id)),
        !sub.created,
    ))
}

/// `?wait=S`: how long a request may wait (the rule every door shares).
pub(crate) fn check_wait(wait: Option<u64>) -> Result<std::time::Duration, ApiError> {
    page::wait("wait", wait).map_err(|e| ApiError::invalid(e.message))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    tasks: Vec<SubmitRequest>,
}

pub async fn submit_batch(
    State(s): State<AppState>,
    Principal(principal): Principal,
    ApiJson(batch): ApiJson<BatchRequest>,
) -> Result<Response, ApiError> {
    if batch.tasks.is_empty() {
        return Err(ApiError::invalid("`tasks` is empty"));
    }
    if batch.tasks.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "`tasks` has {} entries; at most {MAX_BATCH} per request",
            batch.tasks.len()
        )));
    }
    let subs = s.engine.submit_many(&principal, batch.tasks).await?;
    let tasks: Vec<Accepted> = subs
        .iter()
        .map(|s| Accepted::new(&s.task, s.created))
        .collect();
    Ok(accepted(BatchAccepted { tasks }, None, false))
}

pub async fn get_task(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_task_id(&id)?;
    let view = s.engine.describe(&principal, id).await?;
    Ok(Json(Linked::task(view)).into_response())
}

/// `PATCH /v1/tasks/{id}`: a pending task's new priority and/or due time.
pub async fn update(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
    ApiJson(update): ApiJson<baton_core::submit::TaskUpdate>,
) -> Result<Response, ApiError> {
    let id = parse_task_id(&id)?;
    s.engine.reschedule(&principal, id, &update).await?;
    let view = s.engine.describe(&principal, id).await?;
    Ok(Json(Linked::task(view)).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    /// Lines after this number (`next_after` of the previous page); from the first
    /// kept line when absent.
    after: Option<i64>,
    /// Most lines, 1 to 1000 (default 1000).
    limit: Option<u32>,
    /// Seconds to wait for a line when there is none yet and the task runs on.
    wait: Option<u64>,
}

/// `GET /v1/tasks/{id}/logs`: what the task's tool logged, oldest first.
pub async fn logs(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<LogParams>,
) -> Result<Json<baton_engine::views::LogPage>, ApiError> {
    let id = parse_task_id(&id)?;
    let wait = check_wait(p.wait)?;
    // The rule every page follows, with a whole page by default.
    let limit = Page::parse(Some(p.limit.unwrap_or(page::MAX_PAGE)), None)
        .map_err(|e| ApiError::invalid(e.message))?
        .limit;
    let after = p.after.unwrap_or(0);
    let page = tokio::select! {
        p = s.engine.logs(&principal, id, after, limit, wait) => p?,
        _ = s.shutdown.cancelled() => s.engine.logs(&principal, id, after, limit, std::time::Duration::ZERO).await?,
    };
    Ok(Json(page))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultParams {
    wait: Option<u64>,
}

pub async fn result(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<ResultParams>,
) -> Result<Response, ApiError> {
    let id = parse_task_id(&id)?;
    let wait = check_wait(p.wait)?;
    let task = tokio::select! {
        t = s.engine.wait_stored(&principal, id, wait) => t?,
        _ = s.shutdown.cancelled() => s.engine.get(&principal, id).await?,
    };
    if let Some((path, _)) = task
        .result
        .as_ref()
        .and_then(baton_engine::payloads::reference)
    {
        // Kept in object storage: streamed from there, never held whole here.
        let stream = s.engine.payload_stream(path).await?;
        return Ok(streamed_result(task, stream));
    }
    if task.status.is_final() {
        Ok(Json(ResultView::new(task)).into_response())
    } else {
        let mut resp = (StatusCode::ACCEPTED, Json(ResultView::new(task))).into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Ok(resp)
    }
}

/// A result view whose `result` is the bytes of an object: the view's JSON around them.
fn streamed_result(
    mut task: baton_core::Task,
    object: futures::stream::BoxStream<
        'static,
        Result<bytes::Bytes, baton_engine::objects::ObjectsError>,
    >,
) -> Response {
    use futures::StreamExt;
    // A placeholder no JSON text can contain unescaped marks where the object goes.
    const HOLE: &str = "\u{0}baton-payload\u{0}";
    task.result = Some(serde_json::Value::String(HOLE.into()));
    let view = serde_json::to_string(&ResultView::new(task)).unwrap_or_default();
    let marker = serde_json::Value::String(HOLE.into()).to_string();
    let (head, tail) = view.split_once(&marker).unwrap_or((&view, ""));
    let (head, tail) = (
        bytes::Bytes::from(head.to_string()),
        bytes::Bytes::from(tail.to_string()),
    );
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(head) })
        .chain(object.map(|chunk| chunk.map_err(std::io::Error::other)))
        .chain(futures::stream::once(async move { Ok(tail) }));
    let mut resp = axum::body::Body::from_stream(body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub async fn cancel(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_task_id(&id)?;
    let (task, message) = match s.engine.cancel(&principal, id).await? {
        Cancelled::Now(t) => (t, "cancelled before it started"),
        Cancelled::Requested(t) => (t, "cancellation requested; the tool is being stopped"),
    };
    Ok(accepted(
        CancelAnswer {
            task_id: task.id.to_string(),
            status: task.status,
            cancel_requested: true,
            message: message.into(),
            poll_url: task_url(&task.id),
        },
        None,
        false,
    ))
}

pub async fn retry(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_task_id(&id)?;
    let task = s.engine.retry(&principal, id).await?;
    Ok(accepted(
        Linked::task(TaskView::new(task, None, false)),
        Some(task_url(&id)),
        false,
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputRequest {
    responses: serde_json::Value,
}

/// `POST /v1/tasks/{id}/input`: answers the task's `input_requests`.
pub async fn input(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InputRequest>,
) -> Result<Response, ApiError> {
    let id = parse_task_id(&id)?;
    let task = s
        .engine
        .provide_input(&principal, id, body.responses)
        .await?;
    Ok(accepted(
        Linked::task(TaskView::new(task, None, false)),
        Some(task_url(&id)),
        false,
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    tool: Option<String>,
    queue: Option<String>,
    /// The steps of one workflow.
    workflow_id: Option<String>,
    /// The children of one task.
    parent_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn list(
    State(s): State<AppState>,
    Principal(principal): Principal,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let page =
        Page::parse(p.limit, p.cursor.as_deref()).map_err(|e| ApiError::invalid(e.message))?;
    let filter = TaskFilter {
        status: p
            .status
            .as_deref()
            .map(str::parse::<TaskStatus>)
            .transpose()
            .map_err(ApiError::invalid)?,
        tool: p.tool,
        queue: p.queue,
        workflow_id: p.workflow_id,
        parent_id: p.parent_id.as_deref().map(parse_task_id).transpose()?,
    };
    let found = s.engine.task_page(&principal, filter, page).await?;
    let tasks: Vec<Linked<TaskView>> = found.tasks.into_iter().map(Linked::task).collect();
    Ok(Json(TaskList {
        tasks,
        next_cursor: found.next_cursor,
    })
    .into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolParams {
    /// Rank the tools for this query (by name, description and argument schema) and
    /// return the best first, each with its `score`, instead of the whole catalog.
    q: Option<String>,
    /// With `q`: at most this many tools (default 10, at most 100).
    limit: Option<u32>,
}

/// `GET /v1/tools`: the catalog, or with `?q=` the tools that best match a query.
pub async fn tools(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<ToolParams>,
) -> Result<Json<ToolList>, ApiError> {
    let Some(q) = p.q else {
        if p.limit.is_some() {
            return Err(ApiError::invalid("`limit` goes with `q` (a search)"));
        }
        let tools = s
            .engine
            .tools()
            .catalog()
            .into_iter()
            .map(|e| ToolEntry {
                name: e.qualified_name,
                server: e.server,
                description: e.info.description.clone(),
                input_schema: (*e.info.input_schema).clone(),
                score: None,
            })
            .collect();
        return Ok(Json(ToolList { tools }));
    };
    let found = baton_engine::tools::search::ToolSearch {
        query: q,
        limit: p.limit,
    }
    .run(s.engine.tools())
    .map_err(ApiError::invalid)?;
    let tools = found
        .tools
        .into_iter()
        .map(|t| ToolEntry {
            name: t.name,
            server: t.server,
            description: t.description,
            input_schema: t.input_schema,
            score: Some(t.score),
        })
        .collect();
    Ok(Json(ToolList { tools }))
}
