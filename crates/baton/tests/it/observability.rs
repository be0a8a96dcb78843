//! What a node lets its operators see: `GET /metrics` after real work (built-in and
//! upstream tools, retries, a cancellation, a workflow), checked value by value and by
//! Prometheus' own `promtool`, on SQLite and on PostgreSQL.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::common::{
    Api, Baton, PgSchema, baton_bin, eventually, repo_root, testserver_bin, wait_healthy,
};

/// A node with the repository's test server as `test`.
fn start(dir: &Path, env: &[(&str, String)]) -> Baton {
    start_with(dir, "", env)
}

/// The same, with more configuration (TOML) before the server.
fn start_with(dir: &Path, toml: &str, env: &[(&str, String)]) -> Baton {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let config = format!(
        "{toml}\n[[servers]]\nname = \"test\"\ncommand = \"{}\"\nargs = [\"--state-dir\", \"{}\"]\n",
        testserver_bin().display(),
        state.display()
    );
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("BATON_TASKS__RETRY_BASE_DELAY", "100ms"));
    Baton::start_configured(dir, &config, &env)
}

/// The samples of a Prometheus text exposition, by series (`name{labels}`, labels as the
/// exporter wrote them).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l}"));
            (series.to_string(), value.parse::<f64>().unwrap())
        })
        .collect()
}

/// The value of the one series of `name` whose labels include every `label="value"` of
/// `labels`; 0 when there is none.
fn value(samples: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<(&String, &f64)> = samples
        .iter()
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .collect();
    assert!(
        matching.len() <= 1,
        "{name} {labels:?} matches several series: {matching:?}"
    );
    matching.first().map_or(0.0, |(_, v)| **v)
}

async fn scrape(api: &Api) -> String {
    let r = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    r.text().await.unwrap()
}

/// `promtool check metrics` (Debian's `prometheus` package; `scripts/test-env` installs
/// it): the exposition parses, every metric has help, names follow the conventions.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; run scripts/test-env)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every metric the node declares, each with its help line and type.
const DECLARED: [(&str, &str); 20] = [
    ("baton_tasks_submitted_total", "counter"),
    ("baton_tasks_finished_total", "counter"),
    ("baton_task_run_seconds", "histogram"),
    ("baton_task_wait_seconds", "histogram"),
    ("baton_queue_tasks", "gauge"),
    ("baton_task_retries_total", "counter"),
    ("baton_lease_rescues_total", "counter"),
    ("baton_upstream_requests_total", "counter"),
    ("baton_upstream_request_seconds", "histogram"),
    ("baton_upstream_circuit_open", "gauge"),
    ("baton_upstream_up", "gauge"),
    ("baton_workflows_finished_total", "counter"),
    ("baton_workflow_run_seconds", "histogram"),
    ("baton_http_requests_total", "counter"),
    ("baton_http_request_seconds", "histogram"),
    ("baton_store_commit_seconds", "histogram"),
    ("baton_store_batch_size", "histogram"),
    ("baton_task_cost_usd_total", "counter"),
    ("baton_active_tasks", "gauge"),
    ("baton_running_tasks", "gauge"),
];

/// The work the metrics and analytics tests look at: three echoes in queue `fast`, a call
/// that fails, is retried and fails for good, and the test server's `rich` (which reports
/// a cost). Their ids, in that order.
async fn submit_mix(api: &Api) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            api.submit(json!({"tool": "baton__echo", "arguments": {"i": i}, "queue": "fast"}))
                .await,
        );
    }
    ids.push(
        api.submit(
            json!({"tool": "baton__fail", "arguments": {"retryable": true}, "max_attempts": 2}),
        )
        .await,
    );
    ids.push(api.submit(json!({"tool": "test__rich"})).await);
    ids
}

/// A workflow of two `baton__echo` steps, run to its end; its id.
async fn run_echo_workflow(api: &Api) -> String {
    let r = api
        .post(
            "/v1/workflows",
            json!({"name": "pair", "steps": [
                {"id": "a", "tool": "baton__echo"},
                {"id": "b", "tool": "baton__echo", "depends_on": ["a"]}
            ]}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let wf = r.body["workflow_id"].as_str().unwrap().to_string();
    eventually(
        "the workflow finishes",
        Duration::from_secs(30),
        async || api.get(&format!("/v1/workflows/{wf}")).await.body["status"] == "completed",
    )
    .await;
    wf
}

async fn metrics_follow_the_work(baton: &Baton) {
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    let mut ids = submit_mix(&api).await;
    ids.push(
        api.submit(
            json!({"tool": "test__fail_tool", "arguments": {"message": "no"}, "max_attempts": 1}),
        )
        .await,
    );
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(
            api.wait_final(id).await["status"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        statuses,
        [
            "completed",
            "completed",
            "completed",
            "failed",
            "completed",
            "failed"
        ]
    );
    // One cancelled while pending, one left waiting.
    let later = api
        .submit(json!({"tool": "baton__echo", "queue": "later", "delay_ms": 3_600_000}))
        .await;
    let cancelled = api.delete(&format!("/v1/tasks/{later}")).await;
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.body);
    let waiting = api
        .submit(json!({"tool": "baton__echo", "queue": "later", "delay_ms": 3_600_000}))
        .await;
    // A workflow of two steps.
    let wf = run_echo_workflow(&api).await;

    let text = scrape(&api).await;
    promtool_accepts(&text);
    for (name, kind) in DECLARED {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} is not declared as a {kind}:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no help"
        );
    }
    for id in ids.iter().chain([&later, &waiting, &wf]) {
        assert!(!text.contains(id.as_str()), "an id is a label value: {id}");
    }
    let s = samples(&text);
    let v = |name: &str, labels: &[(&str, &str)]| value(&s, name, labels);
    let echo_fast = [("tool", "baton__echo"), ("queue", "fast")];
    assert_eq!(v("baton_tasks_submitted_total", &echo_fast), 3.0);
    assert_eq!(
        v(
            "baton_tasks_finished_total",
            &[
                ("tool", "baton__echo"),
                ("queue", "fast"),
                ("status", "completed")
            ]
        ),
        3.0
    );
    // Workflow steps count as the tasks they are (the default queue).
    assert_eq!(
        v(
            "baton_tasks_submitted_total",
            &[("tool", "baton__echo"), ("queue", "default")]
        ),
        2.0
    );
    assert_eq!(
        v(
            "baton_tasks_finished_total",
            &[("tool", "baton__fail"), ("status", "failed")]
        ),
        1.0
    );
    assert_eq!(
        v("baton_task_retries_total", &[("tool", "baton__fail")]),
        1.0
    );
    assert_eq!(
        v(
            "baton_tasks_finished_total",
            &[
                ("tool", "baton__echo"),
                ("queue", "later"),
                ("status", "cancelled")
            ]
        ),
        1.0
    );
    // Runs: three echoes in `fast`, two workflow steps, two attempts of fail, one each
    // of the upstream tools.
    assert_eq!(
        v("baton_task_run_seconds_count", &[("tool", "baton__echo")]),
        5.0
    );
    assert_eq!(
        v("baton_task_run_seconds_count", &[("tool", "baton__fail")]),
        2.0
    );
    assert_eq!(
        v("baton_task_wait_seconds_count", &[("queue", "fast")]),
        3.0
    );
    // From the store: what is in each queue now.
    assert_eq!(
        v(
            "baton_queue_tasks",
            &[("queue", "later"), ("status", "pending")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "baton_queue_tasks",
            &[("queue", "fast"), ("status", "completed")]
        ),
        3.0
    );
    // Upstream calls by outcome, latency, health.
    assert_eq!(
        v(
            "baton_upstream_requests_total",
            &[("server", "test"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "baton_upstream_requests_total",
            &[("server", "test"), ("outcome", "tool_error")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "baton_upstream_request_seconds_count",
            &[("server", "test")]
        ),
        2.0
    );
    assert_eq!(v("baton_upstream_up", &[("server", "test")]), 1.0);
    assert_eq!(v("baton_upstream_circuit_open", &[("server", "test")]), 0.0);
    // The cost `test__rich` reports with its result.
    assert_eq!(
        v("baton_task_cost_usd_total", &[("tool", "test__rich")]),
        0.0125
    );
    // Workflows.
    assert_eq!(
        v("baton_workflows_finished_total", &[("status", "completed")]),
        1.0
    );
    assert_eq!(v("baton_workflow_run_seconds_count", &[]), 1.0);
    // HTTP by route template, never by raw path.
    assert!(
        v(
            "baton_http_requests_total",
            &[
                ("route", "/v1/tasks"),
                ("method", "POST"),
                ("status", "202")
            ]
        ) >= 8.0
    );
    assert!(
        v(
            "baton_http_requests_total",
            &[
                ("route", "/v1/tasks/{id}"),
                ("method", "DELETE"),
                ("status", "202")
            ]
        ) == 1.0
    );
    assert!(
        v(
            "baton_http_request_seconds_count",
            &[("route", "/v1/tasks")]
        ) >= 8.0
    );
    // Group commits: at least one per finished run, each of at least one write.
    assert!(v("baton_store_commit_seconds_count", &[]) >= 1.0);
    assert!(v("baton_store_batch_size_sum", &[]) >= v("baton_store_batch_size_count", &[]));
}

#[tokio::test]
async fn metrics_follow_the_work_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), &[]);
    metrics_follow_the_work(&baton).await;
}

#[tokio::test]
async fn metrics_follow_the_work_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let pg = PgSchema::create();
    let baton = start(dir.path(), &pg.env());
    metrics_follow_the_work(&baton).await;
}

/// `scripts/grafana-check`: a real Prometheus scraping a real node under load fills every
/// panel of `deploy/grafana/baton.json` (each query valid, each with a finite value).
#[test]
fn every_grafana_panel_has_data_from_a_real_prometheus() {
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("scripts/grafana-check"))
        .env("BATON_BIN", baton_bin())
        .env("TESTSERVER_BIN", testserver_bin())
        .output()
        .expect("python3 runs scripts/grafana-check");
    assert!(
        out.status.success(),
        "scripts/grafana-check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("queries have data"), "{text}");
}

/// A task's log: an upstream server's `notifications/message` and a built-in tool's
/// lines, stored in order, read back, followed while the task runs (REST long-poll, the
/// SSE stream, `baton logs --follow`), trimmed to what the node keeps; on PostgreSQL, read
/// from a second node that did not run the task.
async fn task_logs_are_kept_and_followed(baton: &Baton, reader: &Baton) {
    let api = Api::new(&baton.url);
    let other = Api::new(&reader.url);
    wait_healthy(&api, "test").await;

    // An upstream's log messages, in order; the node keeps the newest three.
    let id = api
        .submit(json!({"tool": "test__log", "arguments": {"messages": ["a", "b", "c", "d", "e"]}}))
        .await;
    assert_eq!(api.wait_final(&id).await["status"], "completed");
    let r = other.get(&format!("/v1/tasks/{id}/logs")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let data: Vec<&str> = r.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, ["c", "d", "e"], "{}", r.body);
    assert_eq!(r.body["logs"][0]["logger"], "baton-testserver");
    assert_eq!(r.body["logs"][0]["level"], "info");
    assert_eq!(r.body["logs"][0]["attempt"], 1);
    assert_eq!(r.body["finished"], true);
    let last = r.body["next_after"].as_i64().unwrap();
    let r = other
        .get(&format!("/v1/tasks/{id}/logs?after={last}"))
        .await;
    assert_eq!(r.body["logs"], json!([]));

    // Followed while it runs: a long-poll answers with the first line, well before the
    // task ends, and reading on ends with the last line and `finished`.
    let id = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 1500, "steps": 3}}))
        .await;
    let r = other.get(&format!("/v1/tasks/{id}/logs?wait=10")).await;
    assert_eq!(
        r.body["logs"][0]["data"], "sleeping 1500 ms in 3 steps",
        "{}",
        r.body
    );
    assert_eq!(r.body["finished"], false, "{}", r.body);
    let mut after = r.body["next_after"].as_i64().unwrap();
    let mut rest = Vec::new();
    loop {
        let r = other
            .get(&format!("/v1/tasks/{id}/logs?after={after}&wait=10"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        rest.extend(r.body["logs"].as_array().unwrap().iter().cloned());
        after = r.body["next_after"].as_i64().unwrap();
        if r.body["finished"] == true {
            break;
        }
    }
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(rest[0]["data"], "awake");
    assert_eq!(other.task(&id).await["status"], "completed");

    // The SSE stream carries the lines as `log` events, all before the final event.
    let id = api
        .submit(json!({"tool": "baton__fail", "arguments": {"message": "boom"}, "max_attempts": 1}))
        .await;
    let text = other
        .http
        .get(format!("{}/v1/tasks/{id}/events", other.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event:").map(str::trim))
        .collect();
    let log_at = kinds.iter().position(|k| *k == "log").expect("a log event");
    let failed_at = kinds.iter().position(|k| *k == "failed").expect("the end");
    assert!(log_at < failed_at, "{kinds:?}");
    assert!(text.contains(r#""level":"error""#), "{text}");

    // The CLI prints them, and follows a running task to its end.
    let id = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 800}}))
        .await;
    let url = reader.url.clone();
    let out =
        tokio::task::spawn_blocking(move || crate::common::cli(&url, &["logs", "--follow", &id]))
            .await
            .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("info") && lines[0].contains("[baton__sleep] sleeping 800 ms"),
        "{text}"
    );
    assert!(lines[1].ends_with("awake"), "{text}");

    // Bad input names the problem.
    let r = other
        .get(&format!(
            "/v1/tasks/{}/logs?limit=0",
            "01a1fe74-ab42-7e09-a392-c0f41b2fd7ee"
        ))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("limit"), "{}", r.error_message());
}

fn log_env(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![("BATON_TASKS__LOG_LINES", "3".to_string())];
    env.extend(extra.iter().cloned());
    env
}

#[tokio::test]
async fn task_logs_are_kept_and_followed_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), &log_env(&[]));
    task_logs_are_kept_and_followed(&baton, &baton).await;
}

#[tokio::test]
async fn task_logs_are_kept_and_followed_across_nodes_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let pg = PgSchema::create();
    let baton = start(dir.path(), &log_env(&pg.env()));
    let other_dir = tempfile::tempdir().unwrap();
    let mut env = log_env(&pg.env());
    env.push(("BATON_WORKERS__CONCURRENCY", "0".into()));
    let reader = start(other_dir.path(), &env);
    task_logs_are_kept_and_followed(&baton, &reader).await;
}

/// `GET /v1/analytics` and the MCP tool `analytics` after real work: counts, retries,
/// success rate, percentiles, costs (reported and configured) and tokens, a series, per
/// tool, server, queue, principal and workflow.
async fn analytics_follow_the_work(baton: &Baton) {
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    let ids = submit_mix(&api).await;
    for id in &ids {
        api.wait_final(id).await;
    }
    let wf = run_echo_workflow(&api).await;

    let get = |q: &'static str| {
        let api = api.clone();
        async move {
            let r = api.get(&format!("/v1/analytics?since=1h&{q}")).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body
        }
    };
    let group = |view: &serde_json::Value, key: &str| -> serde_json::Value {
        view["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == key)
            .unwrap_or_else(|| panic!("no group {key} in {view:#}"))
            .clone()
    };
    let close = |a: &serde_json::Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-9;

    let by_tool = get("group_by=tool").await;
    assert_eq!(by_tool["group_by"], "tool");
    let echo = group(&by_tool, "baton__echo");
    assert_eq!(echo["total"], 5, "{echo:#}");
    assert_eq!(echo["counts"]["completed"], 5);
    assert_eq!(echo["success_rate"], 1.0);
    // `[costs] baton = 0.001`: five calls that reported no cost.
    assert!(close(&echo["cost_usd"], 0.005), "{echo:#}");
    assert!(echo["run_ms"]["p50"].as_f64().unwrap() >= 0.0);
    assert!(echo["run_ms"]["p99"].as_f64().unwrap() >= echo["run_ms"]["p50"].as_f64().unwrap());
    assert!(echo["wait_ms"]["p95"].is_number());
    let completed: u64 = echo["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(completed, 5, "the series adds up");
    let fail = group(&by_tool, "baton__fail");
    assert_eq!(fail["counts"]["failed"], 1);
    assert_eq!(fail["retries"], 1);
    assert_eq!(fail["success_rate"], 0.0);
    // Reported by the tool, not priced: the price is for `baton`'s tools.
    let rich = group(&by_tool, "test__rich");
    assert!(close(&rich["cost_usd"], 0.0125), "{rich:#}");
    assert_eq!(rich["input_tokens"], 120.0);
    assert_eq!(rich["output_tokens"], 48.0);
    assert_eq!(by_tool["totals"]["total"], 7);
    // Five echoes and the failed call at the price, and the reported cost.
    assert!(close(
        &by_tool["totals"]["cost_usd"],
        0.005 + 0.001 + 0.0125
    ));

    let by_server = get("group_by=server").await;
    let baton_group = group(&by_server, "baton");
    assert_eq!(baton_group["total"], 6);
    assert!(close(&baton_group["cost_usd"], 0.006), "{baton_group:#}");
    assert_eq!(group(&by_server, "test")["total"], 1);
    assert_eq!(group(&get("group_by=queue").await, "fast")["total"], 3);
    assert_eq!(
        group(&get("group_by=principal").await, "anonymous")["total"],
        7
    );
    let by_workflow = get("group_by=workflow").await;
    assert_eq!(by_workflow["groups"].as_array().unwrap().len(), 1);
    let w = group(&by_workflow, &wf);
    assert_eq!(w["total"], 2);
    assert!(
        close(&w["cost_usd"], 0.002),
        "a workflow costs its steps: {w:#}"
    );

    // Bad input names the problem.
    for (q, field) in [
        ("group_by=colour", "group_by"),
        ("since=someday", "since"),
        ("bucket_seconds=0", "bucket_seconds"),
    ] {
        let r = api.get(&format!("/v1/analytics?{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert!(
            r.error_message().contains(field),
            "{q}: {}",
            r.error_message()
        );
    }

    // The same over MCP.
    let mcp = crate::mcp_protocol::Mcp::new(&baton.url);
    let session = mcp.initialize("2025-11-25", json!({})).await;
    let a = mcp
        .legacy(
            &session,
            2,
            "tools/call",
            json!({"name": "analytics", "arguments": {"since": "1h", "group_by": "server"}}),
        )
        .await;
    let view = &a.last()["result"]["structuredContent"];
    assert_eq!(group(view, "baton")["total"], 6, "{:#}", a.last());
}

const PRICES: &str = "[costs]\nbaton = 0.001\n";

#[tokio::test]
async fn analytics_follow_the_work_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start_with(dir.path(), PRICES, &[]);
    analytics_follow_the_work(&baton).await;
}

#[tokio::test]
async fn analytics_follow_the_work_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let pg = PgSchema::create();
    let baton = start_with(dir.path(), PRICES, &pg.env());
    analytics_follow_the_work(&baton).await;
}

/// One exported span, as the test collector decoded it.
#[derive(Debug, Clone)]
struct ExportedSpan {
    name: String,
    trace_id: String,
    parent_id: String,
    attributes: BTreeMap<String, String>,
}

/// An OTLP/HTTP collector: takes `POST /v1/traces` (protobuf) and keeps the spans.
struct Collector {
    url: String,
    spans: std::sync::Arc<std::sync::Mutex<Vec<ExportedSpan>>>,
}

impl Collector {
    async fn start() -> Collector {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = spans.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // One request: the head, then Content-Length bytes of body.
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            let mut chunk = [0u8; 8192];
                            match conn.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < head_end + len {
                            let mut chunk = [0u8; 65536];
                            match conn.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
                        if head.starts_with("post /v1/traces") {
                            decode_spans(&body, &kept);
                        }
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                        if conn.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Collector { url, spans }
    }

    fn spans(&self) -> Vec<ExportedSpan> {
        self.spans.lock().unwrap().clone()
    }
}

fn decode_spans(body: &[u8], into: &std::sync::Mutex<Vec<ExportedSpan>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    use prost::Message;
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut out = into.lock().unwrap();
    for rs in req.resource_spans {
        for ss in rs.scope_spans {
            for s in ss.spans {
                let attributes = s
                    .attributes
                    .iter()
                    .map(|kv| {
                        let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(V::StringValue(s)) => s.clone(),
                            Some(V::IntValue(i)) => i.to_string(),
                            Some(V::BoolValue(b)) => b.to_string(),
                            Some(V::DoubleValue(d)) => d.to_string(),
                            other => format!("{other:?}"),
                        };
                        (kv.key.clone(), v)
                    })
                    .collect();
                out.push(ExportedSpan {
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    parent_id: hex(&s.parent_span_id),
                    attributes,
                });
            }
        }
    }
}

/// Submits `tool` over REST with a `traceparent` header; returns the task id.
async fn submit_traced(api: &Api, tool: &str, traceparent: &str) -> String {
    let r = api
        .http
        .post(format!("{}/v1/tasks", api.base))
        .header("traceparent", traceparent)
        .json(&json!({"tool": tool, "arguments": {"text": "traced"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.json::<serde_json::Value>().await.unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Traces: a `traceparent` sent with a REST submission or in MCP `_meta` is kept with
/// the task, so the run (however much later) and its upstream call join the caller's
/// trace; the spans reach a real OTLP/HTTP receiver as protobuf, with the task, tool and
/// attempt as attributes. An HTTP upstream gets the trace context as a header too.
#[tokio::test]
async fn traces_follow_a_task_from_request_to_upstream_and_back() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("web-state");
    let web = crate::common::HttpTestServer::start(crate::common::free_port(), &state);
    let toml = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"baton-test\"\n\n\
         [[servers]]\nname = \"web\"\nurl = \"{}\"\n",
        collector.url, web.url
    );
    let baton = start_with(
        dir.path(),
        &toml,
        &[("OTEL_BSP_SCHEDULE_DELAY", "100".to_string())],
    );
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;

    // REST: the caller's trace id and span id in a traceparent header.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let id = submit_traced(
        &api,
        "test__echo",
        &format!("00-{trace_id}-{caller_span}-01"),
    )
    .await;
    assert_eq!(api.wait_final(&id).await["status"], "completed");

    // Over HTTP, the upstream sees the trace as a header (its own span's id as parent).
    wait_healthy(&api, "web").await;
    let web_trace = "a3ce929d0e0e47364bf92f3577b34da6";
    let web_task = submit_traced(
        &api,
        "web__echo",
        &format!("00-{web_trace}-{caller_span}-01"),
    )
    .await;
    assert_eq!(api.wait_final(&web_task).await["status"], "completed");
    let seen = std::fs::read_to_string(state.join("traceparents")).unwrap_or_default();
    let header = seen
        .lines()
        .find(|l| l.contains(web_trace))
        .unwrap_or_else(|| panic!("no traceparent of the trace among {seen:?}"));
    assert!(
        header.starts_with(&format!("00-{web_trace}-")) && !header.contains(caller_span),
        "the header names the upstream call's span: {header}"
    );

    // MCP: the trace context in `_meta`.
    let mcp_trace = "0af7651916cd43dd8448eb211c80319c";
    let mcp = crate::mcp_protocol::Mcp::new(&baton.url);
    let session = mcp.initialize("2025-11-25", json!({})).await;
    let a = mcp
        .legacy(
            &session,
            2,
            "tools/call",
            json!({
                "name": "baton__echo",
                "arguments": {"via": "mcp"},
                "_meta": {"traceparent": format!("00-{mcp_trace}-b7ad6b7169203331-01")}
            }),
        )
        .await;
    assert!(a.last()["result"]["content"].is_array(), "{:?}", a.last());

    // A workflow: its first step starts in the request, the second later, from the
    // coordinator; both join the request's trace.
    let wf_trace = "5b8efff798038103d269b633813fc60c";
    let r = api
        .http
        .post(format!("{}/v1/workflows", api.base))
        .header("traceparent", format!("00-{wf_trace}-eee19b7ec3c1b174-01"))
        .json(&json!({"name": "traced", "steps": [
            {"id": "a", "tool": "test__add", "arguments": {"a": 1, "b": 2}},
            {"id": "b", "tool": "test__add", "arguments": {"a": 3, "b": 4}, "depends_on": ["a"]}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let wf = r.json::<serde_json::Value>().await.unwrap()["workflow_id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(
        "the workflow finishes",
        Duration::from_secs(30),
        async || api.get(&format!("/v1/workflows/{wf}")).await.body["status"] == "completed",
    )
    .await;

    let mut spans = Vec::new();
    eventually(
        "the spans are exported",
        Duration::from_secs(20),
        async || {
            spans = collector.spans();
            let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
            let steps = names.iter().filter(|n| **n == "run test__add").count();
            steps == 2
                && [
                    "POST /v1/tasks",
                    "claim test__echo",
                    "run test__echo",
                    "test echo",
                    "finish test__echo",
                    "run baton__echo",
                ]
                .iter()
                .all(|n| names.contains(n))
        },
    )
    .await;
    assert!(
        spans
            .iter()
            .filter(|s| s.name == "run test__add")
            .all(|s| s.trace_id == wf_trace),
        "every step joins the workflow's trace: {spans:#?}"
    );
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
            .clone()
    };
    let http = named("POST /v1/tasks");
    assert_eq!(http.trace_id, trace_id);
    assert_eq!(
        http.parent_id, caller_span,
        "the request joins the caller's span"
    );
    assert_eq!(http.attributes["http.route"], "/v1/tasks");
    let run = named("run test__echo");
    assert_eq!(run.trace_id, trace_id, "the run joins the caller's trace");
    assert_eq!(run.attributes["task.id"], id);
    assert_eq!(run.attributes["task.tool"], "test__echo");
    assert_eq!(run.attributes["task.attempt"], "1");
    assert_eq!(run.attributes["task.status"], "completed");
    assert_eq!(named("claim test__echo").trace_id, trace_id);
    let upstream = named("test echo");
    assert_eq!(upstream.trace_id, trace_id);
    assert_eq!(upstream.attributes["server"], "test");
    assert_eq!(upstream.attributes["outcome"], "ok");
    let finish = named("finish test__echo");
    assert_eq!(finish.trace_id, trace_id);
    assert_eq!(
        named("run baton__echo").trace_id,
        mcp_trace,
        "MCP _meta joins too"
    );
    // Nothing of the libraries', and no span of another trace claims this task.
    assert!(
        spans
            .iter()
            .filter(|s| s.attributes.get("task.id") == Some(&id))
            .all(|s| s.trace_id == trace_id),
        "{spans:#?}"
    );
}

/// A worker has no API; `[telemetry] metrics_listen` gives it a `/metrics` of its own,
/// with the runs it did. The store's queue depths read the same from either process.
#[tokio::test]
async fn a_worker_serves_its_own_metrics() {
    let pg = PgSchema::create();
    let node_dir = tempfile::tempdir().unwrap();
    let mut env = pg.env();
    env.push(("BATON_WORKERS__CONCURRENCY", "0".into()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let node = Baton::start(&node_dir.path().join("data"), &env_ref);
    let port = crate::common::free_port();
    let worker_dir = tempfile::tempdir().unwrap();
    let mut env = pg.env();
    env.push((
        "BATON_TELEMETRY__METRICS_LISTEN",
        format!("127.0.0.1:{port}"),
    ));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _worker = Baton::start_worker(&worker_dir.path().join("data"), &env_ref);

    let api = Api::new(&node.url);
    for i in 0..3 {
        let id = api
            .submit(json!({"tool": "baton__echo", "arguments": {"i": i}, "queue": "w"}))
            .await;
        assert_eq!(api.wait_final(&id).await["status"], "completed");
    }
    let worker = Api::new(&format!("http://127.0.0.1:{port}"));
    let at_worker = samples(&scrape(&worker).await);
    let at_node = samples(&scrape(&api).await);
    let done = [
        ("tool", "baton__echo"),
        ("queue", "w"),
        ("status", "completed"),
    ];
    assert_eq!(value(&at_worker, "baton_tasks_finished_total", &done), 3.0);
    assert_eq!(value(&at_node, "baton_tasks_finished_total", &done), 0.0);
    assert_eq!(
        value(
            &at_node,
            "baton_tasks_submitted_total",
            &[("tool", "baton__echo"), ("queue", "w")]
        ),
        3.0
    );
    let depth = [("queue", "w"), ("status", "completed")];
    assert_eq!(value(&at_worker, "baton_queue_tasks", &depth), 3.0);
    assert_eq!(value(&at_node, "baton_queue_tasks", &depth), 3.0);
    // That listener serves nothing else.
    let r = worker.get("/v1/tasks").await;
    assert_eq!(r.status, 404);
}

/// The dashboard in a real browser (Debian's chromium through chromium-driver, driven by
/// `test-support/python/ui_check.py`): overview, a tool run from the playground and
/// followed live to its end, a cancel from the task page, the task list and its filter,
/// a delegated task in its parent's lineage, a server added from the page, keyboard
/// navigation, a 390 px screen.
async fn the_dashboard_works_in_a_real_browser(env: &[(&str, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let everything = format!(
        "[[servers]]\nname = \"everything\"\ncommand = \"{}\"\nargs = [\"stdio\"]\n",
        crate::common::everything_bin().display()
    );
    let baton = start_with(dir.path(), &everything, env);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    wait_healthy(&api, "everything").await;
    run_ui_check(&baton.url, None, true).await;
}

async fn run_ui_check(url: &str, key: Option<String>, rich: bool) {
    let url = url.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd =
            std::process::Command::new(repo_root().join("test-support/python/.venv/bin/python"));
        cmd.arg(repo_root().join("test-support/python/ui_check.py"))
            .arg(&url);
        if let Some(k) = key {
            cmd.env("UI_KEY", k);
        }
        if rich {
            cmd.env("UI_RICH", "1")
                .env("UI_ELICIT", "1")
                .env("UI_ADD_SERVER", testserver_bin());
        }
        cmd.output()
            .expect("the test Python (scripts/test-env) runs ui_check.py")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "ui_check.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("every check passed"));
}

#[tokio::test]
async fn the_dashboard_works_in_a_real_browser_on_sqlite() {
    the_dashboard_works_in_a_real_browser(&[]).await;
}

#[tokio::test]
async fn the_dashboard_works_in_a_real_browser_on_postgres() {
    let pg = PgSchema::create();
    the_dashboard_works_in_a_real_browser(&pg.env()).await;
}

/// On a node that asks for credentials, the dashboard asks for a key, refuses a wrong
/// one, and works with a key that has only the task, workflow and queue scopes.
#[tokio::test]
async fn the_dashboard_asks_for_a_key_when_the_node_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = crate::common::cli(
        "http://127.0.0.1:9",
        &[
            "keys",
            "create",
            "--name",
            "dashboard",
            "--principal",
            "team-a",
            "--scopes",
            "tasks:read,tasks:write,workflows:read,workflows:write,queues:admin",
            "--data-dir",
            &data.to_string_lossy(),
        ],
    );
    assert!(made.status.success(), "{made:?}");
    let key = String::from_utf8_lossy(&made.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let baton = Baton::start(&data, &[("BATON_AUTH__REQUIRED", "true")]);
    run_ui_check(&baton.url, Some(key), false).await;
}
