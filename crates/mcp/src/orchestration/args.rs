//! The arguments of the orchestration tools, typed: their input schemas are generated
//! from these, and the same names mean the same things as in the REST API.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// A task named by its id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIdArgs {
    /// The task id returned by task_submit (or named in a tool call's progress).
    pub task_id: String,
}

/// A task's outcome, waiting for it first if asked.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskResultArgs {
    /// The task id returned by task_submit (or named in a tool call's progress).
    pub task_id: String,
    /// How long to wait for the task to finish, in seconds (default 0, at most 300).
    #[serde(default)]
    #[schemars(range(max = 300))]
    pub wait_seconds: Option<u64>,
}

/// Which tasks to list.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskListArgs {
    /// Only tasks in this status: pending, running, input_required, completed, failed
    /// or cancelled.
    #[serde(default)]
    pub status: Option<String>,
    /// Only calls of this tool (qualified name).
    #[serde(default)]
    pub tool: Option<String>,
    /// Only tasks of this queue.
    #[serde(default)]
    pub queue: Option<String>,
    /// Only the steps of this workflow.
    #[serde(default)]
    pub workflow_id: Option<String>,
    /// Only the tasks created while this one ran.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Tasks per page (default 50, at most 1000).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
    /// The next_cursor of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Servers to list.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerListArgs {
    /// Only servers with this tag (capability).
    #[serde(default)]
    pub tag: Option<String>,
}

/// A workflow to run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSubmitArgs {
    /// The workflow: {name, on_failure: fail_fast|continue, steps: [{id, tool,
    /// arguments, depends_on, retry: {max_attempts}, timeout_ms, priority, queue}]}, as
    /// an object or as YAML/JSON text.
    #[schemars(with = "DefinitionArg")]
    pub definition: Value,
    /// Submitting again with the same key answers with the workflow the first
    /// submission made (`created: false`) instead of starting another: use one per
    /// piece of work, e.g. derived from the task you are running.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// An object or YAML/JSON text.
#[derive(JsonSchema)]
#[serde(untagged)]
#[expect(dead_code, reason = "only its schema is used")]
enum DefinitionArg {
    Object(serde_json::Map<String, Value>),
    Text(String),
}

/// A workflow named by its id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowIdArgs {
    /// The workflow id returned by workflow_submit.
    pub workflow_id: String,
}

/// A workflow's outcome, waiting for it first if asked.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowResultArgs {
    /// The workflow id returned by workflow_submit.
    pub workflow_id: String,
    /// How long to wait for the workflow to finish, in seconds (default 0, at most 300).
    #[serde(default)]
    #[schemars(range(max = 300))]
    pub wait_seconds: Option<u64>,
}

/// Which workflows to list.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowListArgs {
    /// Only workflows in this status: running, completed, failed or cancelled.
    #[serde(default)]
    pub status: Option<String>,
    /// Workflows per page (default 50, at most 1000).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
    /// The next_cursor of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A workflow's graph, in a format.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDagArgs {
    /// The workflow id returned by workflow_submit.
    pub workflow_id: String,
    /// `json` (default), `dot` (Graphviz) or `mermaid`.
    #[serde(default)]
    #[schemars(with = "Option<DagFormatArg>")]
    pub format: Option<String>,
}

/// How a DAG is rendered.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[expect(dead_code, reason = "only its schema is used")]
enum DagFormatArg {
    Json,
    Dot,
    Mermaid,
}

/// A pending task's new priority and/or due time.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPriorityArgs {
    /// The task id.
    pub task_id: String,
    /// The new priority: low, normal, high, or 0 to 100 (higher runs first).
    #[serde(default)]
    pub priority: Option<baton_core::submit::Priority>,
    /// When it is due: RFC 3339 (a past time means now).
    #[serde(default)]
    pub run_at: Option<String>,
    /// Or: due this many milliseconds from now.
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

/// A schedule named by its name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleNameArgs {
    /// The schedule's name.
    pub name: String,
}

/// The runs of a schedule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRunsArgs {
    /// The schedule's name.
    pub name: String,
    /// Runs to show, newest first (default 50, at most 1000).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
}

/// A change to a schedule; what is absent stays.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleUpdateArgs {
    /// The schedule's name.
    pub name: String,
    /// A new cron (five fields, or six with seconds first).
    #[serde(default)]
    pub cron: Option<String>,
    /// A new IANA time zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// A new task (the body of task_submit).
    #[serde(default)]
    pub task: Option<baton_core::submit::SubmitRequest>,
    /// A new workflow definition (instead of a task).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub workflow: Option<serde_json::Value>,
    #[serde(default)]
    pub overlap: Option<baton_engine::schedules::Overlap>,
    #[serde(default)]
    pub catch_up: Option<baton_engine::schedules::CatchUp>,
    #[serde(default)]
    pub paused: Option<bool>,
}

/// A webhook named by its id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIdArgs {
    /// The webhook's id (`wh_…`).
    pub id: String,
}

/// A new secret for a webhook.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRotateArgs {
    /// The webhook's id (`wh_…`).
    pub id: String,
    /// The new secret (`whsec_` and base64 of 24 to 64 bytes); generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// How long the current secret keeps signing too, in seconds (default a day).
    #[serde(default)]
    pub overlap_seconds: Option<u64>,
}

/// A page of a webhook's deliveries.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeliveriesArgs {
    /// The webhook's id (`wh_…`).
    pub id: String,
    /// Deliveries per page, newest first (default 50, at most 1000).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A delivery to send again.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRedeliverArgs {
    /// The webhook's id (`wh_…`).
    pub id: String,
    /// The delivery's id (`msg_…`), as webhook_deliveries lists it.
    pub delivery_id: String,
}

/// A peer (node or worker) named by its id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerIdArgs {
    /// The peer's id, as worker_status lists it.
    pub id: String,
}

/// A queue named by its name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueArgs {
    /// The queue's name (`default` unless tasks named another).
    pub name: String,
}

/// What `queue_clear` cancels.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueClearArgs {
    /// The queue's name.
    pub name: String,
    /// Which of its tasks: any of pending (the default), running, input_required.
    #[serde(default)]
    pub status: Vec<String>,
    /// Must be true: clearing cancels tasks.
    #[serde(default)]
    pub confirm: bool,
}
