//! Baton tasks in the two task wire formats of MCP.
//!
//! 2025-11-25 (experimental core tasks): nested `CreateTaskResult`, `ttl`/`pollInterval`,
//! `tasks/get`, blocking `tasks/result` (which also carries the input requests of a task),
//! `tasks/list`, `tasks/cancel`, `notifications/tasks/status`.
//!
//! 2026-07-28 with `io.modelcontextprotocol/tasks`: flat `resultType: "task"`,
//! `ttlMs`/`pollIntervalMs`, `tasks/get` with the result, error or input requests inline,
//! `tasks/update` for answers, acknowledge-only `tasks/cancel`, and `notifications/tasks`
//! on a `subscriptions/listen` stream.
//!
//! One Baton task underneath both; every call checks the task belongs to the caller.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{Task, TaskId, TaskStatus};
use serde_json::{Value, json};

use crate::errors::engine_error;
use crate::protocol::{self, RpcError, TASKS_EXTENSION};
use crate::results::final_result;
use crate::session::Ctx;
use crate::state::McpService;

fn task_id(params: &Value) -> Result<TaskId, RpcError> {
    let raw = params
        .get("taskId")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("`taskId` (a string) is required"))?;
    raw.parse()
        .map_err(|_| RpcError::invalid_params(format!("unknown task `{raw}`")))
}

/// The task, if the caller may see it; otherwise the same error as an unknown task.
async fn owned(service: &McpService, ctx: &Ctx, id: TaskId) -> Result<Task, RpcError> {
    service
        .engine
        .get(&ctx.principal, id)
        .await
        .map_err(|_| RpcError::invalid_params(format!("unknown task `{id}`")))
}

fn rfc3339(t: baton_core::Timestamp) -> String {
    t.to_rfc3339()
}

/// A tool result marked `isError` counts as completed for 2026-07-28 (as failed for
/// 2025-11-25); Baton stores it as a failure that carries the result.
fn tool_error_result(task: &Task) -> Option<&Value> {
    task.error
        .as_ref()?
        .data
        .as_ref()
        .filter(|d| d.get("isError").is_some())
}

fn legacy_status(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Pending | TaskStatus::Running => "working",
        TaskStatus::InputRequired => "input_required",
        TaskStatus::Completed => "completed",
        TaskStatus::Failed => "failed",
        TaskStatus::Cancelled => "cancelled",
    }
}

fn status_message(task: &Task) -> Option<String> {
    match task.status {
        TaskStatus::Failed => task.error.as_ref().map(|e| e.message.clone()),
        TaskStatus::Pending => Some(format!("queued ({})", task.tool)),
        TaskStatus::Running | TaskStatus::InputRequired => task.progress_message.clone(),
        TaskStatus::Completed => None,
        TaskStatus::Cancelled => Some("cancelled".into()),
    }
}

/// How long the task is kept from its creation: its own time to live when it asked for
/// one shorter than the retention, else the retention (a lower bound: retention counts
/// from the finish).
fn ttl_ms(service: &McpService, task: &Task) -> u64 {
    task.expires_at.map_or(service.settings.task_ttl_ms, |e| {
        e.millis_since(task.created_at)
    })
}

/// A task as 2025-11-25 shows it.
pub fn legacy_task(service: &McpService, task: &Task) -> Value {
    let mut t = json!({
        "taskId": task.id.to_string(),
        "status": legacy_status(task.status),
        "createdAt": rfc3339(task.created_at),
        "lastUpdatedAt": rfc3339(task.updated_at),
        "ttl": ttl_ms(service, task),
        "pollInterval": service.settings.poll_interval_ms,
    });
    if let Some(m) = status_message(task) {
        t["statusMessage"] = json!(m);
    }
    t
}

/// A task as the 2026-07-28 extension shows it, without the detail fields.
fn ext_task(service: &McpService, task: &Task) -> Value {
    let status = match task.status {
        TaskStatus::Failed if tool_error_result(task).is_some() => "completed",
        s => legacy_status(s),
    };
    let mut t = json!({
        "taskId": task.id.to_string(),
        "status": status,
        "createdAt": rfc3339(task.created_at),
        "lastUpdatedAt": rfc3339(task.updated_at),
        "ttlMs": ttl_ms(service, task),
        "pollIntervalMs": service.settings.poll_interval_ms,
    });
    if let Some(m) = status_message(task) {
        t["statusMessage"] = json!(m);
    }
    t
}

pub fn ext_created(service: &McpService, task: &Task) -> Value {
    let mut t = ext_task(service, task);
    t["resultType"] = json!("task");
    t
}

/// A task with its result, error or input requests (`tasks/get`, `notifications/tasks`).
pub fn ext_detailed(service: &McpService, task: &Task) -> Value {
    let mut t = ext_task(service, task);
    match task.status {
        TaskStatus::Completed => {
            t["result"] = task.result.clone().unwrap_or(json!({"content": []}))
        }
        TaskStatus::Failed => match tool_error_result(task) {
            Some(r) => t["result"] = r.clone(),
            None => {
                let message = task
                    .error
                    .as_ref()
                    .map_or("the task failed", |e| e.message.as_str());
                t["error"] = json!({"code": protocol::INTERNAL_ERROR, "message": message});
            }
        },
        TaskStatus::InputRequired => {
            t["inputRequests"] = task.input_requests.clone().unwrap_or(json!({}));
        }
        _ => {}
    }
    t
}

pub async fn handle(
    service: &Arc<McpService>,
    method: &str,
    params: Value,
    ctx: &Ctx,
) -> Result<Option<Value>, RpcError> {
    if ctx.era.is_modern() {
        if matches!(method, "tasks/result" | "tasks/list") {
            return Err(RpcError::method_not_found(method));
        }
        if !ctx.era.ext_tasks() {
            return Err(missing_tasks_capability());
        }
        return match method {
            "tasks/get" => {
                let task = owned(service, ctx, task_id(&params)?).await?;
                Ok(Some(ext_detailed(service, &task)))
            }
            "tasks/update" => {
                let id = task_id(&params)?;
                let task = owned(service, ctx, id).await?;
                let Some(responses) = params.get("inputResponses").and_then(Value::as_object)
                else {
                    return Err(RpcError::invalid_params(
                        "`inputResponses` (an object) is required",
                    ));
                };
                // Answers to keys the task is not waiting for (unknown, already answered,
                // superseded) are ignored, as the extension asks; the update is
                // acknowledged either way.
                let waiting = task.input_requests.as_ref().and_then(Value::as_object);
                let known: serde_json::Map<String, Value> = responses
                    .iter()
                    .filter(|(k, _)| {
                        task.status == TaskStatus::InputRequired
                            && waiting.is_some_and(|w| w.contains_key(*k))
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !known.is_empty() {
                    match service
                        .engine
                        .provide_input(&ctx.principal, id, Value::Object(known))
                        .await
                    {
                        Ok(_) => {}
                        // Answered meanwhile by someone else: nothing left to do.
                        Err(e) if e.code() == baton_core::ErrorCode::Conflict => {}
                        Err(e) => return Err(engine_error(e)),
                    }
                }
                Ok(Some(json!({})))
            }
            "tasks/cancel" => {
                let id = task_id(&params)?;
                owned(service, ctx, id).await?;
                // Acknowledge only; a finished task simply stays as it is.
                let _ = service.engine.cancel(&ctx.principal, id).await;
                Ok(Some(json!({})))
            }
            other => Err(RpcError::method_not_found(other)),
        };
    }
    if !ctx.era.legacy_tasks() || method == "tasks/update" {
        return Err(RpcError::method_not_found(method));
    }
    match method {
        "tasks/get" => {
            let task = owned(service, ctx, task_id(&params)?).await?;
            Ok(Some(legacy_task(service, &task)))
        }
        "tasks/result" => legacy_result(service, task_id(&params)?, ctx).await,
        "tasks/list" => legacy_list(service, &params, ctx).await.map(Some),
        "tasks/cancel" => legacy_cancel(service, task_id(&params)?, ctx)
            .await
            .map(Some),
        other => Err(RpcError::method_not_found(other)),
    }
}

pub fn missing_tasks_capability() -> RpcError {
    RpcError::new(
        protocol::MISSING_CLIENT_CAPABILITY,
        "Missing required client capability",
    )
    .with_data(json!({"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}))
}

/// `tasks/result`: blocks until the task is final. Input the task needs meanwhile is asked
/// of the client on this request's stream, as the spec has it.
async fn legacy_result(
    service: &Arc<McpService>,
    id: TaskId,
    ctx: &Ctx,
) -> Result<Option<Value>, RpcError> {
    let engine = &service.engine;
    owned(service, ctx, id).await?;
    let mut sub = engine.subscribe(id);
    let related = json!({protocol::META_RELATED_TASK: {"taskId": id.to_string()}});
    let mut asked: HashSet<String> = HashSet::new();
    loop {
        let mut task = engine.get(&ctx.principal, id).await.map_err(engine_error)?;
        if task.status.is_final() {
            engine
                .resolve_payload(&mut task)
                .await
                .map_err(engine_error)?;
            let mut result = match task.status {
                TaskStatus::Completed => final_result(&task),
                TaskStatus::Failed if tool_error_result(&task).is_some() => final_result(&task),
                TaskStatus::Failed => {
                    let e = task.error.clone();
                    return Err(RpcError::new(
                        protocol::INTERNAL_ERROR,
                        format!(
                            "task {id} failed: {}",
                            e.map_or_else(|| "unknown error".into(), |e| e.message)
                        ),
                    ));
                }
                _ => {
                    return Err(RpcError::new(
                        protocol::INTERNAL_ERROR,
                        format!("task {id} was cancelled"),
                    ));
                }
            };
            let meta = result
                .as_object_mut()
                .map(|o| o.entry("_meta").or_insert(json!({})));
            if let Some(Value::Object(m)) = meta {
                m.insert(
                    protocol::META_RELATED_TASK.into(),
                    related[protocol::META_RELATED_TASK].clone(),
                );
            }
            return Ok(Some(result));
        }
        if task.status == TaskStatus::InputRequired && ctx.era.elicitation() {
            let requests = task.input_requests.clone().unwrap_or(json!({}));
            let fresh: Vec<(String, Value)> = requests
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| !asked.contains(*k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            if !fresh.is_empty() {
                let mut answers = serde_json::Map::new();
                for (key, request) in fresh {
                    asked.insert(key.clone());
                    let method = request
                        .get("method")
                        .and_then(Value::as_str)
                        .unwrap_or("elicitation/create")
                        .to_string();
                    let mut params = request.get("params").cloned().unwrap_or(json!({}));
                    params["_meta"] =
                        json!({protocol::META_RELATED_TASK: {"taskId": id.to_string()}});
                    answers.insert(key, ctx.session.ask(&ctx.out, &method, params).await?);
                }
                engine
                    .provide_input(&ctx.principal, id, Value::Object(answers))
                    .await
                    .map_err(engine_error)?;
                continue;
            }
        }
        tokio::select! {
            _ = sub.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = ctx.cancel.cancelled() => return Ok(None),
            _ = ctx.out.closed() => return Ok(None),
        }
    }
}

async fn legacy_list(service: &McpService, params: &Value, ctx: &Ctx) -> Result<Value, RpcError> {
    let before_seq = match params.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(
            c.strip_prefix("seq:")
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| RpcError::invalid_params(format!("invalid cursor `{c}`")))?,
        ),
        Some(_) => return Err(RpcError::invalid_params("`cursor` must be a string")),
    };
    const PAGE: u32 = 100;
    let tasks = service
        .engine
        .list(
            &ctx.principal,
            baton_store::TaskQuery {
                before_seq,
                limit: PAGE,
                ..Default::default()
            },
        )
        .await
        .map_err(engine_error)?;
    let mut result =
        json!({"tasks": tasks.iter().map(|t| legacy_task(service, t)).collect::<Vec<_>>()});
    if tasks.len() == PAGE as usize
        && let Some(last) = tasks.last()
    {
        result["nextCursor"] = json!(format!("seq:{}", last.seq));
    }
    Ok(result)
}

/// `tasks/cancel` (2025-11-25): a finished task is an error; otherwise the task is
/// cancelled (at once when pending; a running tool is given a moment to stop) and shown.
async fn legacy_cancel(service: &McpService, id: TaskId, ctx: &Ctx) -> Result<Value, RpcError> {
    let engine = &service.engine;
    let task = owned(service, ctx, id).await?;
    if task.status.is_final() {
        return Err(RpcError::invalid_params(format!(
            "Cannot cancel task: already in terminal status '{}'",
            legacy_status(task.status)
        )));
    }
    engine
        .cancel(&ctx.principal, id)
        .await
        .map_err(engine_error)?;
    let mut task = engine
        .wait(&ctx.principal, id, Duration::from_secs(5))
        .await
        .map_err(engine_error)?;
    // The cancellation is recorded and reaches the tool; the spec wants the answer to say
    // cancelled even if the tool takes longer to stop.
    if !task.status.is_final() {
        task.status = TaskStatus::Cancelled;
    }
    Ok(legacy_task(service, &task))
}

/// `notifications/tasks/status` (2025-11-25) for the tasks a legacy session created,
/// on its notification stream, until the stream closes. A task leaves the session's set
/// once its final status was sent. Should this stream fall behind the node's events, the
/// session's tasks are read back and every one that ended meanwhile gets its final
/// status: a client is never left without it.
pub async fn push_status(
    service: Arc<McpService>,
    session: Arc<crate::session::Session>,
    principal: String,
    out: crate::session::Outbound,
) {
    use baton_core::EventKind as K;
    let mut events = service.engine.subscribe_all();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    let relevant = matches!(
                        ev.kind,
                        K::InputRequired | K::InputReceived | K::Completed | K::Failed | K::Cancelled | K::Retried
                    ) && session.tasks.lock().unwrap_or_else(|e| e.into_inner()).contains(&ev.task_id);
                    if !relevant {
                        continue;
                    }
                    if let Ok(task) = service.engine.get(&principal, ev.task_id).await
                        && !send_status(&service, &session, &out, &task)
                    {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "a task status stream fell behind; reading its tasks back");
                    if !catch_up(&service, &session, &principal, &out).await {
                        break;
                    }
                }
                Err(_) => break,
            },
            _ = out.closed() => break,
        }
    }
}

/// Sends a task's status; a final one takes the task out of the session's set. `false`
/// when the stream is gone.
fn send_status(
    service: &McpService,
    session: &crate::session::Session,
    out: &crate::session::Outbound,
    task: &Task,
) -> bool {
    let n = protocol::notification("notifications/tasks/status", legacy_task(service, task));
    if out.send(n).is_err() {
        return false;
    }
    if task.status.is_final() {
        session
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&task.id);
    }
    true
}

/// After missed events: the final status of every task of the session that ended.
pub async fn catch_up(
    service: &McpService,
    session: &crate::session::Session,
    principal: &str,
    out: &crate::session::Outbound,
) -> bool {
    let ids: Vec<TaskId> = session
        .tasks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect();
    for id in ids {
        match service.engine.get(principal, id).await {
            Ok(task) if task.status.is_final() => {
                if !send_status(service, session, out, &task) {
                    return false;
                }
            }
            Ok(_) => {}
            // Gone (purged): nothing more will happen to it.
            Err(e) if e.code() == baton_core::ErrorCode::NotFound => {
                session
                    .tasks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
            }
            Err(e) => tracing::debug!(task = %id, error = %e, "cannot read a task back now"),
        }
    }
    true
}

/// `subscriptions/listen` (2026-07-28): task notifications and tool list changes until the
/// client closes the stream (HTTP) or cancels the request (stdio).
pub async fn listen(
    service: &Arc<McpService>,
    params: Value,
    ctx: &Ctx,
) -> Result<Option<Value>, RpcError> {
    let wanted = params.get("notifications").cloned().unwrap_or(json!({}));
    let tools_changed = wanted.get("toolsListChanged").and_then(Value::as_bool) == Some(true);
    let prompts_changed = wanted.get("promptsListChanged").and_then(Value::as_bool) == Some(true);
    let resources_changed =
        wanted.get("resourcesListChanged").and_then(Value::as_bool) == Some(true);
    let resource_uris: HashSet<String> = wanted
        .get("resourceSubscriptions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let task_ids: Vec<String> = wanted
        .get("taskIds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if !task_ids.is_empty() && !ctx.era.ext_tasks() {
        return Err(missing_tasks_capability());
    }
    // Only the caller's tasks are accepted.
    let mut accepted: Vec<TaskId> = Vec::new();
    for raw in &task_ids {
        if let Ok(id) = raw.parse::<TaskId>()
            && service.engine.get(&ctx.principal, id).await.is_ok()
        {
            accepted.push(id);
        }
    }
    let subscription_id = ctx.request_id.clone();
    let meta = json!({protocol::META_SUBSCRIPTION_ID: subscription_id});
    let mut ack = json!({"_meta": meta, "notifications": {}});
    if tools_changed {
        ack["notifications"]["toolsListChanged"] = json!(true);
    }
    if prompts_changed {
        ack["notifications"]["promptsListChanged"] = json!(true);
    }
    if resources_changed {
        ack["notifications"]["resourcesListChanged"] = json!(true);
    }
    if !resource_uris.is_empty() {
        ack["notifications"]["resourceSubscriptions"] = json!(resource_uris);
    }
    // Servers' prompt and resource changes, for what was asked.
    let mut notices = service.upstreams.as_ref().map(|u| u.notices());
    let relayed = |n: &baton_upstream::relay::ServerNotice| -> Option<Value> {
        use baton_upstream::relay::Notice;
        match &n.notice {
            Notice::PromptsChanged if prompts_changed => Some(protocol::notification(
                "notifications/prompts/list_changed",
                json!({"_meta": meta}),
            )),
            Notice::ResourcesChanged if resources_changed => Some(protocol::notification(
                "notifications/resources/list_changed",
                json!({"_meta": meta}),
            )),
            Notice::ResourceUpdated { uri } => {
                let named = crate::relay::client_uri(service, &n.server, uri);
                resource_uris.contains(&named).then(|| {
                    protocol::notification(
                        "notifications/resources/updated",
                        json!({"uri": named, "_meta": meta}),
                    )
                })
            }
            _ => None,
        }
    };
    if !accepted.is_empty() {
        ack["notifications"]["taskIds"] =
            json!(accepted.iter().map(|i| i.to_string()).collect::<Vec<_>>());
    }
    let _ = ctx.out.send(protocol::notification(
        "notifications/subscriptions/acknowledged",
        ack,
    ));
    let mut events = service.engine.subscribe_all();
    let mut catalog = service.catalog_changed.subscribe();
    let watched: HashSet<TaskId> = accepted.into_iter().collect();
    // Send each watched task's current state first, so no transition is missed.
    for id in &watched {
        if let Ok(task) = service.engine.get(&ctx.principal, *id).await {
            let mut n = ext_detailed(service, &task);
            n["_meta"] = meta.clone();
            let _ = ctx
                .out
                .send(protocol::notification("notifications/tasks", n));
        }
    }
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) if watched.contains(&ev.task_id) && ev.kind != baton_core::EventKind::Progress => {
                    if let Ok(task) = service.engine.get(&ctx.principal, ev.task_id).await {
                        let mut n = ext_detailed(service, &task);
                        n["_meta"] = meta.clone();
                        let _ = ctx.out.send(protocol::notification("notifications/tasks", n));
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            c = catalog.recv(), if tools_changed => {
                if c.is_ok() {
                    let _ = ctx.out.send(protocol::notification(
                        "notifications/tools/list_changed",
                        json!({"_meta": meta}),
                    ));
                }
            }
            n = async {
                match notices.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            }, if notices.is_some() => match n {
                Ok(n) => {
                    if let Some(msg) = relayed(&n) {
                        let _ = ctx.out.send(msg);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => notices = None,
            },
            _ = ctx.cancel.cancelled() => break,
            _ = ctx.out.closed() => return Ok(None),
        }
    }
    Ok(Some(json!({"_meta": meta})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::submit::SubmitRequest;
    use baton_engine::tools::ToolRegistry;
    use baton_engine::{Engine, EngineConfig};

    /// A session's status stream that fell behind the node's events (a broadcast lag)
    /// used to skip what it missed: a 2025-11-25 client never got the final status of a
    /// task that ended meanwhile. Catching up sends it, and a task whose final status was
    /// sent leaves the session's set (it used to stay for the session's life).
    #[tokio::test]
    async fn a_lagging_status_stream_still_delivers_every_final_status() {
        let (store, _dir) = baton_store::fixtures::fresh_sqlite().await;
        let config = EngineConfig {
            run_workers: false,
            ..Default::default()
        };
        let engine = Engine::start(
            config,
            store,
            Arc::new(ToolRegistry::with_builtins("__")),
            baton_engine::clock::Clock::system(),
        )
        .await
        .unwrap();
        let service = McpService::new(engine.clone(), None, Default::default());
        let session = crate::session::Session::new();
        let ended = engine
            .submit("p", SubmitRequest::new("baton__echo", json!({})))
            .await
            .unwrap()
            .task
            .id;
        let pending = engine
            .submit("p", SubmitRequest::new("baton__echo", json!({})))
            .await
            .unwrap()
            .task
            .id;
        session.tasks.lock().unwrap().extend([ended, pending]);
        engine.cancel("p", ended).await.unwrap();
        let (out, mut rx) = tokio::sync::mpsc::unbounded_channel();
        assert!(catch_up(&service, &session, "p", &out).await);
        let sent = rx.try_recv().expect("the final status");
        assert_eq!(sent["params"]["taskId"], json!(ended.to_string()), "{sent}");
        assert_eq!(sent["params"]["status"], "cancelled", "{sent}");
        assert!(rx.try_recv().is_err(), "nothing for the task still pending");
        assert_eq!(
            *session.tasks.lock().unwrap(),
            HashSet::from([pending]),
            "the ended task left the set"
        );
        engine.shutdown().await;
    }
}
