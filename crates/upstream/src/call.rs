//! Running one tool call on an upstream server, in the way the server supports best.
//!
//! - The server speaks the 2026-07-28 tasks extension: the call may come back as an
//!   upstream task; Baton polls it (`tasks/get`), forwards its input requests, cancels it
//!   with `tasks/cancel`.
//! - The server speaks 2025-11-25 tasks and the tool allows them: Baton creates the task
//!   (`params.task`), waits on `tasks/result` (which also carries the server's input
//!   requests) while polling `tasks/get` for status, cancels with `tasks/cancel`.
//! - Otherwise a plain `tools/call`: progress notifications are relayed, cancellation is a
//!   `notifications/cancelled` with the call's request id.
//!
//! An upstream task's id is checkpointed on the Baton task before Baton waits on it, so a
//! run after a Baton restart resumes the same upstream task instead of starting the work
//! again.

use std::time::Duration;

use baton_engine::tools::{ToolCallError, ToolContext, ToolOutput};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, CancelledNotificationParam,
    ClientRequest, CustomRequest, GetTaskParams, Request, ServerResult, TaskPayload, TaskStatus,
    UpdateTaskParams,
};
use rmcp::service::{PeerRequestOptions, ServiceError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::connection::{Connection, UpstreamTool};
use crate::handler::RELATED_TASK;
use crate::raw::TaskSupport;

/// What a Baton task remembers about its upstream task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamTaskCheckpoint {
    pub server: String,
    pub task_id: String,
    /// `ext` (2026-07-28 extension) or `legacy` (2025-11-25).
    pub flavor: String,
    pub poll_ms: u64,
}

impl UpstreamTaskCheckpoint {
    pub fn from_context(ctx: &ToolContext) -> Option<Self> {
        serde_json::from_value(ctx.checkpoint.as_ref()?.get("upstream_task")?.clone()).ok()
    }
}

const DEFAULT_POLL: Duration = Duration::from_millis(1000);
const MIN_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(10);

fn poll_interval(ms: Option<u64>) -> Duration {
    ms.map(Duration::from_millis)
        .unwrap_or(DEFAULT_POLL)
        .clamp(MIN_POLL, MAX_POLL)
}

/// Classifies an SDK error: transport failures may succeed on another attempt (the
/// supervisor reconnects meanwhile); a JSON-RPC error from the server will not.
pub fn service_error(e: ServiceError, note: impl FnOnce() -> String) -> ToolCallError {
    match e {
        ServiceError::McpError(err) => ToolCallError::new(
            "upstream_error",
            format!(
                "the server refused the call: {} (JSON-RPC {})",
                err.message, err.code.0
            ),
            false,
        ),
        ServiceError::Cancelled { .. } => ToolCallError::cancelled(),
        ServiceError::Timeout { timeout } => ToolCallError::new(
            "timeout",
            format!(
                "no answer from the server within {} ms",
                timeout.as_millis()
            ),
            true,
        ),
        other => ToolCallError::new(
            "upstream_unavailable",
            // The transport's error may quote the URL (and its credentials).
            crate::redact::text(&format!(
                "the connection to the server failed ({other}): {}",
                note()
            )),
            true,
        ),
    }
}

/// The result as the server sent it, without protocol bookkeeping: the upstream task it
/// names (meaningless to Baton's clients) and the 2026-07-28 `resultType` (Baton's front
/// door sets its own, per client era).
fn clean_result(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("resultType");
    }
    if let Some(meta) = v.get_mut("_meta").and_then(Value::as_object_mut) {
        meta.remove(RELATED_TASK);
        if meta.is_empty() {
            v.as_object_mut().map(|o| o.remove("_meta"));
        }
    }
    v
}

/// Input request params without the upstream's task bookkeeping.
fn without_related_task(mut params: Value) -> Value {
    if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
        meta.remove(RELATED_TASK);
        if meta.is_empty() {
            params.as_object_mut().map(|o| o.remove("_meta"));
        }
    }
    params
}

fn arguments(args: Value) -> Map<String, Value> {
    match args {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub async fn run(
    server: &str,
    conn: &Connection,
    tool: &UpstreamTool,
    args: Value,
    ctx: &ToolContext,
) -> Result<ToolOutput, ToolCallError> {
    let _call = conn
        .handler
        .route_call(ctx.task.clone(), ctx.cancel.clone());
    if let Some(cp) = UpstreamTaskCheckpoint::from_context(ctx).filter(|cp| cp.server == server) {
        tracing::info!(server, upstream_task = %cp.task_id, task_id = %ctx.task_id, "resuming the upstream task of an earlier run");
        return match cp.flavor.as_str() {
            "ext" => follow_ext_task(conn, &cp, ctx).await,
            _ => follow_legacy_task(conn, &cp, ctx).await,
        };
    }
    if conn.ext_tasks {
        return call_ext(server, conn, tool, args, ctx).await;
    }
    if conn.legacy_tasks && tool.task_support != TaskSupport::Forbidden {
        return call_legacy_task(server, conn, tool, args, ctx).await;
    }
    call_plain(conn, tool, args, ctx).await
}

/// The `_meta` of a call Baton makes for a task:
/// - 2026-07-28 servers log only for requests that ask; Baton asks for `info` and up and
///   relays what it gets to the task's followers;
/// - `baton/parentTask` names the task, so that an agent which calls Baton back while
///   running it can pass it on and the new task is recorded as its child;
/// - `traceparent` carries the trace the call belongs to, when traces are on.
fn call_meta(ctx: &ToolContext) -> rmcp::model::RequestMetaObject {
    let mut meta = rmcp::model::RequestMetaObject::new();
    meta.insert(
        "baton/parentTask".into(),
        Value::String(ctx.task_id.to_string()),
    );
    // The trace this call belongs to (W3C trace context in `_meta`), when traces are on.
    if let Some(tp) = baton_engine::trace::current_traceparent() {
        meta.insert("traceparent".into(), Value::String(tp));
    }
    #[expect(
        deprecated,
        reason = "logging is deprecated by SEP-2577 but still served"
    )]
    meta.set_log_level(rmcp::model::LoggingLevel::Info);
    meta
}

/// A server's `notifications/progress` as the task's progress.
fn report_progress(ctx: &ToolContext, p: &rmcp::model::ProgressNotificationParam) {
    let fraction = p.total.filter(|t| *t > 0.0).map(|t| p.progress / t);
    let message = p.message.clone().or_else(|| match p.total {
        Some(t) => Some(format!("{} of {}", p.progress, t)),
        None => Some(format!("progress {}", p.progress)),
    });
    ctx.progress.report(fraction, message);
}

/// Waits for a call's answer, relaying its progress as the task's; a cancelled task
/// cancels the call (`notifications/cancelled`). `Ok` holds the answer as rmcp gives it.
async fn follow_call(
    conn: &Connection,
    handle: rmcp::service::RequestHandle<rmcp::RoleClient>,
    ctx: &ToolContext,
) -> Result<Result<ServerResult, ServiceError>, ToolCallError> {
    let request_id = handle.id.clone();
    let mut progress = conn.handler.subscribe_progress(&handle.progress_token.0);
    let response = handle.await_response();
    tokio::pin!(response);
    loop {
        tokio::select! {
            r = &mut response => return Ok(r),
            Some(p) = progress.rx.recv() => report_progress(ctx, &p),
            _ = ctx.cancel.cancelled() => {
                let _ = conn
                    .peer()
                    .notify_cancelled(CancelledNotificationParam::new(
                        Some(request_id),
                        Some("the task was cancelled through Baton".into()),
                    ))
                    .await;
                return Err(ToolCallError::cancelled());
            }
        }
    }
}

/// How many times a server may ask for input before one call is given up.
const MAX_INPUT_ROUNDS: u32 = 10;

/// Refuses the round past [`MAX_INPUT_ROUNDS`].
fn check_rounds(rounds: u32) -> Result<(), ToolCallError> {
    if rounds > MAX_INPUT_ROUNDS {
        return Err(ToolCallError::new(
            "upstream_error",
            format!("the server kept asking for input (more than {MAX_INPUT_ROUNDS} rounds)"),
            false,
        ));
    }
    Ok(())
}

/// The task's answers, as the `inputResponses` of the call made again.
fn input_responses(answers: &Value) -> std::collections::BTreeMap<String, Value> {
    answers
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// A plain `tools/call` with progress relayed and cancellation forwarded. A 2026-07-28
/// server without the tasks extension may answer `resultType: "input_required"`: its
/// questions become the task's input requests, and the call is made again with the
/// answers and the server's `requestState`, as many rounds as it asks.
async fn call_plain(
    conn: &Connection,
    tool: &UpstreamTool,
    args: Value,
    ctx: &ToolContext,
) -> Result<ToolOutput, ToolCallError> {
    let mut params = CallToolRequestParams::new(tool.name.clone()).with_arguments(arguments(args));
    let mut rounds = 0;
    loop {
        let result = call_plain_once(conn, params.clone(), ctx).await?;
        if result.get("resultType").and_then(Value::as_str) != Some("input_required") {
            return Ok(ToolOutput(clean_result(result)));
        }
        rounds += 1;
        check_rounds(rounds)?;
        let requests = result
            .get("inputRequests")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let answers = ctx.task.request_input(requests, &ctx.cancel).await?;
        params.input_responses = Some(input_responses(&answers));
        params.request_state = result
            .get("requestState")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
}

/// One `tools/call` request: the server's answer as it sent it.
async fn call_plain_once(
    conn: &Connection,
    params: CallToolRequestParams,
    ctx: &ToolContext,
) -> Result<Value, ToolCallError> {
    let request = ClientRequest::CallToolRequest(Request::new(params));
    let handle = conn
        .peer()
        .send_request_with_option(
            request,
            PeerRequestOptions::no_options().with_meta(call_meta(ctx)),
        )
        .await
        .map_err(|e| service_error(e, || conn.death_note()))?;
    let request_id = handle.id.clone();
    let outcome = follow_call(conn, handle, ctx).await?;
    let raw = conn
        .handler
        .raw
        .take_result(&serde_json::to_value(&request_id).unwrap_or_default());
    match outcome {
        Ok(result) => Ok(raw.unwrap_or_else(|| server_result_json(result))),
        Err(e) => Err(service_error(e, || conn.death_note())),
    }
}

fn server_result_json(r: ServerResult) -> Value {
    match r {
        ServerResult::CustomResult(c) => c.0,
        other => serde_json::to_value(other).unwrap_or_default(),
    }
}

// ---- 2026-07-28 tasks extension -------------------------------------------------------

async fn call_ext(
    server: &str,
    conn: &Connection,
    tool: &UpstreamTool,
    args: Value,
    ctx: &ToolContext,
) -> Result<ToolOutput, ToolCallError> {
    let mut params = CallToolRequestParams::new(tool.name.clone()).with_arguments(arguments(args));
    // A server may ask for input before it answers (SEP-2322 rounds): the answers come
    // from Baton's client through the task's input requests, and the call is retried
    // with them.
    let mut rounds = 0;
    let response = loop {
        let response = call_ext_once(conn, params.clone(), ctx).await?;
        let CallToolResponse::InputRequired(asked) = response else {
            break response;
        };
        rounds += 1;
        check_rounds(rounds)?;
        let requests =
            serde_json::to_value(asked.input_requests.unwrap_or_default()).unwrap_or_default();
        let answers = ctx.task.request_input(requests, &ctx.cancel).await?;
        params.input_responses = Some(input_responses(&answers));
        params.request_state = asked.request_state;
    };
    match response {
        CallToolResponse::Complete(result) => Ok(ToolOutput(clean_result(
            serde_json::to_value(result).unwrap_or_default(),
        ))),
        CallToolResponse::Task(created) => {
            let cp = UpstreamTaskCheckpoint {
                server: server.to_string(),
                task_id: created.task.task_id.clone(),
                flavor: "ext".into(),
                poll_ms: poll_interval(created.task.poll_interval_ms).as_millis() as u64,
            };
            ctx.task
                .save_checkpoint(json!({ "upstream_task": cp }))
                .await?;
            follow_ext_task(conn, &cp, ctx).await
        }
        other => Err(ToolCallError::new(
            "upstream_error",
            format!("unexpected answer to tools/call: {other:?}"),
            false,
        )),
    }
}

/// One `tools/call` to a server with the tasks extension. It asks for progress, like a
/// plain call: a tool that answers without making a task reports it during the call.
async fn call_ext_once(
    conn: &Connection,
    mut params: CallToolRequestParams,
    ctx: &ToolContext,
) -> Result<CallToolResponse, ToolCallError> {
    // In the params' own `_meta`, where the HTTP transport finds the `traceparent` it
    // sends as a header; rmcp adds the progress token beside it.
    params.meta = Some(call_meta(ctx));
    let request = ClientRequest::CallToolRequest(Request::new(params));
    let handle = conn
        .peer()
        .send_request_with_option(request, PeerRequestOptions::no_options())
        .await
        .map_err(|e| service_error(e, || conn.death_note()))?;
    let outcome = follow_call(conn, handle, ctx).await?;
    match outcome.map_err(|e| service_error(e, || conn.death_note()))? {
        ServerResult::CallToolResult(r) => Ok(CallToolResponse::Complete(r)),
        ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
        ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
        other => Err(ToolCallError::new(
            "upstream_error",
            format!("unexpected answer to tools/call: {other:?}"),
            false,
        )),
    }
}

async fn follow_ext_task(
    conn: &Connection,
    cp: &UpstreamTaskCheckpoint,
    ctx: &ToolContext,
) -> Result<ToolOutput, ToolCallError> {
    let mut interval = Duration::from_millis(cp.poll_ms);
    let mut answered: std::collections::BTreeSet<String> = Default::default();
    let mut last_message: Option<String> = None;
    loop {
        let got = tokio::select! {
            r = conn.peer().get_task(GetTaskParams::new(cp.task_id.clone())) => r,
            _ = ctx.cancel.cancelled() => {
                let _ = conn.peer().cancel_task(CancelTaskParams::new(cp.task_id.clone())).await;
                return Err(ToolCallError::cancelled());
            }
        };
        let detailed = match got {
            Ok(r) => r.task,
            Err(ServiceError::McpError(e)) if e.code.0 == -32602 => {
                return Err(upstream_task_gone(ctx, cp, &e.message).await);
            }
            Err(e) => return Err(service_error(e, || conn.death_note())),
        };
        if let Some(ms) = detailed.task.poll_interval_ms {
            interval = poll_interval(Some(ms));
        }
        if detailed.task.status_message.is_some() && detailed.task.status_message != last_message {
            last_message = detailed.task.status_message.clone();
            ctx.progress.report(None, last_message.clone());
        }
        match detailed.payload {
            TaskPayload::Working => {}
            TaskPayload::Completed { result } => {
                return Ok(ToolOutput(clean_result(Value::Object(result))));
            }
            TaskPayload::Failed { error } => {
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream task failed")
                    .to_string();
                return Err(ToolCallError::new("upstream_error", message, false));
            }
            TaskPayload::Cancelled => {
                return Err(ToolCallError::new(
                    "upstream_cancelled",
                    "the server cancelled the task",
                    false,
                ));
            }
            TaskPayload::InputRequired { input_requests } => {
                let requests = serde_json::to_value(&input_requests).unwrap_or_default();
                let fresh: Vec<String> = input_requests
                    .keys()
                    .filter(|k| !answered.contains(*k))
                    .cloned()
                    .collect();
                if !fresh.is_empty() {
                    let answers = ctx.task.request_input(requests, &ctx.cancel).await?;
                    let responses: rmcp::model::InputResponses = answers
                        .as_object()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default();
                    answered.extend(responses.keys().cloned());
                    conn.peer()
                        .update_task(UpdateTaskParams::new(cp.task_id.clone(), responses))
                        .await
                        .map_err(|e| service_error(e, || conn.death_note()))?;
                    continue;
                }
            }
            _ => {}
        }
        if matches!(
            detailed.task.status,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        ) {
            return Err(ToolCallError::new(
                "upstream_error",
                format!(
                    "the upstream task ended as {:?} without a result",
                    detailed.task.status
                ),
                false,
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = ctx.cancel.cancelled() => {
                let _ = conn.peer().cancel_task(CancelTaskParams::new(cp.task_id.clone())).await;
                return Err(ToolCallError::cancelled());
            }
        }
    }
}

/// The server no longer knows the task (it restarted, or the task expired): the next
/// attempt starts afresh.
async fn upstream_task_gone(
    ctx: &ToolContext,
    cp: &UpstreamTaskCheckpoint,
    why: &str,
) -> ToolCallError {
    let _ = ctx.task.save_checkpoint(json!({})).await;
    ToolCallError::new(
        "upstream_task_lost",
        format!(
            "the server no longer knows upstream task {} ({why}); the next attempt starts it again",
            cp.task_id
        ),
        true,
    )
}

// ---- 2025-11-25 tasks ----------------------------------------------------------------

async fn custom(conn: &Connection, method: &str, params: Value) -> Result<Value, ServiceError> {
    let handle = conn
        .peer()
        .send_request_with_option(
            ClientRequest::CustomRequest(CustomRequest::new(method, Some(params))),
            PeerRequestOptions::no_options(),
        )
        .await?;
    let id = serde_json::to_value(&handle.id).unwrap_or_default();
    let r = handle.await_response().await?;
    // A tool result (`tasks/result`) exactly as sent, where the raw line was seen.
    Ok(conn
        .handler
        .raw
        .take_result(&id)
        .unwrap_or_else(|| server_result_json(r)))
}

async fn call_legacy_task(
    server: &str,
    conn: &Connection,
    tool: &UpstreamTool,
    args: Value,
    ctx: &ToolContext,
) -> Result<ToolOutput, ToolCallError> {
    let params = json!({"name": tool.name, "arguments": args, "task": {}});
    let created = tokio::select! {
        r = custom(conn, "tools/call", params) => r.map_err(|e| service_error(e, || conn.death_note()))?,
        _ = ctx.cancel.cancelled() => return Err(ToolCallError::cancelled()),
    };
    let Some(task_id) = created.pointer("/task/taskId").and_then(Value::as_str) else {
        // The server answered with a plain result after all.
        return Ok(ToolOutput(clean_result(created)));
    };
    let cp = UpstreamTaskCheckpoint {
        server: server.to_string(),
        task_id: task_id.to_string(),
        flavor: "legacy".into(),
        poll_ms: poll_interval(
            created
                .pointer("/task/pollInterval")
                .and_then(Value::as_u64),
        )
        .as_millis() as u64,
    };
    ctx.task
        .save_checkpoint(json!({ "upstream_task": cp }))
        .await?;
    follow_legacy_task(conn, &cp, ctx).await
}

async fn follow_legacy_task(
    conn: &Connection,
    cp: &UpstreamTaskCheckpoint,
    ctx: &ToolContext,
) -> Result<ToolOutput, ToolCallError> {
    // The server's input requests for this task arrive while `tasks/result` waits.
    let mut elicitations = conn.handler.route_elicitations(&cp.task_id);
    let result = {
        let waiting = custom(conn, "tasks/result", json!({"taskId": cp.task_id}));
        tokio::pin!(waiting);
        let mut interval = Duration::from_millis(cp.poll_ms);
        // A first look right away: the task's first status may not last one interval.
        let mut next_poll = tokio::time::Instant::now();
        let mut asked = 0u32;
        let mut last_message: Option<String> = None;
        loop {
            tokio::select! {
                r = &mut waiting => break r,
                Some(e) = elicitations.rx.recv() => {
                    asked += 1;
                    let key = format!("elicitation-{asked}");
                    let requests = json!({ key.clone(): {"method": "elicitation/create", "params": without_related_task(e.params.clone())} });
                    match ctx.task.request_input(requests, &ctx.cancel).await {
                        Ok(answers) => {
                            let _ = e.reply.send(answers.get(&key).cloned().unwrap_or(json!({"action": "decline"})));
                        }
                        Err(err) => {
                            let _ = e.reply.send(json!({"action": "cancel"}));
                            if err.code == "cancelled" {
                                let _ = custom(conn, "tasks/cancel", json!({"taskId": cp.task_id})).await;
                            }
                            return Err(err);
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_poll) => {
                    match custom(conn, "tasks/get", json!({"taskId": cp.task_id})).await {
                        Ok(t) => {
                            let message = t.get("statusMessage").and_then(Value::as_str).map(String::from);
                            if message.is_some() && message != last_message {
                                last_message = message;
                                ctx.progress.report(None, last_message.clone());
                            }
                            if let Some(ms) = t.get("pollInterval").and_then(Value::as_u64) {
                                interval = poll_interval(Some(ms));
                            }
                            if t.get("status").and_then(Value::as_str) == Some("cancelled") {
                                    return Err(ToolCallError::new("upstream_cancelled", "the server cancelled the task", false));
                            }
                        }
                        Err(ServiceError::McpError(e)) if e.code.0 == -32602 => {
                            return Err(upstream_task_gone(ctx, cp, &e.message).await);
                        }
                        Err(_) => {}
                    }
                    next_poll = tokio::time::Instant::now() + interval;
                }
                _ = ctx.cancel.cancelled() => {
                    let _ = custom(conn, "tasks/cancel", json!({"taskId": cp.task_id})).await;
                    return Err(ToolCallError::cancelled());
                }
            }
        }
    };
    drop(elicitations);
    match result {
        Ok(v) => Ok(ToolOutput(clean_result(v))),
        Err(ServiceError::McpError(e)) if e.code.0 == -32602 => {
            Err(upstream_task_gone(ctx, cp, &e.message).await)
        }
        Err(e) => Err(service_error(e, || conn.death_note())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_task_meta_is_removed_and_the_rest_kept() {
        let v = clean_result(
            json!({"content": [], "_meta": {RELATED_TASK: {"taskId": "x"}, "keep": 1}}),
        );
        assert_eq!(v, json!({"content": [], "_meta": {"keep": 1}}));
        let v = clean_result(json!({"content": [], "_meta": {RELATED_TASK: {"taskId": "x"}}}));
        assert_eq!(v, json!({"content": []}));
    }

    #[test]
    fn poll_intervals_are_bounded() {
        assert_eq!(poll_interval(None), DEFAULT_POLL);
        assert_eq!(poll_interval(Some(1)), MIN_POLL);
        assert_eq!(poll_interval(Some(10_000_000)), MAX_POLL);
    }
}
