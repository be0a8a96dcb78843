//! Every metric a node exports, declared in one place with its help line.
//!
//! Recording goes through the `metrics` facade: without an installed recorder (a library
//! user, most tests) it costs nothing. `baton-server` installs the Prometheus recorder and
//! serves `GET /metrics`. Labels are bounded: tool, server, queue, status, route, method;
//! never a task id or an argument.

use std::collections::BTreeMap;
use std::time::Duration;

use baton_core::{Task, TaskStatus, Timestamp};
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, histogram};

pub const TASKS_SUBMITTED: &str = "baton_tasks_submitted_total";
pub const TASKS_FINISHED: &str = "baton_tasks_finished_total";
pub const TASK_RUN_SECONDS: &str = "baton_task_run_seconds";
pub const TASK_WAIT_SECONDS: &str = "baton_task_wait_seconds";
pub const QUEUE_TASKS: &str = "baton_queue_tasks";
pub const TASK_RETRIES: &str = "baton_task_retries_total";
pub const LEASE_RESCUES: &str = "baton_lease_rescues_total";
pub const UPSTREAM_REQUESTS: &str = "baton_upstream_requests_total";
pub const UPSTREAM_REQUEST_SECONDS: &str = "baton_upstream_request_seconds";
pub const UPSTREAM_CIRCUIT_OPEN: &str = "baton_upstream_circuit_open";
pub const UPSTREAM_UP: &str = "baton_upstream_up";
pub const WORKFLOWS_FINISHED: &str = "baton_workflows_finished_total";
pub const WORKFLOW_RUN_SECONDS: &str = "baton_workflow_run_seconds";
pub const HTTP_REQUESTS: &str = "baton_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "baton_http_request_seconds";
pub const STORE_COMMIT_SECONDS: &str = "baton_store_commit_seconds";
pub const STORE_BATCH_SIZE: &str = "baton_store_batch_size";
pub const TASK_COST_USD: &str = "baton_task_cost_usd_total";
pub const ACTIVE_TASKS: &str = "baton_active_tasks";
pub const RUNNING_HERE: &str = "baton_running_tasks";
pub const CACHE_LOOKUPS: &str = "baton_cache_lookups_total";
pub const CACHE_INVALIDATED: &str = "baton_cache_invalidated_total";
pub const CACHE_SAVED_USD: &str = "baton_cache_saved_usd_total";

/// The histograms measured in seconds (their buckets: [`SECONDS_BUCKETS`]).
pub const SECONDS_HISTOGRAMS: [&str; 6] = [
    TASK_RUN_SECONDS,
    TASK_WAIT_SECONDS,
    UPSTREAM_REQUEST_SECONDS,
    WORKFLOW_RUN_SECONDS,
    HTTP_REQUEST_SECONDS,
    STORE_COMMIT_SECONDS,
];

/// From half a millisecond to ten minutes.
pub const SECONDS_BUCKETS: [f64; 20] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Writes per store commit.
pub const BATCH_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Gives every metric its help line (and unit); call once, after installing a recorder.
pub fn describe() {
    describe_counter!(
        CACHE_LOOKUPS,
        "Tasks of cached tools stored by this node, by tool and outcome: `hit` (answered at once from a stored result), `coalesced` (waits for an identical call in flight) or `miss` (calls the tool)."
    );
    describe_counter!(
        CACHE_INVALIDATED,
        "Result cache entries dropped by invalidation (by hand, or a tool's changed schema)."
    );
    describe_counter!(
        TASKS_SUBMITTED,
        "Tasks stored by this node, by tool and queue (an idempotent resubmission is not counted)."
    );
    describe_counter!(
        TASKS_FINISHED,
        "Tasks that reached a final status on this node (completed, failed, cancelled), by tool and queue."
    );
    describe_histogram!(
        TASK_RUN_SECONDS,
        Unit::Seconds,
        "How long a run took, from start to end (every attempt), by tool."
    );
    describe_histogram!(
        TASK_WAIT_SECONDS,
        Unit::Seconds,
        "How long a task waited to start once it was due (submission or retry time), by queue."
    );
    describe_gauge!(
        QUEUE_TASKS,
        "Tasks in the store by queue and status, all principals and nodes (read when scraped)."
    );
    describe_counter!(
        TASK_RETRIES,
        "Runs that failed and were scheduled to run again, by tool."
    );
    describe_counter!(
        LEASE_RESCUES,
        "Tasks whose worker stopped heartbeating and that were handed back to the queue."
    );
    describe_counter!(
        UPSTREAM_REQUESTS,
        "Tool calls sent to MCP servers, by server and outcome (ok, tool_error, error, unavailable, timeout, cancelled)."
    );
    describe_histogram!(
        UPSTREAM_REQUEST_SECONDS,
        Unit::Seconds,
        "How long an MCP server took to answer a tool call, by server."
    );
    describe_gauge!(
        UPSTREAM_CIRCUIT_OPEN,
        "1 while a server's circuit breaker holds its calls back, else 0."
    );
    describe_gauge!(
        UPSTREAM_UP,
        "1 while a server is connected and healthy, else 0."
    );
    describe_counter!(
        WORKFLOWS_FINISHED,
        "Workflows that reached a final status, by status."
    );
    describe_histogram!(
        WORKFLOW_RUN_SECONDS,
        Unit::Seconds,
        "How long a workflow took, from submission to its final status."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status code."
    );
    describe_histogram!(
        HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "How long the node took to answer an HTTP request (to the response head), by route template."
    );
    describe_histogram!(
        STORE_COMMIT_SECONDS,
        Unit::Seconds,
        "How long a group commit of task writes (submissions, outcomes) took in the store."
    );
    describe_histogram!(
        STORE_BATCH_SIZE,
        "How many writes one group commit carried."
    );
    // TASK_COST_USD: see [`render_costs`] (its help line is `COST_HELP`).
    describe_gauge!(
        ACTIVE_TASKS,
        "Tasks pending, running or waiting for input, as the admission cap counts them."
    );
    describe_gauge!(RUNNING_HERE, "Tasks running on this node now.");
    // Unlabelled counters start at zero, so that a rate over them is defined at once.
    counter!(LEASE_RESCUES).absolute(0);
}

fn secs(from: Timestamp, to: Timestamp) -> f64 {
    Duration::from_millis(to.millis_since(from)).as_secs_f64()
}

/// A task stored (not an idempotent repeat).
pub(crate) fn submitted(tool: &str, queue: &str) {
    counter!(TASKS_SUBMITTED, "tool" => tool.to_string(), "queue" => queue.to_string())
        .increment(1);
}

/// A run started: how long the task waited since it was due.
pub(crate) fn started(task: &Task) {
    if let Some(at) = task.started_at {
        histogram!(TASK_WAIT_SECONDS, "queue" => task.queue.clone())
            .record(secs(task.run_at.min(at), at));
    }
}

/// A run ended with `status` (`Pending`: it will be retried) at `at`.
/// `price`: the configured price of a call, counted when the tool reported no cost.
pub(crate) fn run_ended(
    task: &Task,
    status: TaskStatus,
    at: Timestamp,
    result: Option<&serde_json::Value>,
    price: Option<f64>,
) {
    if let Some(from) = task.started_at {
        histogram!(TASK_RUN_SECONDS, "tool" => task.tool.clone()).record(secs(from, at));
    }
    if status == TaskStatus::Pending {
        counter!(TASK_RETRIES, "tool" => task.tool.clone()).increment(1);
        return;
    }
    finished(task, status);
    let reported = result.and_then(cost_usd);
    let priced = matches!(status, TaskStatus::Completed | TaskStatus::Failed)
        .then_some(price)
        .flatten();
    if let Some(usd) = reported.or(priced) {
        let mut costs = COSTS.lock().unwrap_or_else(|e| e.into_inner());
        *costs.entry(task.tool.clone()).or_default() += usd;
    }
}

/// A task of a cached tool was stored: how the cache answered it.
pub(crate) fn cache_lookup(task: &Task) {
    let outcome = if task.cached_from.is_some() {
        "hit"
    } else if task.follows.is_some() {
        "coalesced"
    } else if task.cache_key.is_some() {
        "miss"
    } else {
        return;
    };
    counter!(CACHE_LOOKUPS, "tool" => task.tool.clone(), "outcome" => outcome).increment(1);
}

/// Entries of `tool` (of every tool for `None`) dropped.
pub(crate) fn cache_invalidated(tool: Option<&str>, n: u64) {
    counter!(CACHE_INVALIDATED, "tool" => tool.unwrap_or("*").to_string()).increment(n);
}

/// A call the cache answered (at once, or once the identical call it waited for
/// completed): what it would have cost, as the call it took the result of reported, or
/// else the configured price.
pub(crate) fn cache_saved(tool: &str, result: Option<&serde_json::Value>, price: Option<f64>) {
    if let Some(usd) = result.and_then(cost_usd).or(price) {
        let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
        *saved.entry(tool.to_string()).or_default() += usd;
    }
}

/// A task reached a final status.
pub(crate) fn finished(task: &Task, status: TaskStatus) {
    counter!(
        TASKS_FINISHED,
        "tool" => task.tool.clone(),
        "queue" => task.queue.clone(),
        "status" => status.as_str()
    )
    .increment(1);
}

/// The cost a tool reported with its result: `_meta["baton/cost"].usd`.
pub fn cost_usd(result: &serde_json::Value) -> Option<f64> {
    let usd = result
        .get("_meta")?
        .get("baton/cost")?
        .get("usd")?
        .as_f64()?;
    (usd.is_finite() && usd >= 0.0).then_some(usd)
}

/// Cost per tool. The `metrics` facade counts in integers, and a dollar counter must
/// add fractions, so this one is kept here and rendered by [`render_costs`].
static COSTS: std::sync::Mutex<BTreeMap<String, f64>> = std::sync::Mutex::new(BTreeMap::new());

const COST_HELP: &str = "What finished tasks cost, in US dollars, as their tools reported it \
(`_meta[\"baton/cost\"].usd`) or else at the configured price per call, by tool.";

/// What the result cache saved per tool (see [`cache_saved`]).
static SAVED: std::sync::Mutex<BTreeMap<String, f64>> = std::sync::Mutex::new(BTreeMap::new());

const SAVED_HELP: &str = "What the calls the result cache answered would have cost, in US \
dollars, as the calls they took the result of reported it or else at the configured price, by tool.";

/// [`TASK_COST_USD`] and [`CACHE_SAVED_USD`] in the Prometheus text format (each only
/// once there is something to count).
pub fn render_costs(out: &mut String) {
    for (name, help, values) in [
        (TASK_COST_USD, COST_HELP, &COSTS),
        (CACHE_SAVED_USD, SAVED_HELP, &SAVED),
    ] {
        render_dollars(out, name, help, values);
    }
}

fn render_dollars(
    out: &mut String,
    name: &str,
    help: &str,
    values: &std::sync::Mutex<BTreeMap<String, f64>>,
) {
    use std::fmt::Write;
    let values = values.lock().unwrap_or_else(|e| e.into_inner());
    if values.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (tool, usd) in values.iter() {
        let _ = writeln!(out, "{name}{{tool=\"{}\"}} {usd}", escape_label(tool));
    }
}

/// A label value as the text format needs it.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Tasks handed back after their lease expired.
pub(crate) fn rescued(n: usize) {
    counter!(LEASE_RESCUES).increment(n as u64);
}

/// A group commit of `n` writes that took `took`.
pub(crate) fn committed(n: usize, took: Duration) {
    histogram!(STORE_COMMIT_SECONDS).record(took.as_secs_f64());
    histogram!(STORE_BATCH_SIZE).record(n as f64);
}

/// A workflow reached a final status.
pub(crate) fn workflow_finished(status: &'static str, created: Timestamp, at: Timestamp) {
    counter!(WORKFLOWS_FINISHED, "status" => status).increment(1);
    histogram!(WORKFLOW_RUN_SECONDS).record(secs(created, at));
}
