//! `tools/call`: every call of an upstream (or built-in) tool is a durable Baton task.
//!
//! - A 2026-07-28 client that declared the tasks extension gets the task at once
//!   (`resultType: "task"`), once the task is stored.
//! - A 2025-11-25 client that sent `params.task` gets a `CreateTaskResult` likewise.
//! - Any other call waits for its task: progress goes out as `notifications/progress` when
//!   the client gave a token (with periodic keep-alives, so clients that reset their
//!   timeout on progress never give up); the first message names the task id, so a client
//!   that disconnects can fetch the result later with `task_result`. Input the task needs
//!   is asked of the client (elicitation on legacy sessions, an input round on 2026-07-28).
//!   `notifications/cancelled` cancels the task; so does closing a 2026-07-28 HTTP stream.
//!   A legacy client disconnecting does not: the task runs on.

use std::sync::Arc;

use baton_core::submit::SubmitRequest;
use baton_core::{Task, TaskId, TaskStatus};
use serde_json::{Value, json};

use crate::errors::engine_error;
use crate::protocol::{self, RpcError};
use crate::results::final_result;
use crate::session::Ctx;
use crate::state::McpService;
use crate::{orchestration, tasks};

pub async fn call(
    service: &Arc<McpService>,
    params: Value,
    ctx: &Ctx,
) -> Result<Option<Value>, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("tools/call needs `name` (a string)"))?
        .to_string();
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(RpcError::invalid_params("`arguments` must be an object")),
    };
    if orchestration::is_orchestration(&name) {
        if params.get("task").is_some() && ctx.era.legacy_tasks() {
            return Err(RpcError::new(
                protocol::METHOD_NOT_FOUND,
                format!(
                    "tool `{name}` does not run as a task (execution.taskSupport is forbidden)"
                ),
            ));
        }
        // An agent submitting through a task tool while it runs a task makes children of
        // it, as with a direct call.
        let parent = parent_task(service, &params, ctx).await?;
        return orchestration::call(service, &name, arguments, parent, ctx)
            .await
            .map(Some);
    }
    // A retried 2026-07-28 call answering an input round continues the same task.
    if ctx.era.is_modern()
        && let Some(state) = params.get("requestState").and_then(Value::as_str)
    {
        let id = input_round_task(state)?;
        let task = service
            .engine
            .get(&ctx.principal, id)
            .await
            .map_err(|_| RpcError::invalid_params("requestState names no task of yours"))?;
        let responses = params.get("inputResponses").and_then(Value::as_object);
        if task.status == TaskStatus::InputRequired
            && let Some(waiting) = task.input_requests.as_ref().and_then(Value::as_object)
        {
            let answered = |k: &String| responses.is_some_and(|r| r.contains_key(k));
            if !waiting.keys().all(answered) {
                // Not every question answered: ask again (a new round, not an error).
                return ask_for_input(service, &task, ctx).await;
            }
            let answers: serde_json::Map<String, Value> = waiting
                .keys()
                .filter_map(|k| Some((k.clone(), responses?.get(k)?.clone())))
                .collect();
            match service
                .engine
                .provide_input(&ctx.principal, id, Value::Object(answers))
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == baton_core::ErrorCode::Conflict => {}
                Err(e) => return Err(engine_error(e)),
            }
        }
        return wait_plain(service, id, &params, ctx).await;
    }
    let name = service.catalog_name(&name);
    let mut request = SubmitRequest::new(name.clone(), arguments);
    if ctx.era.legacy_tasks() {
        request.ttl_ms = requested_ttl(&params)?;
    }
    request.cache = cache_mode(&params)?;
    let mut task = service
        .engine
        .prepare(&ctx.principal, request)
        .map_err(engine_error)?;
    task.parent_id = parent_task(service, &params, ctx).await?;
    // A W3C trace context in `_meta` names the trace the task's runs join.
    if let Some(tp) = protocol::meta(&params)
        .and_then(|m| m.get("traceparent"))
        .and_then(Value::as_str)
        .filter(|t| baton_core::task::is_traceparent(t))
    {
        task.trace_parent = Some(tp.to_string());
    }
    let mode = if ctx.era.ext_tasks() {
        Mode::ExtTask
    } else if ctx.era.legacy_tasks() && params.get("task").is_some() {
        Mode::LegacyTask
    } else {
        Mode::Plain
    };
    // A plain call follows its task from before it is stored: a tool that starts at once
    // may log before the call would otherwise be listening.
    let following = (matches!(mode, Mode::Plain)).then(|| Following::start(service, task.id));
    let stored = service
        .engine
        .submit_prepared(vec![task])
        .await
        .map_err(engine_error)?
        .remove(0)
        .task;
    match mode {
        Mode::ExtTask => Ok(Some(tasks::ext_created(service, &stored))),
        Mode::LegacyTask => {
            ctx.session
                .tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(stored.id);
            Ok(Some(json!({"task": tasks::legacy_task(service, &stored)})))
        }
        Mode::Plain => match following {
            Some(f) => wait_following(service, stored.id, &params, ctx, f).await,
            None => wait_plain(service, stored.id, &params, ctx).await,
        },
    }
}

/// The time to live a 2025-11-25 client asked for (`params.task.ttl`, milliseconds from
/// creation), raised to Baton's shortest; the engine caps it at the retention. The task
/// answered says what was granted.
fn requested_ttl(params: &Value) -> Result<Option<u64>, RpcError> {
    match params.get("task").and_then(|t| t.get("ttl")) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(ms) => Ok(Some(ms.max(baton_core::submit::MIN_TTL.as_millis() as u64))),
            None => Err(RpcError::invalid_params(format!(
                "`task.ttl` must be a number of milliseconds, got {v}"
            ))),
        },
    }
}

/// What the call asks of the result cache (`_meta["baton/cache"]`).
fn cache_mode(params: &Value) -> Result<Option<baton_core::submit::CacheMode>, RpcError> {
    let Some(raw) = protocol::meta(params).and_then(|m| m.get(protocol::META_CACHE)) else {
        return Ok(None);
    };
    serde_json::from_value(raw.clone()).map(Some).map_err(|_| {
        RpcError::invalid_params(format!(
            "`_meta[\"{}\"]` must be \"use\", \"refresh\" or \"bypass\", got {raw}",
            protocol::META_CACHE
        ))
    })
}

enum Mode {
    ExtTask,
    LegacyTask,
    Plain,
}

/// The parent task named in `_meta` (an agent calling Baton while running a task). It
/// must be a task the caller may see: a child never attaches to another tenant's task.
async fn parent_task(
    service: &McpService,
    params: &Value,
    ctx: &Ctx,
) -> Result<Option<TaskId>, RpcError> {
    let Some(raw) = protocol::meta(params).and_then(|m| m.get(protocol::META_PARENT_TASK)) else {
        return Ok(None);
    };
    let unknown = || {
        RpcError::invalid_params(format!(
            "`_meta[\"{}\"]` names no task of yours",
            protocol::META_PARENT_TASK
        ))
    };
    let id: TaskId = raw
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(unknown)?;
    service
        .engine
        .get(&ctx.principal, id)
        .await
        .map_err(|_| unknown())?;
    Ok(Some(id))
}

const ROUND_PREFIX: &str = "baton-task:";

fn input_round_task(state: &str) -> Result<TaskId, RpcError> {
    state
        .strip_prefix(ROUND_PREFIX)
        .map(|rest| rest.split_once(':').map_or(rest, |(id, _)| id))
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| RpcError::invalid_params("requestState is not one Baton issued"))
}

/// Progress values must grow with every notification; Baton's fractions may repeat (a
/// message changes, a keep-alive), so each notification moves on by at least a little.
struct Progress {
    token: Option<Value>,
    last: f64,
}

impl Progress {
    fn message(&mut self, fraction: Option<f64>, message: String) -> Option<Value> {
        let token = self.token.clone()?;
        let wanted = fraction.map_or(self.last, |f| f * 100.0);
        self.last = wanted.max(self.last + 0.001).min(100.0);
        Some(protocol::notification(
            "notifications/progress",
            json!({"progressToken": token, "progress": self.last, "total": 100.0, "message": message}),
        ))
    }
}

/// Waits for a task on behalf of a client without task support.
async fn wait_plain(
    service: &Arc<McpService>,
    id: TaskId,
    params: &Value,
    ctx: &Ctx,
) -> Result<Option<Value>, RpcError> {
    let following = Following::start(service, id);
    wait_following(service, id, params, ctx, following).await
}

/// What a waiting call hears of its task: its events and the tools' log messages. Made
/// before the task is stored, so that nothing the task does first is missed.
struct Following {
    events: baton_engine::hub::TaskSubscription,
    logs: tokio::sync::broadcast::Receiver<Arc<baton_engine::hub::TaskLog>>,
}

impl Following {
    fn start(service: &McpService, id: TaskId) -> Following {
        Following {
            events: service.engine.subscribe(id),
            logs: service.engine.subscribe_logs(),
        }
    }
}

async fn wait_following(
    service: &Arc<McpService>,
    id: TaskId,
    params: &Value,
    ctx: &Ctx,
    following: Following,
) -> Result<Option<Value>, RpcError> {
    let engine = &service.engine;
    let mut progress = Progress {
        token: protocol::meta(params)
            .and_then(|m| m.get("progressToken"))
            .cloned(),
        last: 0.0,
    };
    let Following {
        events: mut sub,
        mut logs,
    } = following;
    let threshold = log_threshold(params, ctx);
    let mut task = engine.get(&ctx.principal, id).await.map_err(engine_error)?;
    if let Some(n) = progress.message(task.progress, format!("task {id} {}", task.status)) {
        let _ = ctx.out.send(n);
    }
    let mut keepalive = tokio::time::interval(service.settings.keepalive);
    keepalive.tick().await;
    let mut asked_input = false;
    loop {
        if task.status.is_final() {
            // Log messages the tool sent before it finished go out before the answer.
            while let Ok(log) = logs.try_recv() {
                relay_log(&log, id, threshold, ctx);
            }
            engine
                .resolve_payload(&mut task)
                .await
                .map_err(engine_error)?;
            return Ok(Some(final_result(&task)));
        }
        if task.status == TaskStatus::InputRequired && !asked_input {
            asked_input = true;
            if let Some(answer) = ask_for_input(service, &task, ctx).await? {
                return Ok(Some(answer));
            }
        }
        tokio::select! {
            ev = sub.recv() => {
                // A lagging subscription only loses progress messages; the task is
                // read again below either way.
                if let Ok(ev) = ev {
                    if ev.kind == baton_core::EventKind::InputReceived {
                        asked_input = false;
                    }
                    let message = ev
                        .message
                        .clone()
                        .map(|m| format!("task {id}: {m}"))
                        .unwrap_or_else(|| format!("task {id} {}", ev.status));
                    if let Some(n) = progress.message(ev.progress, message) {
                        let _ = ctx.out.send(n);
                    }
                }
                task = engine.get(&ctx.principal, id).await.map_err(engine_error)?;
            }
            log = logs.recv(), if threshold.is_some() => {
                if let Ok(log) = log {
                    relay_log(&log, id, threshold, ctx);
                }
            }
            _ = keepalive.tick() => {
                if let Some(n) = progress.message(None, format!("task {id} still {}", task.status)) {
                    let _ = ctx.out.send(n);
                }
                // Events of other nodes reach this one through the store; look now and then.
                task = engine.get(&ctx.principal, id).await.map_err(engine_error)?;
            }
            _ = ctx.cancel.cancelled() => {
                let _ = engine.cancel(&ctx.principal, id).await;
                // A cancelled request gets no response.
                return Ok(None);
            }
            _ = ctx.out.closed() => {
                if ctx.disconnect_cancels {
                    let _ = engine.cancel(&ctx.principal, id).await;
                }
                return Ok(None);
            }
        }
    }
}

fn relay_log(log: &baton_engine::hub::TaskLog, id: TaskId, threshold: Option<usize>, ctx: &Ctx) {
    if log.task_id != id || threshold.is_none_or(|t| level_rank(&log.level) < t) {
        return;
    }
    let mut params = json!({"level": log.level, "data": log.data});
    if let Some(l) = &log.logger {
        params["logger"] = json!(l);
    }
    let _ = ctx
        .out
        .send(protocol::notification("notifications/message", params));
}

fn level_rank(level: &str) -> usize {
    protocol::LEVELS
        .iter()
        .position(|l| *l == level)
        .unwrap_or(1)
}

/// The lowest log level relayed to this caller: on 2026-07-28 the request's own
/// `_meta` logLevel (none: no logs); on a legacy session its `logging/setLevel`
/// (default info).
fn log_threshold(params: &Value, ctx: &Ctx) -> Option<usize> {
    if ctx.era.is_modern() {
        let level = protocol::meta(params)?
            .get(protocol::META_LOG_LEVEL)?
            .as_str()?;
        return Some(level_rank(level));
    }
    let level = ctx
        .session
        .log_level
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Some(level.as_deref().map_or(1, level_rank))
}

/// Asks the client for the input a task waits for. On a legacy session with elicitation,
/// as `elicitation/create` requests; on 2026-07-28, as an input round (the answer is the
/// call's result: the client retries with its answers). `None`: keep waiting.
async fn ask_for_input(
    service: &Arc<McpService>,
    task: &Task,
    ctx: &Ctx,
) -> Result<Option<Value>, RpcError> {
    let Some(requests) = task.input_requests.as_ref().and_then(Value::as_object) else {
        return Ok(None);
    };
    // Only ask what the client said it can answer.
    let missing: Vec<&str> = requests
        .values()
        .map(|r| match r.get("method").and_then(Value::as_str) {
            Some("sampling/createMessage") => "sampling",
            Some("roots/list") => "roots",
            _ => "elicitation",
        })
        .filter(|c| ctx.era.capabilities().get(*c).is_none())
        .collect();
    if !missing.is_empty() && ctx.era.is_modern() {
        // A 2026-07-28 client is told at once what it lacks, and the call is not left
        // running for nobody.
        let _ = service.engine.cancel(&ctx.principal, task.id).await;
        let required: serde_json::Map<String, Value> =
            missing.iter().map(|c| (c.to_string(), json!({}))).collect();
        return Err(RpcError::new(
            protocol::MISSING_CLIENT_CAPABILITY,
            format!(
                "the tool asks the client for {} input, a capability this request did not declare; task {} is cancelled",
                missing.join(" and "),
                task.id
            ),
        )
        .with_data(json!({"requiredCapabilities": required})));
    }
    if !missing.is_empty() {
        tracing::info!(
            task_id = %task.id,
            "task needs input the client did not declare it can give; answer it with POST /v1/tasks/{}/input",
            task.id
        );
        return Ok(None);
    }
    if ctx.era.is_modern() {
        return Ok(Some(json!({
            "resultType": "input_required",
            "inputRequests": requests,
            // A new state for each round (the first request key is new each time).
            "requestState": format!(
                "{ROUND_PREFIX}{}:{}",
                task.id,
                requests.keys().next().map(String::as_str).unwrap_or("")
            ),
        })));
    }
    let mut answers = serde_json::Map::new();
    for (key, request) in requests {
        let method = request
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("elicitation/create");
        let params = request.get("params").cloned().unwrap_or(json!({}));
        let answer = ctx.session.ask(&ctx.out, method, params).await?;
        answers.insert(key.clone(), answer);
    }
    service
        .engine
        .provide_input(&ctx.principal, task.id, Value::Object(answers))
        .await
        .map_err(engine_error)?;
    Ok(None)
}
