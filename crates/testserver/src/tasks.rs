//! `task_job`: the tool that runs as a SEP-2663 task
//! (`io.modelcontextprotocol/tasks`, used with protocol 2026-07-28).
//!
//! rmcp's `TaskManager` does the bookkeeping (`tasks/get`, `tasks/update`,
//! `tasks/cancel`, TTLs); this module only decides when to create a task and
//! what the background work does.

use std::time::Duration;

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        CallToolResponse, CallToolResult, ContentBlock, CreateTaskResult, ElicitRequest,
        ElicitRequestParams, ElicitationSchema, InputRequest, MetaObject, ProtocolVersion, Tool,
    },
    service::RequestContext,
    task_manager::{TaskContext, TaskExit, TaskOptions},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    server::TestServer,
    state::StateDir,
    tools::{ID_PATTERN, cancelled_error, check_duration, check_id, text_result},
};

/// Longer than the longest job (600 s), so TaskManager's TTL sweep never
/// fails a job that is still legitimately running.
const TASK_TTL_MS: u64 = 3_600_000;
/// Short, so tests that poll `tasks/get` finish quickly.
const POLL_INTERVAL_MS: u64 = 200;
/// The `inputRequests` key of the question asked when `ask` is true.
const ANSWER_KEY: &str = "answer";

pub fn tool_definition() -> Tool {
    let schema = json!({
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": ID_PATTERN,
                   "description": "Names the job in results and state files."},
            "duration_ms": {"type": "integer", "minimum": 0, "maximum": 600_000,
                            "description": "How long the work runs."},
            "ask": {"type": "boolean", "default": false,
                    "description": "Ask the client for a string `answer` first (task input_required)."}
        },
        "required": ["id", "duration_ms"],
        "additionalProperties": false
    });
    let Value::Object(schema) = schema else {
        unreachable!("schema is an object")
    };
    // rmcp 3.9's `Tool` has no `execution` field (the 2025-11-25
    // `execution.taskSupport` is dropped by its model) and the 2026-07-28
    // tasks extension has no per-tool marker at all: the server decides per
    // request. So the marker is carried in the tool's `_meta`.
    let mut meta = MetaObject::default();
    meta.0
        .insert("baton-testserver/taskSupport".into(), json!("optional"));
    Tool::new(
        "task_job",
        "Runs a job for duration_ms. With the io.modelcontextprotocol/tasks extension \
         (protocol 2026-07-28) it returns a task at once and works in the background; \
         otherwise it runs synchronously. With ask: true the task first asks for an \
         `answer` (input_required). Records task-<id>.started when the work begins.",
        schema,
    )
    .with_meta(meta)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobArgs {
    id: String,
    duration_ms: u64,
    #[serde(default)]
    ask: bool,
}

pub async fn call(
    server: &TestServer,
    args: JobArgs,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, McpError> {
    check_id("id", &args.id)?;
    check_duration(args.duration_ms)?;
    let state = server.shared().state().cloned();

    // The extension exists only from 2026-07-28 on; a 2025-11-25 client that
    // happens to list it must be ignored (ext-tasks spec), so both the
    // protocol version and the per-request capability have to agree.
    let modern = ctx
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
    let wants_task = ctx
        .client_capabilities()
        .is_some_and(|caps| caps.supports_tasks());
    if modern && wants_task {
        let options = TaskOptions::new()
            .with_ttl_ms(TASK_TTL_MS)
            .with_poll_interval_ms(POLL_INTERVAL_MS)
            .with_status_message(format!("job {} queued", args.id));
        let task = server
            .shared()
            .tasks
            .spawn(options, move |tctx| Box::pin(run_task(tctx, state, args)));
        return Ok(CallToolResponse::Task(CreateTaskResult::new(task)));
    }

    // Synchronous fallback for clients without tasks.
    if args.ask {
        return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
            "job {} needs input: call it as a task (io.modelcontextprotocol/tasks) to answer",
            args.id
        ))])
        .into());
    }
    if let Some(state) = &state {
        state.record(&format!("task-{}.started", args.id));
    }
    tokio::select! {
        () = ctx.ct.cancelled() => {
            if let Some(state) = &state {
                state.record(&format!("task-{}.cancelled", args.id));
            }
            Err(cancelled_error())
        }
        () = tokio::time::sleep(Duration::from_millis(args.duration_ms)) => {
            Ok(text_result(format!("job {} done", args.id)).into())
        }
    }
}

/// The background work of one task.
async fn run_task(
    tctx: TaskContext,
    state: Option<StateDir>,
    args: JobArgs,
) -> Result<CallToolResult, TaskExit> {
    let id = args.id;
    if let Some(state) = &state {
        state.record(&format!("task-{id}.started"));
    }
    let result = async {
        let answer = if args.ask {
            tctx.set_status_message(format!("job {id} waiting for an answer"));
            // Parks the task in input_required until tasks/update answers
            // this key; tasks/cancel makes it return TaskExit::Cancelled.
            let response = tctx.request_input(ANSWER_KEY, answer_request(&id)).await?;
            match accepted_answer(&response) {
                Some(answer) => Some(answer),
                None => {
                    return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                        "job {id} got no answer: {response}"
                    ))]));
                }
            }
        } else {
            None
        };
        tctx.set_status_message(format!("job {id} working"));
        tokio::select! {
            () = tctx.cancelled() => return Err(TaskExit::Cancelled),
            () = tokio::time::sleep(Duration::from_millis(args.duration_ms)) => {}
        }
        tctx.set_status_message(format!("job {id} finished"));
        Ok(text_result(match answer {
            Some(answer) => format!("job {id} answered: {answer}"),
            None => format!("job {id} done"),
        }))
    }
    .await;
    if matches!(result, Err(TaskExit::Cancelled))
        && let Some(state) = &state
    {
        state.record(&format!("task-{id}.cancelled"));
    }
    result
}

/// An elicitation-style input request for one string field, `answer`.
fn answer_request(id: &str) -> InputRequest {
    let schema: ElicitationSchema = ElicitationSchema::builder()
        .required_string_property(ANSWER_KEY, |s| s.description("Any text."))
        .build()
        .expect("answer is declared as a property");
    InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: format!("job {id} needs an answer"),
            requested_schema: schema,
        },
    ))
}

/// Reads `answer` out of an `ElicitResult` that the client accepted.
fn accepted_answer(response: &Value) -> Option<String> {
    if response.get("action")? != "accept" {
        return None;
    }
    let answer = response.get("content")?.get(ANSWER_KEY)?;
    Some(match answer {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}
