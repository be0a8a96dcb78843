//! Tools for models whose host has no task support: submit, follow, fetch and cancel
//! Baton tasks, run workflows, see queues, servers and peers. Each answers with text and
//! the same data as `structuredContent`, described by an `outputSchema`; the data is the
//! engine's view, the one the REST API answers with.
//!
//! Mistakes a model makes (a bad id, an unknown tool, a refusal of the engine) come back
//! as `isError` results it can read and correct; only malformed calls are protocol
//! errors.

mod args;
mod tools;

use std::sync::Arc;

use baton_core::TaskId;
use baton_core::submit::SubmitRequest;
use baton_engine::page::{self, Page};
use baton_engine::reads::TaskFilter;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use self::args::*;
use self::tools::{CancelView, DagView, PeersView, ServersView, Submitted};
use crate::errors::{engine_error_result, error_result};
use crate::protocol::RpcError;
use crate::session::Ctx;
use crate::state::McpService;

pub use self::tools::{definitions, no_boolean_schemas, schema};

pub const NAMES: &[&str] = &[
    "task_submit",
    "task_status",
    "task_result",
    "task_cancel",
    "task_retry",
    "task_priority",
    "task_list",
    "queue_stats",
    "queue_pause",
    "queue_resume",
    "queue_clear",
    "cache_invalidate",
    "server_list",
    "tool_search",
    "peer_list",
    "worker_status",
    "worker_drain",
    "analytics",
    "schedule_create",
    "schedule_list",
    "schedule_get",
    "schedule_update",
    "schedule_delete",
    "schedule_pause",
    "schedule_resume",
    "schedule_runs",
    "webhook_create",
    "webhook_list",
    "webhook_get",
    "webhook_delete",
    "webhook_rotate",
    "webhook_deliveries",
    "webhook_redeliver",
    "workflow_submit",
    "workflow_status",
    "workflow_result",
    "workflow_cancel",
    "workflow_list",
    "workflow_dag",
];

pub fn is_orchestration(name: &str) -> bool {
    NAMES.contains(&name)
}

/// The scope an orchestration tool needs; `None` for a name that is not one.
pub fn scope_of(name: &str) -> Option<baton_core::auth::Scope> {
    use baton_core::auth::Scope;
    Some(match name {
        "task_submit" | "task_cancel" | "task_retry" | "task_priority" => Scope::TasksWrite,
        "queue_pause" | "queue_resume" | "queue_clear" => Scope::QueuesAdmin,
        "worker_status" | "worker_drain" => Scope::Admin,
        "cache_invalidate" => Scope::ServersAdmin,
        "schedule_create" | "schedule_update" | "schedule_delete" | "schedule_pause"
        | "schedule_resume" => Scope::TasksWrite,
        "schedule_list" | "schedule_get" | "schedule_runs" => Scope::TasksRead,
        "webhook_create" | "webhook_delete" | "webhook_rotate" | "webhook_redeliver" => {
            Scope::TasksWrite
        }
        "webhook_list" | "webhook_get" | "webhook_deliveries" => Scope::TasksRead,
        "task_status" | "task_result" | "task_list" | "queue_stats" | "server_list"
        | "tool_search" | "peer_list" | "analytics" => Scope::TasksRead,
        "workflow_submit" | "workflow_cancel" => Scope::WorkflowsWrite,
        "workflow_status" | "workflow_result" | "workflow_list" | "workflow_dag" => {
            Scope::WorkflowsRead
        }
        _ => return None,
    })
}

/// Runs one of these tools. `parent` is the task named by the call's
/// `_meta["baton/parentTask"]` (checked to be the caller's): tasks and workflows the
/// call submits become its children.
pub async fn call(
    service: &Arc<McpService>,
    name: &str,
    args: Value,
    parent: Option<TaskId>,
    ctx: &Ctx,
) -> Result<Value, RpcError> {
    match run(service, name, args, parent, ctx).await {
        Ok(v) => Ok(v),
        Err(Failure::Tool(m)) => Ok(error_result(m)),
        Err(Failure::Engine(e)) => Ok(engine_error_result(e)),
        Err(Failure::Rpc(e)) => Err(e),
    }
}

enum Failure {
    /// A mistake in the call, said in words.
    Tool(String),
    /// The engine refused: a tool error with its code and retry hint (and, for an
    /// internal error, only a reference: the rule of `baton_core::error`).
    Engine(baton_engine::EngineError),
    Rpc(RpcError),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Tool(s)
    }
}

impl From<baton_engine::EngineError> for Failure {
    fn from(e: baton_engine::EngineError) -> Self {
        Failure::Engine(e)
    }
}

impl From<baton_core::submit::InvalidRequest> for Failure {
    fn from(e: baton_core::submit::InvalidRequest) -> Self {
        Failure::Engine(e.into())
    }
}

fn parse<T: DeserializeOwned>(args: Value) -> Result<T, Failure> {
    serde_json::from_value(args).map_err(|e| Failure::Tool(format!("invalid arguments: {e}")))
}

fn task_id(raw: &str) -> Result<TaskId, Failure> {
    raw.parse()
        .map_err(|_| Failure::Tool(format!("`{raw}` is not a task id")))
}

/// A result: the data as text, and as `structuredContent`.
fn ok(data: impl serde::Serialize) -> Value {
    let data = serde_json::to_value(data).unwrap_or_default();
    json!({
        "content": [{"type": "text", "text": serde_json::to_string_pretty(&data).unwrap_or_default()}],
        "structuredContent": data,
    })
}

async fn run(
    service: &Arc<McpService>,
    name: &str,
    args: Value,
    parent: Option<TaskId>,
    ctx: &Ctx,
) -> Result<Value, Failure> {
    let engine = &service.engine;
    let p = &ctx.principal;
    match name {
        "task_submit" => {
            let req: SubmitRequest = parse(args)?;
            let mut task = engine.prepare(p, req)?;
            task.parent_id = parent;
            let sub = engine.submit_prepared(vec![task]).await?.remove(0);
            Ok(ok(Submitted {
                task_id: sub.task.id.to_string(),
                status: sub.task.status,
                tool: sub.task.tool,
                created: sub.created,
            }))
        }
        "task_status" => {
            let a: TaskIdArgs = parse(args)?;
            Ok(ok(engine.describe(p, task_id(&a.task_id)?).await?))
        }
        "task_result" => {
            let a: TaskResultArgs = parse(args)?;
            let id = task_id(&a.task_id)?;
            let wait = page::wait("wait_seconds", a.wait_seconds)?;
            let task = tokio::select! {
                t = engine.wait(p, id, wait) => t?,
                _ = ctx.cancel.cancelled() => return Err(Failure::Rpc(RpcError::new(crate::protocol::INTERNAL_ERROR, "cancelled"))),
            };
            let completed = task.status == baton_core::TaskStatus::Completed;
            let content = task.result.as_ref().and_then(|r| r.get("content")).cloned();
            let mut out = ok(baton_engine::views::ResultView::new(task));
            // A finished task's own result is what a model wants to read first.
            if completed && let Some(content) = content {
                out["content"] = content;
            }
            Ok(out)
        }
        "task_cancel" => {
            let a: TaskIdArgs = parse(args)?;
            let c = engine.cancel(p, task_id(&a.task_id)?).await?;
            let message = match &c {
                baton_engine::engine::Cancelled::Now(_) => "cancelled before it started",
                baton_engine::engine::Cancelled::Requested(_) => {
                    "cancellation requested; the tool is being stopped"
                }
            };
            Ok(ok(CancelView {
                task_id: c.task().id.to_string(),
                status: c.task().status,
                message: message.into(),
            }))
        }
        "task_retry" => {
            let a: TaskIdArgs = parse(args)?;
            let id = task_id(&a.task_id)?;
            engine.retry(p, id).await?;
            Ok(ok(engine.describe(p, id).await?))
        }
        "task_priority" => {
            let a: TaskPriorityArgs = parse(args)?;
            let id = task_id(&a.task_id)?;
            let update = baton_core::submit::TaskUpdate {
                priority: a.priority,
                run_at: a.run_at,
                delay_ms: a.delay_ms,
            };
            engine.reschedule(p, id, &update).await?;
            Ok(ok(engine.describe(p, id).await?))
        }
        "task_list" => {
            let a: TaskListArgs = parse(args)?;
            let filter = TaskFilter {
                status: a.status.as_deref().map(str::parse).transpose()?,
                tool: a.tool,
                queue: a.queue,
                workflow_id: a.workflow_id,
                parent_id: a.parent_id.as_deref().map(task_id).transpose()?,
            };
            let page = Page::parse(a.limit, a.cursor.as_deref())?;
            Ok(ok(engine.task_page(p, filter, page).await?))
        }
        "queue_stats" => {
            let _: NoArgs = parse(args)?;
            Ok(ok(engine.queues_view(Some(p)).await?))
        }
        "queue_pause" | "queue_resume" => {
            let a: QueueArgs = parse(args)?;
            let paused = name == "queue_pause";
            engine.set_queue_paused(p, &a.name, paused).await?;
            Ok(ok(baton_engine::views::QueueState {
                name: a.name,
                paused,
            }))
        }
        "queue_clear" => {
            let a: QueueClearArgs = parse(args)?;
            if !a.confirm {
                return Err(Failure::Tool(
                    "clearing cancels the queue's tasks; call again with confirm: true to do it"
                        .into(),
                ));
            }
            Ok(ok(engine.clear_queue(p, &a.name, &a.status).await?))
        }
        "cache_invalidate" => {
            let a: baton_engine::cache::InvalidateCache = parse(args)?;
            Ok(ok(engine.invalidate(&a).await?))
        }
        "schedule_create" => {
            let a: baton_engine::schedules::ScheduleRequest = parse(args)?;
            Ok(ok(engine.create_schedule(p, a).await?))
        }
        "schedule_list" => {
            let _: NoArgs = parse(args)?;
            Ok(ok(engine.schedules(p).await?))
        }
        "schedule_get" => {
            let a: ScheduleNameArgs = parse(args)?;
            Ok(ok(engine.schedule(p, &a.name).await?))
        }
        "schedule_update" | "schedule_pause" | "schedule_resume" => {
            let (schedule, upd) = if name == "schedule_update" {
                let a: ScheduleUpdateArgs = parse(args)?;
                let upd = baton_engine::schedules::ScheduleUpdate {
                    cron: a.cron,
                    timezone: a.timezone,
                    task: a.task,
                    workflow: a.workflow,
                    overlap: a.overlap,
                    catch_up: a.catch_up,
                    paused: a.paused,
                };
                (a.name, upd)
            } else {
                let a: ScheduleNameArgs = parse(args)?;
                let upd = baton_engine::schedules::ScheduleUpdate {
                    paused: Some(name == "schedule_pause"),
                    ..Default::default()
                };
                (a.name, upd)
            };
            Ok(ok(engine.update_schedule(p, &schedule, upd).await?))
        }
        "schedule_delete" => {
            let a: ScheduleNameArgs = parse(args)?;
            engine.delete_schedule(p, &a.name).await?;
            Ok(ok(tools::Deleted {
                name: a.name,
                deleted: true,
            }))
        }
        "schedule_runs" => {
            let a: ScheduleRunsArgs = parse(args)?;
            Ok(ok(engine.schedule_runs(p, &a.name, a.limit).await?))
        }
        "webhook_create" => {
            let a: baton_engine::webhooks::WebhookRequest = parse(args)?;
            Ok(ok(engine
                .create_webhook(p, ctx.identity.is_admin(), a)
                .await?))
        }
        "webhook_list" => {
            let _: NoArgs = parse(args)?;
            Ok(ok(engine.webhooks(p).await?))
        }
        "webhook_get" => {
            let a: WebhookIdArgs = parse(args)?;
            Ok(ok(engine.webhook(p, &a.id).await?))
        }
        "webhook_delete" => {
            let a: WebhookIdArgs = parse(args)?;
            engine.delete_webhook(p, &a.id).await?;
            Ok(ok(tools::WebhookDeleted {
                id: a.id,
                deleted: true,
            }))
        }
        "webhook_rotate" => {
            let a: WebhookRotateArgs = parse(args)?;
            let req = baton_engine::webhooks::RotateRequest {
                secret: a.secret,
                overlap_seconds: a.overlap_seconds,
            };
            Ok(ok(engine.rotate_webhook(p, &a.id, req).await?))
        }
        "webhook_deliveries" => {
            let a: WebhookDeliveriesArgs = parse(args)?;
            Ok(ok(engine
                .webhook_deliveries(p, &a.id, a.limit, a.cursor.as_deref())
                .await?))
        }
        "webhook_redeliver" => {
            let a: WebhookRedeliverArgs = parse(args)?;
            Ok(ok(engine.redeliver(p, &a.id, &a.delivery_id).await?))
        }
        "server_list" => {
            let a: ServerListArgs = parse(args)?;
            let servers = service
                .upstreams
                .as_ref()
                .map(|u| u.list())
                .unwrap_or_default()
                .into_iter()
                .filter(|s| a.tag.as_ref().is_none_or(|t| s.config.tags.contains(t)))
                .map(|s| s.status())
                .collect();
            Ok(ok(ServersView { servers }))
        }
        "tool_search" => {
            let a: baton_engine::tools::search::ToolSearch = parse(args)?;
            Ok(ok(a.run(engine.tools())?))
        }
        "analytics" => {
            let a: baton_engine::analytics::AnalyticsParams = parse(args)?;
            let admin = ctx
                .identity
                .scopes
                .contains(&baton_core::auth::Scope::Admin);
            let owner = (!admin).then_some(p.as_str());
            Ok(ok(engine.analytics(owner, &a).await?))
        }
        "worker_drain" => {
            let a: PeerIdArgs = parse(args)?;
            Ok(ok(engine.drain_peer(&a.id).await?))
        }
        "peer_list" | "worker_status" => {
            let _: NoArgs = parse(args)?;
            Ok(ok(PeersView {
                peers: engine.peer_views().await?,
            }))
        }
        "workflow_submit" => {
            let a: WorkflowSubmitArgs = parse(args)?;
            let definition = match a.definition {
                Value::String(text) => baton_engine::workflow::parse_definition(&text)?,
                v @ Value::Object(_) => baton_engine::workflow::definition_from_value(v)?,
                _ => {
                    return Err("`definition` (an object, or YAML/JSON text) is required"
                        .to_string()
                        .into());
                }
            };
            let options = baton_engine::workflow::WorkflowOptions {
                idempotency_key: a.idempotency_key,
                parent,
            };
            let submitted = engine.submit_workflow_with(p, definition, options).await?;
            let mut out = ok(submitted.workflow);
            out["structuredContent"]["created"] = json!(submitted.created);
            Ok(out)
        }
        "workflow_status" => {
            let a: WorkflowIdArgs = parse(args)?;
            Ok(ok(engine.get_workflow(p, &a.workflow_id).await?))
        }
        "workflow_result" => {
            let a: WorkflowResultArgs = parse(args)?;
            let wait = page::wait("wait_seconds", a.wait_seconds)?;
            Ok(ok(engine.workflow_result(p, &a.workflow_id, wait).await?))
        }
        "workflow_cancel" => {
            let a: WorkflowIdArgs = parse(args)?;
            Ok(ok(engine.cancel_workflow(p, &a.workflow_id).await?))
        }
        "workflow_list" => {
            let a: WorkflowListArgs = parse(args)?;
            let status = a
                .status
                .as_deref()
                .map(str::parse::<baton_store::WorkflowStatus>)
                .transpose()?;
            let page = Page::parse(a.limit, a.cursor.as_deref())?;
            Ok(ok(engine.workflow_page(p, status, page).await?))
        }
        "workflow_dag" => {
            let a: WorkflowDagArgs = parse(args)?;
            let name = a.format.unwrap_or_else(|| "json".into());
            let format = name.parse::<baton_engine::workflow::DagFormat>()?;
            let dag = match engine.workflow_dag(p, &a.workflow_id, format).await? {
                baton_engine::workflow::DagOutput::Json(v) => v,
                baton_engine::workflow::DagOutput::Text(t) => Value::String(t),
            };
            Ok(ok(DagView {
                workflow_id: a.workflow_id,
                format: name,
                dag,
            }))
        }
        other => Err(Failure::Rpc(RpcError::invalid_params(format!(
            "unknown tool `{other}`"
        )))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_orchestration_tool_needs_a_scope() {
        for name in super::NAMES {
            assert!(super::scope_of(name).is_some(), "{name}");
        }
        assert_eq!(super::scope_of("everything__echo"), None);
    }
}
