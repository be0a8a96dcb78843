//! The orchestration tools as `tools/list` shows them. Their input and output schemas
//! are generated from the typed arguments ([`super::args`]) and the engine's views, the
//! ones the REST API answers with, so the two doors cannot drift apart.

use baton_core::submit::SubmitRequest;
use baton_engine::reads::TaskPage;
use baton_engine::views::{QueueCleared, QueueState, QueuesView, ResultView, TaskView};
use baton_engine::workflow::{WorkflowPage, WorkflowResult, WorkflowView};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use super::args::*;

/// A JSON Schema for MCP: self-contained (no `$ref`), with an object at the root.
pub fn schema<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut v = generator.into_root_schema_for::<T>().to_value();
    if let Some(o) = v.as_object_mut() {
        o.remove("title");
    }
    no_boolean_schemas(&mut v);
    standard_formats_only(&mut v);
    v
}

/// The `format`s JSON Schema (2020-12) defines. schemars also writes Rust's integer
/// types (`uint64`, `int32`…), which validators do not know and warn about; the
/// `minimum` it writes beside them already says what matters.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

fn standard_formats_only(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !STANDARD_FORMATS.contains(&f))
                && o.get("type").is_some()
            {
                o.remove("format");
            }
            for child in o.values_mut() {
                standard_formats_only(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(standard_formats_only),
        _ => {}
    }
}

/// `true` (any value) and `false` (none) are valid JSON Schemas, but clients' schema
/// models (the TypeScript SDK's, for one) expect objects: `{}` and `{"not": {}}` say the
/// same.
pub fn no_boolean_schemas(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (key, child) in o.iter_mut() {
                let holds_schemas = matches!(
                    key.as_str(),
                    "properties" | "patternProperties" | "$defs" | "definitions"
                );
                match child {
                    Value::Bool(b) if !holds_schemas && is_schema_keyword(key) => {
                        *child = if *b { json!({}) } else { json!({"not": {}}) };
                    }
                    Value::Array(items)
                        if matches!(key.as_str(), "anyOf" | "oneOf" | "allOf" | "prefixItems") =>
                    {
                        for s in items.iter_mut() {
                            if let Value::Bool(b) = s {
                                *s = if *b { json!({}) } else { json!({"not": {}}) };
                            } else {
                                no_boolean_schemas(s);
                            }
                        }
                    }
                    Value::Object(inner) if holds_schemas => {
                        for s in inner.values_mut() {
                            if let Value::Bool(b) = s {
                                *s = if *b { json!({}) } else { json!({"not": {}}) };
                            } else {
                                no_boolean_schemas(s);
                            }
                        }
                    }
                    _ => no_boolean_schemas(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(no_boolean_schemas),
        _ => {}
    }
}

/// Keywords whose value is a schema (so a boolean there is a boolean schema).
fn is_schema_keyword(key: &str) -> bool {
    matches!(
        key,
        "items"
            | "additionalItems"
            | "contains"
            | "propertyNames"
            | "not"
            | "if"
            | "then"
            | "else"
            | "unevaluatedItems"
            | "unevaluatedProperties"
    )
}

/// What `task_submit` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Submitted {
    pub task_id: String,
    pub status: baton_core::TaskStatus,
    pub tool: String,
    /// `false` when an idempotency key matched an existing task: nothing new was stored.
    pub created: bool,
}

/// What `task_cancel` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CancelView {
    pub task_id: String,
    pub status: baton_core::TaskStatus,
    /// What happened: cancelled at once, or the tool is being stopped.
    pub message: String,
}

/// What `schedule_delete` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    pub name: String,
    pub deleted: bool,
}

/// What `webhook_delete` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WebhookDeleted {
    pub id: String,
    pub deleted: bool,
}

/// What `server_list` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ServersView {
    pub servers: Vec<baton_upstream::ServerStatus>,
}

/// What `peer_list` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PeersView {
    pub peers: Vec<baton_engine::views::PeerView>,
}

/// What `workflow_dag` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DagView {
    pub workflow_id: String,
    /// `json`, `dot` or `mermaid`.
    pub format: String,
    /// The graph: an object (JSON), or text (DOT, Mermaid).
    pub dag: Value,
}

fn def<I: JsonSchema, O: JsonSchema>(
    name: &str,
    title: &str,
    description: &str,
    read_only: bool,
) -> Value {
    json!({
        "name": name,
        "title": title,
        "description": description,
        "inputSchema": schema::<I>(),
        "outputSchema": schema::<O>(),
        "annotations": {"readOnlyHint": read_only, "idempotentHint": read_only}
    })
}

pub fn definitions() -> Vec<Value> {
    vec![
        def::<SubmitRequest, Submitted>(
            "task_submit",
            "Submit a task",
            "Runs any tool as a durable background task and returns its id at once. Use task_status / task_result to follow it.",
            false,
        ),
        def::<TaskIdArgs, TaskView>(
            "task_status",
            "Task status",
            "Status, progress and estimated completion of a task.",
            true,
        ),
        def::<TaskResultArgs, ResultView>(
            "task_result",
            "Task result",
            "The result of a task; waits up to wait_seconds (default 0, at most 300) for it to finish.",
            true,
        ),
        def::<TaskIdArgs, CancelView>(
            "task_cancel",
            "Cancel a task",
            "Cancels a task: a pending one at once, a running one as soon as its tool stops.",
            false,
        ),
        def::<TaskIdArgs, TaskView>(
            "task_retry",
            "Retry a task",
            "Runs a failed or cancelled task again from its first attempt; answers its new status.",
            false,
        ),
        def::<TaskPriorityArgs, TaskView>(
            "task_priority",
            "Change a task's priority",
            "Gives a pending task a new priority (low, normal, high or 0-100; higher runs first) and/or a new due time (run_at or delay_ms); answers the task.",
            false,
        ),
        def::<TaskListArgs, TaskPage>(
            "task_list",
            "List tasks",
            "The caller's tasks, newest first.",
            true,
        ),
        def::<NoArgs, QueuesView>(
            "queue_stats",
            "Queue statistics",
            "Tasks per queue and status, throughput, active tasks.",
            true,
        ),
        def::<QueueArgs, QueueState>(
            "queue_pause",
            "Pause a queue",
            "Stops starting the queue's tasks (running ones finish); they wait until queue_resume.",
            false,
        ),
        def::<QueueArgs, QueueState>(
            "queue_resume",
            "Resume a queue",
            "Starts the queue's tasks again after queue_pause.",
            false,
        ),
        def::<QueueClearArgs, QueueCleared>(
            "queue_clear",
            "Clear a queue",
            "Cancels the queue's open tasks of the statuses given (pending by default; running, input_required) and the tasks they created; needs confirm: true. Answers how many were cancelled.",
            false,
        ),
        def::<baton_engine::cache::InvalidateCache, baton_engine::cache::CacheInvalidated>(
            "cache_invalidate",
            "Drop cached results",
            "The result cache's entries of a tool (tool: server__tool), or of every tool, answer no more calls: the next identical call runs the tool. Answers how many fresh entries were dropped.",
            false,
        ),
        def::<ServerListArgs, ServersView>(
            "server_list",
            "List MCP servers",
            "The MCP servers whose tools Baton runs, with health and tools; filter by tag (capability).",
            true,
        ),
        def::<baton_engine::tools::search::ToolSearch, baton_engine::tools::search::ToolSearchResult>(
            "tool_search",
            "Find a tool",
            "Ranks every tool of every server for a query (what the tool should do, in words, or part of its name) by its name, description and argument schema, best first, with each tool's input schema: search here instead of reading hundreds of tools. Call the tool it finds by its name (server__tool).",
            true,
        ),
        def::<NoArgs, PeersView>(
            "peer_list",
            "List Baton nodes and workers",
            "The processes sharing this Baton deployment's store (API nodes, workers), with role, address, load, throughput and health (healthy, late, lost, stopped).",
            true,
        ),
        def::<NoArgs, PeersView>(
            "worker_status",
            "Worker status",
            "Every node and worker sharing the store: role, running tasks, finished, throughput, health and whether it was drained. Needs the admin scope.",
            true,
        ),
        def::<PeerIdArgs, baton_engine::views::PeerView>(
            "worker_drain",
            "Drain a worker",
            "Asks a node or worker (by id) to stop claiming tasks; it finishes what it runs and notices within a heartbeat. Needs the admin scope.",
            false,
        ),
        def::<baton_engine::analytics::AnalyticsParams, baton_engine::analytics::AnalyticsView>(
            "analytics",
            "Task analytics",
            "What tasks did over a window (default the last 24 h), per tool, server, queue, principal or workflow: counts by status, success rate, retries, wait and run time p50/p95/p99, cost and tokens, and finishes over time.",
            true,
        ),
        def::<baton_engine::schedules::ScheduleRequest, baton_engine::schedules::ScheduleView>(
            "schedule_create",
            "Create a schedule",
            "Submits a task on a cron (five fields, or six with seconds first) in a time zone: each tick fires once across the cluster. overlap: allow or skip while the last run is open; catch_up: none or latest after downtime. Answers the schedule with its next fire times.",
            false,
        ),
        def::<NoArgs, baton_engine::schedules::ScheduleList>(
            "schedule_list",
            "List schedules",
            "The caller's schedules with their next fire times.",
            true,
        ),
        def::<ScheduleNameArgs, baton_engine::schedules::ScheduleView>(
            "schedule_get",
            "Schedule",
            "A schedule, its next fire times and its last run.",
            true,
        ),
        def::<ScheduleUpdateArgs, baton_engine::schedules::ScheduleView>(
            "schedule_update",
            "Change a schedule",
            "Changes a schedule's cron, time zone, task, overlap, catch_up or pause; what is absent stays.",
            false,
        ),
        def::<ScheduleNameArgs, Deleted>(
            "schedule_delete",
            "Delete a schedule",
            "Deletes a schedule; the tasks it made stay.",
            false,
        ),
        def::<ScheduleNameArgs, baton_engine::schedules::ScheduleView>(
            "schedule_pause",
            "Pause a schedule",
            "Stops a schedule firing until schedule_resume.",
            false,
        ),
        def::<ScheduleNameArgs, baton_engine::schedules::ScheduleView>(
            "schedule_resume",
            "Resume a schedule",
            "Fires a paused schedule again from its next tick (missed ticks are not fired).",
            false,
        ),
        def::<ScheduleRunsArgs, baton_engine::schedules::ScheduleRuns>(
            "schedule_runs",
            "Schedule runs",
            "The ticks a schedule fired and the tasks they made, newest first.",
            true,
        ),
        def::<baton_engine::webhooks::WebhookRequest, baton_engine::webhooks::WebhookCreated>(
            "webhook_create",
            "Create a webhook",
            "POSTs the caller's task.completed/failed/cancelled/input_required, workflow.completed/failed/cancelled and server.down/up events (wildcards task.*, workflow.*, server.*) to a URL, optionally only for a tool, queue or workflow, signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature). Retried with backoff for up to a day. Answers the webhook with its secret, shown only this once.",
            false,
        ),
        def::<NoArgs, baton_engine::webhooks::WebhookList>(
            "webhook_list",
            "List webhooks",
            "The caller's webhooks (never their secrets).",
            true,
        ),
        def::<WebhookIdArgs, baton_engine::webhooks::WebhookView>(
            "webhook_get",
            "Webhook",
            "A webhook: URL, events, filters, and until when a rotated secret still signs.",
            true,
        ),
        def::<WebhookIdArgs, WebhookDeleted>(
            "webhook_delete",
            "Delete a webhook",
            "Deletes a webhook and its delivery history.",
            false,
        ),
        def::<WebhookRotateArgs, baton_engine::webhooks::WebhookRotated>(
            "webhook_rotate",
            "Rotate a webhook's secret",
            "Gives a webhook a new signing secret (shown only this once); the old one keeps signing besides it for the overlap (default a day).",
            false,
        ),
        def::<WebhookDeliveriesArgs, baton_engine::webhooks::DeliveryPage>(
            "webhook_deliveries",
            "Webhook deliveries",
            "A webhook's deliveries, newest first: status (pending, delivered, failed), attempts with HTTP status, latency and error, and when the next attempt is due.",
            true,
        ),
        def::<WebhookRedeliverArgs, baton_engine::webhooks::DeliveryView>(
            "webhook_redeliver",
            "Redeliver a webhook event",
            "Sends a delivery again now, with the same webhook-id, whatever became of it.",
            false,
        ),
        def::<WorkflowSubmitArgs, WorkflowView>(
            "workflow_submit",
            "Submit a workflow",
            "Runs a workflow: a DAG of tool calls (steps) across servers, each step a durable task that starts when the steps it depends_on completed. Arguments may reference earlier results as \"${steps.<id>.result.structuredContent.x}\" or \"${steps.<id>.result.content[0].text}\". Give the definition as an object or as YAML/JSON text. Returns the workflow id at once.",
            false,
        ),
        def::<WorkflowIdArgs, WorkflowView>(
            "workflow_status",
            "Workflow status",
            "Status and progress of a workflow and of each of its steps.",
            true,
        ),
        def::<WorkflowResultArgs, WorkflowResult>(
            "workflow_result",
            "Workflow result",
            "The results of a workflow's final steps (those no step depends on), by step id; waits up to wait_seconds (default 0, at most 300) for the workflow to finish.",
            true,
        ),
        def::<WorkflowIdArgs, WorkflowView>(
            "workflow_cancel",
            "Cancel a workflow",
            "Cancels a running workflow: its running steps are cancelled and nothing more starts.",
            false,
        ),
        def::<WorkflowListArgs, WorkflowPage>(
            "workflow_list",
            "List workflows",
            "The caller's workflows, newest first, with status and progress.",
            true,
        ),
        def::<WorkflowDagArgs, DagView>(
            "workflow_dag",
            "Workflow DAG",
            "The workflow's graph with each step's state and the critical path: as JSON (default), Graphviz DOT or Mermaid text.",
            true,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(v: &Value, path: &str, bad: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, c) in o {
                    if matches!(k.as_str(), "properties" | "$defs")
                        && let Value::Object(props) = c
                    {
                        for (name, p) in props {
                            if p.is_boolean() {
                                bad.push(format!("{path}/{k}/{name}"));
                            }
                            walk(p, &format!("{path}/{k}/{name}"), bad);
                        }
                    } else {
                        walk(c, &format!("{path}/{k}"), bad);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, path, bad)),
            _ => {}
        }
    }

    /// Every orchestration tool has object input and output schemas, self-contained and
    /// without boolean subschemas (which clients' schema models refuse).
    #[test]
    fn schemas_are_objects_clients_accept() {
        for def in definitions() {
            for key in ["inputSchema", "outputSchema"] {
                let s = &def[key];
                assert_eq!(s["type"], "object", "{}: {key}: {s}", def["name"]);
                assert!(
                    !s.to_string().contains("\"$ref\""),
                    "{}: {key}",
                    def["name"]
                );
                let mut bad = Vec::new();
                walk(s, "", &mut bad);
                assert!(bad.is_empty(), "{}: {key}: {bad:?}", def["name"]);
            }
        }
        let submit = schema::<baton_core::submit::SubmitRequest>();
        assert_eq!(submit["required"], json!(["tool"]));
        assert_eq!(submit["additionalProperties"], false);
    }
}
