//! Tools for models whose host has no task support: submit, follow, fetch and cancel
//! Baton tasks, see queues and servers. Each answers with text and the same data as
//! `structuredContent`, described by an `outputSchema`.

use std::sync::Arc;
use std::time::Duration;

use baton_core::submit::SubmitRequest;
use baton_core::{Task, TaskId, TaskStatus};
use serde_json::{Value, json};

use crate::errors::{engine_error_result, error_result};
use crate::protocol::RpcError;
use crate::session::Ctx;
use crate::state::McpService;

pub const NAMES: &[&str] = &[
    "task_submit",
    "task_status",
    "task_result",
    "task_cancel",
    "task_list",
    "queue_stats",
    "server_list",
    "peer_list",
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

fn task_id_schema() -> Value {
    json!({"type": "string", "description": "The task id returned by task_submit (or named in a tool call's progress)."})
}

fn task_summary_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "task_id": {"type": "string"},
            "tool": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "running", "input_required", "completed", "failed", "cancelled"]},
            "progress": {"type": ["number", "null"]},
            "progress_message": {"type": ["string", "null"]},
            "attempt": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "created_at": {"type": "string"},
            "completed_at": {"type": ["string", "null"]},
            "estimated_completion": {"type": ["string", "null"]},
            "error": {"type": ["object", "null"]},
            "input_requests": {"type": ["object", "null"]}
        },
        "required": ["task_id", "tool", "status"]
    })
}

fn def(
    name: &str,
    title: &str,
    description: &str,
    input: Value,
    output: Value,
    read_only: bool,
) -> Value {
    json!({
        "name": name,
        "title": title,
        "description": description,
        "inputSchema": input,
        "outputSchema": output,
        "annotations": {"readOnlyHint": read_only, "idempotentHint": read_only}
    })
}

pub fn definitions() -> Vec<Value> {
    vec![
        def(
            "task_submit",
            "Submit a task",
            "Runs any tool as a durable background task and returns its id at once. Use task_status / task_result to follow it.",
            json!({
                "type": "object",
                "properties": {
                    "tool": {"type": "string", "description": "Qualified tool name, server__tool (see tools/list)."},
                    "arguments": {"type": "object", "description": "The tool's arguments."},
                    "priority": {"description": "low, normal, high or 0-100.", "type": ["string", "integer"]},
                    "queue": {"type": "string"},
                    "delay_ms": {"type": "integer", "minimum": 0},
                    "timeout_ms": {"type": "integer", "minimum": 1},
                    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                    "idempotency_key": {"type": "string"}
                },
                "required": ["tool"],
                "additionalProperties": false
            }),
            json!({"type": "object", "properties": {"task_id": {"type": "string"}, "status": {"type": "string"}, "tool": {"type": "string"}, "created": {"type": "boolean"}}, "required": ["task_id", "status"]}),
            false,
        ),
        def(
            "task_status",
            "Task status",
            "Status, progress and estimated completion of a task.",
            json!({"type": "object", "properties": {"task_id": task_id_schema()}, "required": ["task_id"], "additionalProperties": false}),
            task_summary_schema(),
            true,
        ),
        def(
            "task_result",
            "Task result",
            "The result of a task; waits up to wait_seconds (default 0, at most 300) for it to finish.",
            json!({"type": "object", "properties": {"task_id": task_id_schema(), "wait_seconds": {"type": "integer", "minimum": 0, "maximum": 300}}, "required": ["task_id"], "additionalProperties": false}),
            json!({"type": "object", "properties": {"task_id": {"type": "string"}, "status": {"type": "string"}, "finished": {"type": "boolean"}, "result": {"type": ["object", "null"]}, "error": {"type": ["object", "null"]}}, "required": ["task_id", "status", "finished"]}),
            true,
        ),
        def(
            "task_cancel",
            "Cancel a task",
            "Cancels a task: a pending one at once, a running one as soon as its tool stops.",
            json!({"type": "object", "properties": {"task_id": task_id_schema()}, "required": ["task_id"], "additionalProperties": false}),
            json!({"type": "object", "properties": {"task_id": {"type": "string"}, "status": {"type": "string"}, "message": {"type": "string"}}, "required": ["task_id", "status"]}),
            false,
        ),
        def(
            "task_list",
            "List tasks",
            "The caller's tasks, newest first.",
            json!({"type": "object", "properties": {
                "status": {"type": "string", "enum": ["pending", "running", "input_required", "completed", "failed", "cancelled"]},
                "tool": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "cursor": {"type": "string"}
            }, "additionalProperties": false}),
            json!({"type": "object", "properties": {"tasks": {"type": "array", "items": task_summary_schema()}, "next_cursor": {"type": ["string", "null"]}}, "required": ["tasks"]}),
            true,
        ),
        def(
            "queue_stats",
            "Queue statistics",
            "Tasks per queue and status, throughput, active tasks.",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"queues": {"type": "array"}, "active_tasks": {"type": "integer"}}, "required": ["queues", "active_tasks"]}),
            true,
        ),
        def(
            "server_list",
            "List MCP servers",
            "The MCP servers whose tools Baton runs, with health and tools; filter by tag (capability).",
            json!({"type": "object", "properties": {"tag": {"type": "string"}}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"servers": {"type": "array"}}, "required": ["servers"]}),
            true,
        ),
        def(
            "peer_list",
            "List Baton nodes and workers",
            "The processes sharing this Baton deployment's store (API nodes, workers), with role, address, load, throughput and health (healthy, late, lost, stopped).",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"peers": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "role": {"type": "string"}, "address": {"type": ["string", "null"]},
                "version": {"type": "string"}, "health": {"type": "string", "enum": ["healthy", "late", "lost", "stopped"]},
                "running": {"type": "integer"}, "finished": {"type": "integer"}, "throughput": {"type": "number"},
                "started_at": {"type": "string"}, "last_heartbeat": {"type": "string"}
            }, "required": ["id", "role", "health"]}}}, "required": ["peers"]}),
            true,
        ),
        def(
            "workflow_submit",
            "Submit a workflow",
            "Runs a workflow: a DAG of tool calls (steps) across servers, each step a durable task that starts when the steps it depends_on completed. Arguments may reference earlier results as \"${steps.<id>.result.structuredContent.x}\" or \"${steps.<id>.result.content[0].text}\". Give the definition as an object or as YAML/JSON text. Returns the workflow id at once.",
            json!({"type": "object", "properties": {
                "definition": {"description": "The workflow: {name, on_failure: fail_fast|continue, steps: [{id, tool, arguments, depends_on, retry: {max_attempts}, timeout_ms, priority, queue}]}, as an object or as YAML/JSON text.", "type": ["object", "string"]}
            }, "required": ["definition"], "additionalProperties": false}),
            workflow_schema(),
            false,
        ),
        def(
            "workflow_status",
            "Workflow status",
            "Status and progress of a workflow and of each of its steps.",
            json!({"type": "object", "properties": {"workflow_id": workflow_id_schema()}, "required": ["workflow_id"], "additionalProperties": false}),
            workflow_schema(),
            true,
        ),
        def(
            "workflow_result",
            "Workflow result",
            "The results of a workflow's final steps (those no step depends on), by step id; waits up to wait_seconds (default 0, at most 300) for the workflow to finish.",
            json!({"type": "object", "properties": {"workflow_id": workflow_id_schema(), "wait_seconds": {"type": "integer", "minimum": 0, "maximum": 300}}, "required": ["workflow_id"], "additionalProperties": false}),
            json!({"type": "object", "properties": {"workflow_id": {"type": "string"}, "status": {"type": "string"}, "progress": {"type": "object"}, "outputs": {"type": "object"}, "error": {"type": ["object", "null"]}}, "required": ["workflow_id", "status", "outputs"]}),
            true,
        ),
        def(
            "workflow_cancel",
            "Cancel a workflow",
            "Cancels a running workflow: its running steps are cancelled and nothing more starts.",
            json!({"type": "object", "properties": {"workflow_id": workflow_id_schema()}, "required": ["workflow_id"], "additionalProperties": false}),
            workflow_schema(),
            false,
        ),
        def(
            "workflow_list",
            "List workflows",
            "The caller's workflows, newest first, with status and progress.",
            json!({"type": "object", "properties": {
                "status": {"type": "string", "enum": ["running", "completed", "failed", "cancelled"]},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100}
            }, "additionalProperties": false}),
            json!({"type": "object", "properties": {"workflows": {"type": "array", "items": {"type": "object"}}}, "required": ["workflows"]}),
            true,
        ),
        def(
            "workflow_dag",
            "Workflow DAG",
            "The workflow's graph with each step's state and the critical path: as JSON (default), Graphviz DOT or Mermaid text.",
            json!({"type": "object", "properties": {"workflow_id": workflow_id_schema(), "format": {"type": "string", "enum": ["json", "dot", "mermaid"]}}, "required": ["workflow_id"], "additionalProperties": false}),
            json!({"type": "object", "properties": {"workflow_id": {"type": "string"}, "format": {"type": "string"}, "dag": {}}, "required": ["workflow_id", "format", "dag"]}),
            true,
        ),
    ]
}

fn workflow_id_schema() -> Value {
    json!({"type": "string", "description": "The workflow id returned by workflow_submit."})
}

fn workflow_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "workflow_id": {"type": "string"},
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["running", "completed", "failed", "cancelled"]},
            "progress": {"type": "object"},
            "error": {"type": ["object", "null"]},
            "steps": {"type": "array", "items": {"type": "object", "properties": {
                "step_id": {"type": "string"}, "tool": {"type": "string"},
                "state": {"type": "string", "enum": ["pending", "running", "completed", "failed", "cancelled", "skipped"]},
                "task_id": {"type": "string"}
            }, "required": ["step_id", "tool", "state"]}}
        },
        "required": ["workflow_id", "name", "status", "progress", "steps"]
    })
}

fn arg_workflow_id(args: &Value) -> Result<String, String> {
    args.get("workflow_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "`workflow_id` (a string) is required".to_string())
}

fn ok(data: Value) -> Value {
    json!({
        "content": [{"type": "text", "text": serde_json::to_string_pretty(&data).unwrap_or_default()}],
        "structuredContent": data,
    })
}

fn arg_task_id(args: &Value) -> Result<TaskId, String> {
    let raw = args
        .get("task_id")
        .and_then(Value::as_str)
        .ok_or("`task_id` (a string) is required")?;
    raw.parse().map_err(|_| format!("`{raw}` is not a task id"))
}

fn summary(task: &Task, estimate: Option<baton_core::Timestamp>) -> Value {
    json!({
        "task_id": task.id.to_string(),
        "tool": task.tool,
        "status": task.status,
        "progress": task.progress,
        "progress_message": task.progress_message,
        "attempt": task.attempt,
        "max_attempts": task.max_attempts,
        "created_at": task.created_at,
        "completed_at": task.completed_at,
        "estimated_completion": estimate,
        "error": task.error,
        "input_requests": task.input_requests,
    })
}

pub async fn call(
    service: &Arc<McpService>,
    name: &str,
    args: Value,
    ctx: &Ctx,
) -> Result<Value, RpcError> {
    // Mistakes a model makes (a bad id, an unknown tool) come back as tool errors it can
    // read and correct; only malformed calls are protocol errors.
    match run(service, name, args, ctx).await {
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

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure::Tool(s.to_string())
    }
}

async fn run(
    service: &Arc<McpService>,
    name: &str,
    args: Value,
    ctx: &Ctx,
) -> Result<Value, Failure> {
    let engine = &service.engine;
    let p = &ctx.principal;
    let tool_error = Failure::Engine;
    match name {
        "task_submit" => {
            let req: SubmitRequest =
                serde_json::from_value(args).map_err(|e| format!("invalid arguments: {e}"))?;
            let sub = engine.submit(p, req).await.map_err(tool_error)?;
            Ok(ok(json!({
                "task_id": sub.task.id.to_string(),
                "status": sub.task.status,
                "tool": sub.task.tool,
                "created": sub.created,
            })))
        }
        "task_status" => {
            let task = engine
                .get(p, arg_task_id(&args)?)
                .await
                .map_err(tool_error)?;
            let estimate = engine.estimate_completion(&task).await;
            Ok(ok(summary(&task, estimate)))
        }
        "task_result" => {
            let id = arg_task_id(&args)?;
            let wait = args
                .get("wait_seconds")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if wait > 300 {
                return Err("wait_seconds is at most 300".into());
            }
            let task = tokio::select! {
                t = engine.wait(p, id, Duration::from_secs(wait)) => t.map_err(tool_error)?,
                _ = ctx.cancel.cancelled() => return Err(Failure::Rpc(RpcError::new(crate::protocol::INTERNAL_ERROR, "cancelled"))),
            };
            let finished = task.status.is_final();
            let data = json!({
                "task_id": id.to_string(),
                "status": task.status,
                "finished": finished,
                "result": task.result,
                "error": task.error,
            });
            let mut out = ok(data);
            // A finished task's own result is what a model wants to read first.
            if task.status == TaskStatus::Completed
                && let Some(content) = task.result.as_ref().and_then(|r| r.get("content"))
            {
                out["content"] = content.clone();
            }
            Ok(out)
        }
        "task_cancel" => {
            let c = engine
                .cancel(p, arg_task_id(&args)?)
                .await
                .map_err(tool_error)?;
            let message = match &c {
                baton_engine::engine::Cancelled::Now(_) => "cancelled before it started",
                baton_engine::engine::Cancelled::Requested(_) => {
                    "cancellation requested; the tool is being stopped"
                }
            };
            Ok(ok(
                json!({"task_id": c.task().id.to_string(), "status": c.task().status, "message": message}),
            ))
        }
        "task_list" => {
            let limit = args
                .get("limit")
                .and_then(Value::as_u64)
                .unwrap_or(20)
                .clamp(1, 100) as u32;
            let status = match args.get("status").and_then(Value::as_str) {
                Some(s) => Some(s.parse::<TaskStatus>()?),
                None => None,
            };
            let before_seq = match args.get("cursor").and_then(Value::as_str) {
                Some(c) => Some(
                    c.strip_prefix("seq:")
                        .and_then(|s| s.parse().ok())
                        .ok_or("invalid cursor")?,
                ),
                None => None,
            };
            let tasks = engine
                .list(
                    p,
                    baton_store::TaskQuery {
                        status,
                        tool: args.get("tool").and_then(Value::as_str).map(String::from),
                        before_seq,
                        limit,
                        ..Default::default()
                    },
                )
                .await
                .map_err(tool_error)?;
            let next = (tasks.len() == limit as usize)
                .then(|| tasks.last().map(|t| format!("seq:{}", t.seq)))
                .flatten();
            Ok(ok(json!({
                "tasks": tasks.iter().map(|t| summary(t, None)).collect::<Vec<_>>(),
                "next_cursor": next,
            })))
        }
        "queue_stats" => {
            let queues = engine.queues().await.map_err(tool_error)?;
            Ok(ok(
                json!({"queues": queues, "active_tasks": engine.active_tasks()}),
            ))
        }
        "server_list" => {
            let tag = args.get("tag").and_then(Value::as_str);
            let servers: Vec<Value> = service
                .upstreams
                .as_ref()
                .map(|u| u.list())
                .unwrap_or_default()
                .into_iter()
                .filter(|s| tag.is_none_or(|t| s.config.tags.iter().any(|x| x == t)))
                .map(|s| {
                    let st = s.status();
                    json!({
                        "name": st.name,
                        "state": st.state,
                        "protocol_version": st.protocol_version,
                        "tags": s.config.tags,
                        "group": s.config.group,
                        "tools": st.tools,
                        "in_flight": st.in_flight,
                        "error_rate": st.error_rate,
                    })
                })
                .collect();
            Ok(ok(json!({"servers": servers})))
        }
        "peer_list" => {
            let peers: Vec<Value> = engine
                .peers()
                .await
                .map_err(tool_error)?
                .into_iter()
                .map(|(p, health)| {
                    let mut v = serde_json::to_value(&p).unwrap_or_default();
                    v["health"] = json!(health);
                    v
                })
                .collect();
            Ok(ok(json!({"peers": peers})))
        }
        "workflow_submit" => {
            let definition = match args.get("definition") {
                Some(Value::String(text)) => baton_engine::workflow::parse_definition(text),
                Some(v @ Value::Object(_)) => {
                    baton_engine::workflow::definition_from_value(v.clone())
                }
                _ => return Err("`definition` (an object, or YAML/JSON text) is required".into()),
            }
            .map_err(tool_error)?;
            let view = engine
                .submit_workflow(p, definition)
                .await
                .map_err(tool_error)?;
            Ok(ok(serde_json::to_value(view).unwrap_or_default()))
        }
        "workflow_status" => {
            let view = engine
                .get_workflow(p, &arg_workflow_id(&args)?)
                .await
                .map_err(tool_error)?;
            Ok(ok(serde_json::to_value(view).unwrap_or_default()))
        }
        "workflow_result" => {
            let wait = args
                .get("wait_seconds")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(300);
            let v = engine
                .workflow_result(p, &arg_workflow_id(&args)?, Duration::from_secs(wait))
                .await
                .map_err(tool_error)?;
            Ok(ok(v))
        }
        "workflow_cancel" => {
            let view = engine
                .cancel_workflow(p, &arg_workflow_id(&args)?)
                .await
                .map_err(tool_error)?;
            Ok(ok(serde_json::to_value(view).unwrap_or_default()))
        }
        "workflow_list" => {
            let status = args
                .get("status")
                .and_then(Value::as_str)
                .map(str::parse::<baton_store::WorkflowStatus>)
                .transpose()?;
            let limit = args
                .get("limit")
                .and_then(Value::as_u64)
                .unwrap_or(20)
                .clamp(1, 100) as u32;
            let found = engine
                .list_workflows(
                    p,
                    baton_store::WorkflowQuery {
                        status,
                        limit,
                        ..Default::default()
                    },
                )
                .await
                .map_err(tool_error)?;
            let workflows: Vec<_> = found.into_iter().map(|(_, v)| v).collect();
            Ok(ok(json!({"workflows": workflows})))
        }
        "workflow_dag" => {
            let id = arg_workflow_id(&args)?;
            let name = args.get("format").and_then(Value::as_str).unwrap_or("json");
            let format: baton_engine::workflow::DagFormat =
                name.parse::<baton_engine::workflow::DagFormat>()?;
            let dag = match engine
                .workflow_dag(p, &id, format)
                .await
                .map_err(tool_error)?
            {
                baton_engine::workflow::DagOutput::Json(v) => v,
                baton_engine::workflow::DagOutput::Text(t) => Value::String(t),
            };
            Ok(ok(json!({"workflow_id": id, "format": name, "dag": dag})))
        }
        other => Err(Failure::Rpc(RpcError::invalid_params(format!(
            "unknown tool `{other}`"
        )))),
    }
}
