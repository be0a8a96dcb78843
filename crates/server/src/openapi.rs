//! The OpenAPI 3.1 document of the REST API, served at `GET /openapi.json`.
//!
//! Every schema in it is generated (schemars) from the types the handlers take and
//! answer with, the same types the MCP tools' schemas come from; this file only lists the
//! operations: method, path, parameters, body and answers. A snapshot test keeps the
//! document honest, and CI checks it with an external OpenAPI validator.

use std::sync::OnceLock;

use baton_core::submit::SubmitRequest;
use baton_engine::views::{QueuesView, ResultView, TaskView};
use baton_engine::workflow::WorkflowResult;
use baton_upstream::{ServerConfig, ServerStatus};
use baton_workflow::Definition;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::rest::views::*;
use crate::rest::{keys, servers, sse, tasks, workflows};

/// The error body of every 4xx and 5xx answer.
#[derive(Serialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// `invalid_argument`, `not_found`, `conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `resource_exhausted`, `unavailable`, `permission_denied`
    /// or `internal`.
    pub code: String,
    /// The problem, named (the field, the bad value, the limit).
    pub message: String,
    /// Structured detail, e.g. every problem of a workflow definition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// An input answer: `responses` keyed like the task's `input_requests`.
#[derive(Serialize, JsonSchema)]
pub struct InputAnswer {
    pub responses: Map<String, Value>,
}

/// A batch of submissions, all or nothing.
#[derive(Serialize, JsonSchema)]
pub struct Batch {
    pub tasks: Vec<SubmitRequest>,
}

/// The document (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

struct Doc {
    generator: SchemaGenerator,
    paths: Map<String, Value>,
}

impl Doc {
    fn schema<T: JsonSchema>(&mut self) -> Value {
        let mut v = self.generator.subschema_for::<T>().to_value();
        baton_mcp::orchestration::no_boolean_schemas(&mut v);
        v
    }

    /// Query parameters from the fields of a typed query-string struct.
    fn query<T: JsonSchema>(&mut self) -> Vec<Value> {
        let inline = SchemaSettings::draft2020_12()
            .with(|s| s.inline_subschemas = true)
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value();
        let required: Vec<&str> = inline["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut params = Vec::new();
        if let Some(props) = inline["properties"].as_object() {
            for (name, schema) in props {
                let mut schema = schema.clone();
                let description = schema.as_object_mut().and_then(|o| o.remove("description"));
                baton_mcp::orchestration::no_boolean_schemas(&mut schema);
                let mut p = json!({
                    "name": name,
                    "in": "query",
                    "required": required.contains(&name.as_str()),
                    "schema": schema,
                });
                if let Some(d) = description {
                    p["description"] = d;
                }
                params.push(p);
            }
        }
        params
    }

    fn op(&mut self, method: &str, path: &str, op: Value) {
        let item = self
            .paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}));
        item[method] = op;
    }
}

/// `/v1/schedules`.
fn schedule_ops(d: &mut Doc, error: &Value) {
    use baton_engine::schedules::{
        ScheduleList, ScheduleRequest, ScheduleRuns, ScheduleUpdate, ScheduleView,
    };
    let name = path_param("name", "A schedule's name.");
    let view = d.schema::<ScheduleView>();
    let create = d.schema::<ScheduleRequest>();
    let op = Op::new("createSchedule", "schedules", "Submit a task on a cron")
        .body(body(create))
        .answer(201, answer("Created.", view.clone()))
        .build(error);
    d.op("post", "/v1/schedules", op);
    let list = d.schema::<ScheduleList>();
    let op = Op::new("listSchedules", "schedules", "The caller's schedules")
        .answer(200, answer("The schedules, by name.", list))
        .build(error);
    d.op("get", "/v1/schedules", op);
    let op = Op::new(
        "getSchedule",
        "schedules",
        "A schedule and its next fire times",
    )
    .param(name.clone())
    .answer(200, answer("The schedule.", view.clone()))
    .build(error);
    d.op("get", "/v1/schedules/{name}", op);
    let update = d.schema::<ScheduleUpdate>();
    let op = Op::new("updateSchedule", "schedules", "Change a schedule")
        .param(name.clone())
        .body(body(update))
        .answer(200, answer("Changed.", view.clone()))
        .build(error);
    d.op("patch", "/v1/schedules/{name}", op);
    let op = Op::new(
        "deleteSchedule",
        "schedules",
        "Delete a schedule (its tasks stay)",
    )
    .param(name.clone())
    .answer(204, json!({"description": "Deleted."}))
    .build(error);
    d.op("delete", "/v1/schedules/{name}", op);
    for (path, id, summary) in [
        (
            "/v1/schedules/{name}/pause",
            "pauseSchedule",
            "Stop firing a schedule",
        ),
        (
            "/v1/schedules/{name}/resume",
            "resumeSchedule",
            "Fire a schedule again, from its next tick",
        ),
    ] {
        let op = Op::new(id, "schedules", summary)
            .param(name.clone())
            .answer(200, answer("The schedule.", view.clone()))
            .build(error);
        d.op("post", path, op);
    }
    let q = d.query::<super::rest::schedules::RunParams>();
    let runs = d.schema::<ScheduleRuns>();
    let op = Op::new(
        "scheduleRuns",
        "schedules",
        "The ticks a schedule fired and the tasks they made",
    )
    .param(name)
    .params(q)
    .answer(200, answer("Newest first.", runs))
    .build(error);
    d.op("get", "/v1/schedules/{name}/runs", op);
}

/// `/v1/webhooks`.
fn webhook_ops(d: &mut Doc, error: &Value) {
    use baton_engine::webhooks::{
        DeliveryPage, DeliveryView, RotateRequest, WebhookCreated, WebhookList, WebhookRequest,
        WebhookRotated, WebhookView,
    };
    let id = path_param("id", "A webhook's id (`wh_…`).");
    let create = d.schema::<WebhookRequest>();
    let created = d.schema::<WebhookCreated>();
    let op = Op::new(
        "createWebhook",
        "webhooks",
        "Send the caller's task, workflow or server events to a URL",
    )
    .body(body(create))
    .answer(
        201,
        answer(
            "Created; the answer holds the secret, shown this once.",
            created,
        ),
    )
    .build(error);
    d.op("post", "/v1/webhooks", op);
    let list = d.schema::<WebhookList>();
    let op = Op::new("listWebhooks", "webhooks", "The caller's webhooks")
        .answer(200, answer("The webhooks, oldest first.", list))
        .build(error);
    d.op("get", "/v1/webhooks", op);
    let view = d.schema::<WebhookView>();
    let op = Op::new("getWebhook", "webhooks", "A webhook (never its secret)")
        .param(id.clone())
        .answer(200, answer("The webhook.", view))
        .build(error);
    d.op("get", "/v1/webhooks/{id}", op);
    let op = Op::new(
        "deleteWebhook",
        "webhooks",
        "Delete a webhook and its deliveries",
    )
    .param(id.clone())
    .answer(204, json!({"description": "Deleted."}))
    .build(error);
    d.op("delete", "/v1/webhooks/{id}", op);
    let rotate = d.schema::<RotateRequest>();
    let rotated = d.schema::<WebhookRotated>();
    let mut optional = body(rotate);
    optional["required"] = json!(false);
    let op = Op::new(
        "rotateWebhookSecret",
        "webhooks",
        "A new signing secret; the old one keeps signing for the overlap",
    )
    .param(id.clone())
    .body(optional)
    .answer(200, answer("The new secret, shown this once.", rotated))
    .build(error);
    d.op("post", "/v1/webhooks/{id}/rotate", op);
    let q = d.query::<super::rest::webhooks::DeliveryParams>();
    let page = d.schema::<DeliveryPage>();
    let op = Op::new(
        "webhookDeliveries",
        "webhooks",
        "A webhook's deliveries and their attempts",
    )
    .param(id.clone())
    .params(q)
    .answer(200, answer("Newest first.", page))
    .build(error);
    d.op("get", "/v1/webhooks/{id}/deliveries", op);
    let delivery = d.schema::<DeliveryView>();
    let op = Op::new(
        "redeliverWebhook",
        "webhooks",
        "Send a delivery again now, with the same webhook-id",
    )
    .param(id)
    .param(path_param("delivery_id", "A delivery's id (`msg_…`)."))
    .answer(202, answer("Due now.", delivery))
    .build(error);
    d.op(
        "post",
        "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
        op,
    );
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}, "description": description})
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn answer(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

struct Op {
    summary: &'static str,
    tag: &'static str,
    id: &'static str,
    params: Vec<Value>,
    body: Option<Value>,
    answers: Vec<(u16, Value)>,
}

impl Op {
    fn new(id: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op {
            summary,
            tag,
            id,
            params: Vec::new(),
            body: None,
            answers: Vec::new(),
        }
    }

    fn param(mut self, p: Value) -> Op {
        self.params.push(p);
        self
    }

    fn params(mut self, p: Vec<Value>) -> Op {
        self.params.extend(p);
        self
    }

    fn body(mut self, b: Value) -> Op {
        self.body = Some(b);
        self
    }

    fn answer(mut self, status: u16, a: Value) -> Op {
        self.answers.push((status, a));
        self
    }

    fn build(self, error: &Value) -> Value {
        let mut responses = Map::new();
        for (status, a) in self.answers {
            responses.insert(status.to_string(), a);
        }
        responses.insert(
            "default".into(),
            answer(
                "An error: the code and a message naming the problem.",
                error.clone(),
            ),
        );
        let mut op = json!({
            "operationId": self.id,
            "summary": self.summary,
            "tags": [self.tag],
            "responses": responses,
        });
        if !self.params.is_empty() {
            op["parameters"] = Value::Array(self.params);
        }
        if let Some(b) = self.body {
            op["requestBody"] = b;
        }
        op
    }
}

fn build() -> Value {
    let mut d = Doc {
        generator: SchemaSettings::draft2020_12()
            .with(|s| {
                s.definitions_path = "#/components/schemas/".into();
                s.meta_schema = None;
            })
            .into_generator(),
        paths: Map::new(),
    };
    let error = d.schema::<ErrorBody>();
    let task_id = path_param("id", "A task id.");
    let workflow_id = path_param("id", "A workflow id.");

    // Tasks.
    let submit = d.schema::<SubmitRequest>();
    let accepted = d.schema::<Accepted>();
    let result = d.schema::<ResultView>();
    let q = d.query::<tasks::SubmitParams>();
    let op = Op::new("submitTask", "tasks", "Submit a tool call as a task")
        .params(q)
        .param(json!({"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string"}, "description": "Same as idempotency_key in the body."}))
        .body(body(submit))
        .answer(202, answer("Stored (committed) and queued.", accepted))
        .answer(200, answer("With ?wait=S: it finished within S seconds.", result.clone()))
        .build(&error);
    d.op("post", "/v1/tasks", op);
    let q = d.query::<tasks::ListParams>();
    let list = d.schema::<TaskList>();
    let op = Op::new("listTasks", "tasks", "The caller's tasks, newest first")
        .params(q)
        .answer(200, answer("A page of tasks.", list))
        .build(&error);
    d.op("get", "/v1/tasks", op);
    let batch = d.schema::<Batch>();
    let batch_accepted = d.schema::<BatchAccepted>();
    let op = Op::new(
        "submitTasks",
        "tasks",
        "Submit tasks, all or nothing, in one transaction",
    )
    .body(body(batch))
    .answer(202, answer("Every task stored.", batch_accepted))
    .build(&error);
    d.op("post", "/v1/tasks/batch", op);
    let task = d.schema::<Linked<TaskView>>();
    let op = Op::new(
        "getTask",
        "tasks",
        "A task, with its result when it completed",
    )
    .param(task_id.clone())
    .answer(200, answer("The task.", task.clone()))
    .build(&error);
    d.op("get", "/v1/tasks/{id}", op);
    let cancel = d.schema::<CancelAnswer>();
    let op = Op::new(
        "cancelTask",
        "tasks",
        "Cancel a task and the tasks it created",
    )
    .param(task_id.clone())
    .answer(
        202,
        answer("Cancelled, or its tool is being stopped.", cancel),
    )
    .build(&error);
    d.op("delete", "/v1/tasks/{id}", op);
    let q = d.query::<tasks::ResultParams>();
    let op = Op::new(
        "getTaskResult",
        "tasks",
        "A task's outcome, waiting for it if asked",
    )
    .param(task_id.clone())
    .params(q)
    .answer(200, answer("It finished.", result.clone()))
    .answer(202, answer("It has not finished yet.", result))
    .build(&error);
    d.op("get", "/v1/tasks/{id}/result", op);
    let update = d.schema::<baton_core::submit::TaskUpdate>();
    let op = Op::new(
        "updateTask",
        "tasks",
        "Change a pending task's priority or when it is due",
    )
    .param(task_id.clone())
    .body(body(update))
    .answer(200, answer("Changed.", task.clone()))
    .build(&error);
    d.op("patch", "/v1/tasks/{id}", op);
    let op = Op::new("retryTask", "tasks", "Run a failed or cancelled task again")
        .param(task_id.clone())
        .answer(202, answer("Queued again.", task.clone()))
        .build(&error);
    d.op("post", "/v1/tasks/{id}/retry", op);
    let input = d.schema::<InputAnswer>();
    let op = Op::new("answerTaskInput", "tasks", "Answer a task's input requests")
        .param(task_id.clone())
        .body(body(input))
        .answer(202, answer("Stored; the task runs on.", task))
        .build(&error);
    d.op("post", "/v1/tasks/{id}/input", op);
    let q = d.query::<tasks::LogParams>();
    let logs = d.schema::<baton_engine::views::LogPage>();
    let op = Op::new(
        "taskLogs",
        "tasks",
        "What a task's tool logged, oldest first (the newest lines are kept)",
    )
    .param(task_id.clone())
    .params(q)
    .answer(200, answer("A page of lines.", logs))
    .build(&error);
    d.op("get", "/v1/tasks/{id}/logs", op);
    let q = d.query::<sse::EventParams>();
    let op = Op::new("taskEvents", "tasks", "A task's events (and its log lines, as `log` events) as Server-Sent Events")
        .param(task_id)
        .params(q)
        .answer(200, json!({"description": "Every state change and progress report, resumable with Last-Event-ID; the stream ends at the final state.", "content": {"text/event-stream": {"schema": {"type": "string"}}}}))
        .build(&error);
    d.op("get", "/v1/tasks/{id}/events", op);

    // Workflows.
    let definition = d.schema::<Definition>();
    let linked = d.schema::<LinkedWorkflow>();
    let q = d.query::<super::rest::workflows::SubmitParams>();
    let op = Op::new(
        "submitWorkflow",
        "workflows",
        "Submit a workflow (JSON or YAML)",
    )
    .params(q)
    .body(json!({"required": true, "content": {
        "application/json": {"schema": definition},
        "application/yaml": {"schema": {"type": "string"}}
    }}))
    .answer(
        202,
        answer("Stored; its first steps are queued.", linked.clone()),
    )
    .answer(
        200,
        answer(
            "The idempotency key had made this workflow before: nothing new was stored.",
            linked.clone(),
        ),
    )
    .build(&error);
    d.op("post", "/v1/workflows", op);
    let q = d.query::<workflows::ListParams>();
    let list = d.schema::<WorkflowList>();
    let op = Op::new(
        "listWorkflows",
        "workflows",
        "The caller's workflows, newest first",
    )
    .params(q)
    .answer(
        200,
        answer("A page of workflows (without their steps).", list),
    )
    .build(&error);
    d.op("get", "/v1/workflows", op);
    let op = Op::new(
        "getWorkflow",
        "workflows",
        "A workflow and each of its steps",
    )
    .param(workflow_id.clone())
    .answer(200, answer("The workflow.", linked.clone()))
    .build(&error);
    d.op("get", "/v1/workflows/{id}", op);
    let op = Op::new("cancelWorkflow", "workflows", "Cancel a workflow")
        .param(workflow_id.clone())
        .answer(200, answer("Cancelled.", linked.clone()))
        .build(&error);
    d.op("delete", "/v1/workflows/{id}", op);
    let op = Op::new(
        "retryWorkflow",
        "workflows",
        "Run a failed or cancelled workflow again from where it stopped",
    )
    .param(workflow_id.clone())
    .answer(202, answer("Running again.", linked))
    .build(&error);
    d.op("post", "/v1/workflows/{id}/retry", op);
    let q = d.query::<workflows::ResultParams>();
    let outcome = d.schema::<WorkflowResult>();
    let op = Op::new(
        "getWorkflowResult",
        "workflows",
        "The results of a workflow's final steps",
    )
    .param(workflow_id.clone())
    .params(q)
    .answer(200, answer("It finished.", outcome.clone()))
    .answer(202, answer("It is still running.", outcome))
    .build(&error);
    d.op("get", "/v1/workflows/{id}/result", op);
    let q = d.query::<workflows::DagParams>();
    let op = Op::new(
        "getWorkflowDag",
        "workflows",
        "The workflow's graph with the critical path",
    )
    .param(workflow_id.clone())
    .params(q)
    .answer(
        200,
        json!({"description": "JSON, or DOT / Mermaid text.", "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/vnd.graphviz": {"schema": {"type": "string"}},
            "text/vnd.mermaid": {"schema": {"type": "string"}}
        }}),
    )
    .build(&error);
    d.op("get", "/v1/workflows/{id}/dag", op);
    let timeline = d.schema::<Timeline>();
    let op = Op::new(
        "getWorkflowTimeline",
        "workflows",
        "Every step's task events, in order",
    )
    .param(workflow_id)
    .answer(200, answer("The events.", timeline))
    .build(&error);
    d.op("get", "/v1/workflows/{id}/timeline", op);

    // Queues, peers, tools, servers.
    let queues_view = d.schema::<QueuesView>();
    let op = Op::new(
        "listQueues",
        "queues",
        "Depth per status and throughput of every queue",
    )
    .answer(200, answer("The queues.", queues_view))
    .build(&error);
    d.op("get", "/v1/queues", op);
    let queue = path_param("name", "A queue name.");
    let state = d.schema::<QueueState>();
    for (path, id, summary) in [
        (
            "/v1/queues/{name}/pause",
            "pauseQueue",
            "Stop claiming the queue's tasks",
        ),
        (
            "/v1/queues/{name}/resume",
            "resumeQueue",
            "Claim the queue's tasks again",
        ),
    ] {
        let op = Op::new(id, "queues", summary)
            .param(queue.clone())
            .answer(200, answer("Done.", state.clone()))
            .build(&error);
        d.op("post", path, op);
    }
    let clear = d.schema::<ClearQueue>();
    let cleared = d.schema::<QueueCleared>();
    let op = Op::new(
        "clearQueue",
        "queues",
        "Cancel the queue's open tasks (pending by default); needs confirm: true",
    )
    .param(queue.clone())
    .body(body(clear))
    .answer(200, answer("How many were cancelled.", cleared))
    .build(&error);
    d.op("post", "/v1/queues/{name}/clear", op);
    let q = d.query::<baton_engine::cache::InvalidateCache>();
    let dropped = d.schema::<baton_engine::cache::CacheInvalidated>();
    let op = Op::new(
        "invalidateCache",
        "queues",
        "Drop the result cache's entries of a tool, or of every tool",
    )
    .params(q)
    .answer(200, answer("How many fresh entries were dropped.", dropped))
    .build(&error);
    d.op("delete", "/v1/cache", op);
    let stats = d.schema::<Stats>();
    let op = Op::new("getStats", "queues", "Cheap node counters")
        .answer(200, answer("The counters.", stats))
        .build(&error);
    d.op("get", "/v1/stats", op);
    let q = d.query::<baton_engine::analytics::AnalyticsParams>();
    let view = d.schema::<baton_engine::analytics::AnalyticsView>();
    let op = Op::new(
        "getAnalytics",
        "queues",
        "Counts, success rate, retries, wait and run percentiles, cost and a series, per tool, server, queue, principal or workflow",
    )
    .params(q)
    .answer(200, answer("The window's figures.", view))
    .build(&error);
    d.op("get", "/v1/analytics", op);
    let peers = d.schema::<Peers>();
    let op = Op::new(
        "listPeers",
        "cluster",
        "The processes sharing the store, with their health",
    )
    .answer(200, answer("The peers.", peers))
    .build(&error);
    d.op("get", "/v1/peers", op);
    let peer = d.schema::<baton_engine::views::PeerView>();
    let op = Op::new(
        "drainPeer",
        "cluster",
        "Stop a node or worker claiming tasks (it finishes what it runs)",
    )
    .param(path_param("id", "A peer's id, as listPeers shows it."))
    .answer(200, answer("The peer, draining.", peer))
    .build(&error);
    d.op("post", "/v1/peers/{id}/drain", op);
    let tools = d.schema::<ToolList>();
    let q = d.query::<tasks::ToolParams>();
    let op = Op::new(
        "listTools",
        "servers",
        "Every tool, as server__tool, with its input schema; with ?q= the best matches first",
    )
    .params(q)
    .answer(
        200,
        answer("The catalog, or the tools matching q, best first.", tools),
    )
    .build(&error);
    d.op("get", "/v1/tools", op);
    schedule_ops(&mut d, &error);
    webhook_ops(&mut d, &error);
    let q = d.query::<servers::ListParams>();
    let list = d.schema::<ServerList>();
    let op = Op::new(
        "listServers",
        "servers",
        "The MCP servers, with health and load",
    )
    .params(q)
    .answer(200, answer("The servers and groups.", list))
    .build(&error);
    d.op("get", "/v1/servers", op);
    let config = d.schema::<ServerConfig>();
    let status = d.schema::<ServerStatus>();
    let op = Op::new(
        "addServer",
        "servers",
        "Register an MCP server (stored; on every node)",
    )
    .body(body(config))
    .answer(201, answer("It answered and is stored.", status.clone()))
    .build(&error);
    d.op("post", "/v1/servers", op);
    let name = path_param("name", "A server name.");
    let op = Op::new("getServer", "servers", "One MCP server")
        .param(name.clone())
        .answer(200, answer("The server.", status))
        .build(&error);
    d.op("get", "/v1/servers/{name}", op);
    let removed = d.schema::<Removed>();
    let op = Op::new(
        "removeServer",
        "servers",
        "Stop and forget a server registered at runtime",
    )
    .param(name)
    .answer(200, answer("Removed.", removed))
    .build(&error);
    d.op("delete", "/v1/servers/{name}", op);

    // Keys and the audit log.
    let create = d.schema::<keys::CreateKey>();
    let created = d.schema::<baton_engine::keys::CreatedKey>();
    let op = Op::new(
        "createKey",
        "keys",
        "Make an API key; its secret is in this answer only",
    )
    .body(body(create))
    .answer(
        201,
        answer(
            "Made. Keep the secret: it is not shown again.",
            created.clone(),
        ),
    )
    .build(&error);
    d.op("post", "/v1/keys", op);
    let list = d.schema::<keys::KeyList>();
    let op = Op::new("listKeys", "keys", "API keys (never their secrets)")
        .answer(200, answer("The keys the caller may see.", list))
        .build(&error);
    d.op("get", "/v1/keys", op);
    let key_id = path_param("key_id", "A key id (the 16 hex digits after `bk_`).");
    let view = d.schema::<baton_engine::keys::KeyView>();
    let op = Op::new(
        "revokeKey",
        "keys",
        "Revoke a key (refused by every node within about a second)",
    )
    .param(key_id.clone())
    .answer(200, answer("Revoked.", view))
    .build(&error);
    d.op("delete", "/v1/keys/{key_id}", op);
    let rotate = d.schema::<keys::RotateKey>();
    let op = Op::new(
        "rotateKey",
        "keys",
        "A new secret; the old one works for the grace period",
    )
    .param(key_id)
    .body(json!({"required": false, "content": {"application/json": {"schema": rotate}}}))
    .answer(200, answer("The new secret, shown once.", created))
    .build(&error);
    d.op("post", "/v1/keys/{key_id}/rotate", op);
    let q = d.query::<keys::AuditParams>();
    let page = d.schema::<baton_engine::audit::AuditPage>();
    let op = Op::new(
        "listAudit",
        "audit",
        "The audit log, newest first: every state-changing or refused request",
    )
    .params(q)
    .answer(200, answer("A page of entries.", page))
    .build(&error);
    d.op("get", "/v1/audit", op);

    // The node.
    let health = d.schema::<Health>();
    let op = Op::new("healthz", "node", "Liveness: the process answers")
        .answer(200, answer("Alive.", health.clone()))
        .build(&error);
    d.op("get", "/healthz", op);
    let op = Op::new(
        "readyz",
        "node",
        "Readiness: the store answers and the node is not draining",
    )
    .answer(200, answer("Ready.", health))
    .build(&error);
    d.op("get", "/readyz", op);
    let op = Op::new("openapi", "node", "This document")
        .answer(200, answer("OpenAPI 3.1.", json!({"type": "object"})))
        .build(&error);
    d.op("get", "/openapi.json", op);
    let op = Op::new(
        "metrics",
        "node",
        "The node's metrics in the Prometheus text format (needs `metrics:read`)",
    )
    .answer(
        200,
        json!({"description": "Prometheus text exposition 0.0.4.", "content": {
            "text/plain": {"schema": {"type": "string"}}
        }}),
    )
    .build(&error);
    d.op("get", "/metrics", op);
    let op = Op::new(
        "mcp",
        "mcp",
        "MCP over Streamable HTTP (JSON-RPC; see the README)",
    )
    .body(body(
        json!({"type": "object", "description": "A JSON-RPC message."}),
    ))
    .answer(
        200,
        json!({"description": "A JSON-RPC answer, as JSON or as an SSE stream.", "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/event-stream": {"schema": {"type": "string"}}
        }}),
    )
    .answer(
        202,
        json!({"description": "A notification or response was accepted."}),
    )
    .build(&error);
    d.op("post", "/mcp", op);
    let op = Op::new(
        "protectedResourceMetadata",
        "mcp",
        "OAuth 2.0 Protected Resource Metadata of /mcp (RFC 9728)",
    )
    .answer(
        200,
        answer(
            "Where MCP clients get tokens for this node.",
            json!({"type": "object"}),
        ),
    )
    .build(&error);
    d.op("get", "/.well-known/oauth-protected-resource/mcp", op);

    // Served without credentials.
    for (method, path) in [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/openapi.json"),
        ("get", "/.well-known/oauth-protected-resource/mcp"),
    ] {
        d.paths[path][method]["security"] = json!([]);
    }

    let mut schemas = Map::new();
    for (name, schema) in d.generator.take_definitions(true) {
        let mut schema = schema;
        baton_mcp::orchestration::no_boolean_schemas(&mut schema);
        schemas.insert(name, schema);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Baton",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Durable MCP tool calls: every tool call a task that is queued, run by workers, reported with progress, cancellable, retried and kept across restarts; workflows of them.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "tags": [
            {"name": "tasks"}, {"name": "workflows"}, {"name": "queues"}, {"name": "servers"},
            {"name": "cluster"}, {"name": "node"}, {"name": "mcp"}, {"name": "keys"},
            {"name": "audit"}, {"name": "schedules"}, {"name": "webhooks"}
        ],
        "paths": d.paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key (`bk_…`, see `baton keys create`) or, with [auth.jwt], a JWT. A node on loopback without [auth] required asks for none."
            }}
        },
        "security": [{"bearer": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document as served: every operation, every schema generated. A change to the
    /// API shows up here as a diff to review (`cargo insta review`).
    #[test]
    fn the_document_is_stable() {
        insta::assert_json_snapshot!("openapi", document());
    }

    /// An OpenAPI validator that is not ours (openapi-spec-validator, installed by
    /// `scripts/test-env`) accepts the document.
    #[test]
    fn an_external_validator_accepts_the_document() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let validator = root.join("test-support/python/.venv/bin/openapi-spec-validator");
        assert!(
            validator.exists(),
            "{} is missing: run scripts/test-env (the README's test command does)",
            validator.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("openapi.json");
        std::fs::write(&file, serde_json::to_vec_pretty(document()).unwrap()).unwrap();
        let out = std::process::Command::new(&validator)
            .arg(&file)
            .output()
            .expect("run openapi-spec-validator");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every `$ref` points at a schema the document defines.
    #[test]
    fn every_reference_resolves() {
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        out.push(r.clone());
                    }
                    o.values().for_each(|c| refs(c, out));
                }
                Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
                _ => {}
            }
        }
        let doc = document();
        let mut found = Vec::new();
        refs(doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").expect(&r);
            assert!(doc["components"]["schemas"][name].is_object(), "{r}");
        }
    }
}
