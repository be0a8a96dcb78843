//! MCP servers as upstreams, against real servers: the repository's `baton-testserver`
//! (stdio and Streamable HTTP, protocol 2026-07-28 with the tasks extension) and the
//! official `@modelcontextprotocol/server-everything` from npm (stdio, 2025-11-25 with
//! its experimental tasks).

use std::path::Path;
use std::time::Duration;

use crate::common::{
    Api, Baton, HttpTestServer, eventually, everything_bin, free_port, pid_alive, sqlite_query,
    testserver_bin, wait_healthy,
};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

/// A Baton node with `servers` (TOML `[[servers]]` tables) in its config file.
fn start_with(dir: &Path, servers: &str, env: &[(&str, &str)]) -> Baton {
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("BATON_TASKS__RETRY_BASE_DELAY", "200ms"));
    Baton::start_configured(dir, servers, &env)
}

fn everything_toml() -> String {
    format!(
        "[[servers]]\nname = \"everything\"\ncommand = \"{}\"\nargs = [\"stdio\"]\ntags = [\"demo\", \"research\"]\n",
        everything_bin().display()
    )
}

fn testserver_toml(name: &str, state: &Path, extra: &str) -> String {
    format!(
        "[[servers]]\nname = \"{name}\"\ncommand = \"{}\"\nargs = [\"--state-dir\", \"{}\"]\n{extra}\n",
        testserver_bin().display(),
        state.display()
    )
}

async fn events(api: &Api, id: &str) -> Vec<Value> {
    api.sse_events(id, None)
        .await
        .into_iter()
        .map(|(_, _, v)| v)
        .collect()
}

fn text(task: &Value) -> String {
    task["result"]["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn everything_progress_is_relayed() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start_with(dir.path(), &everything_toml(), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "everything").await;
    let id = api
        .submit(json!({"tool": "everything__trigger-long-running-operation", "arguments": {"duration": 2, "steps": 4}}))
        .await;
    let task = api.wait_final(&id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert!(
        text(&task).contains("Long running operation completed"),
        "{task}"
    );
    let progress: Vec<f64> = events(&api, &id)
        .await
        .iter()
        .filter(|e| e["kind"] == "progress")
        .filter_map(|e| e["progress"].as_f64())
        .collect();
    assert!(
        progress.len() >= 2,
        "progress from the upstream was relayed: {progress:?}"
    );
    assert!(progress.iter().all(|p| *p > 0.0 && *p <= 1.0));
    assert!(progress.windows(2).all(|w| w[0] <= w[1]));
}

/// A 2026-07-28 server with the tasks extension answering a call without making a task
/// reports progress during the call, as a plain one does.
#[tokio::test]
async fn progress_of_a_2026_07_28_server_is_relayed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let baton = start_with(dir.path(), &testserver_toml("test", &state, ""), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    let server = api.get("/v1/servers/test").await.body;
    assert_eq!(server["protocol_version"], "2026-07-28", "{server}");
    let id = api
        .submit(json!({"tool": "test__slow", "arguments": {"duration_ms": 900, "steps": 3}}))
        .await;
    let task = api.wait_final(&id).await;
    assert_eq!(task["status"], "completed", "{task}");
    let progress: Vec<f64> = events(&api, &id)
        .await
        .iter()
        .filter(|e| e["kind"] == "progress")
        .filter_map(|e| e["progress"].as_f64())
        .collect();
    assert!(
        progress.len() >= 2,
        "progress from the upstream was relayed: {progress:?}"
    );
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
}

#[tokio::test]
async fn everything_task_only_tool_runs_as_an_upstream_task_with_input() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start_with(dir.path(), &everything_toml(), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "everything").await;
    let servers = api.get("/v1/servers/everything").await;
    assert_eq!(servers.body["protocol_version"], "2025-11-25");
    assert_eq!(servers.body["tasks"], "2025-11-25");

    // Task-only (execution.taskSupport = required), run to completion.
    let id = api
        .submit(json!({"tool": "everything__simulate-research-query", "arguments": {"topic": "durable queues"}}))
        .await;
    let task = api.wait_final(&id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert!(text(&task).contains("durable queues"), "{task}");
    assert!(
        task["result"]["_meta"]
            .get("io.modelcontextprotocol/related-task")
            .is_none()
    );
    let messages: Vec<String> = events(&api, &id)
        .await
        .iter()
        .filter_map(|e| e["message"].as_str().map(String::from))
        .collect();
    let stages = [
        "Gathering sources",
        "Analyzing content",
        "Synthesizing findings",
        "Generating report",
    ];
    let relayed = stages
        .iter()
        .filter(|s| messages.iter().any(|m| m.contains(*s)))
        .count();
    assert!(
        relayed >= 3,
        "the upstream task's status messages were relayed: {messages:?}"
    );

    // Ambiguous: the upstream task asks for input; the question reaches Baton's client
    // and the answer reaches the upstream.
    let id = api
        .submit(json!({"tool": "everything__simulate-research-query", "arguments": {"topic": "python", "ambiguous": true}}))
        .await;
    let waiting = api.wait_status(&id, "input_required").await;
    let requests = waiting["input_requests"]
        .as_object()
        .expect("input requests shown")
        .clone();
    assert_eq!(requests.len(), 1);
    let (key, request) = requests.iter().next().unwrap();
    assert_eq!(request["method"], "elicitation/create");
    assert!(
        request["params"]["message"]
            .as_str()
            .unwrap()
            .contains("python")
    );
    assert!(request["params"]["requestedSchema"]["properties"]["interpretation"].is_object());
    let bad = api
        .post(
            &format!("/v1/tasks/{id}/input"),
            json!({"responses": {"nope": {}}}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.error_message().contains("nope"));
    let r = api
        .post(
            &format!("/v1/tasks/{id}/input"),
            json!({"responses": {key: {"action": "accept", "content": {"interpretation": "snake"}}}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let task = api.wait_final(&id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert!(
        text(&task).to_lowercase().contains("snake"),
        "the answer reached the upstream: {task}"
    );
    let again = api
        .post(&format!("/v1/tasks/{id}/input"), json!({"responses": {}}))
        .await;
    assert_eq!(again.status, 409);
}

#[tokio::test]
async fn everything_rich_content_passes_through_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let servers = format!(
        "{}{}",
        everything_toml(),
        testserver_toml("test", &state, "")
    );
    let baton = start_with(dir.path(), &servers, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "everything").await;
    wait_healthy(&api, "test").await;
    let id = api
        .submit(json!({"tool": "everything__get-tiny-image"}))
        .await;
    let task = api.wait_final(&id).await;
    let kinds: Vec<&str> = task["result"]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"image"), "{kinds:?}");
    let id = api.submit(json!({"tool": "test__rich"})).await;
    let task = api.wait_final(&id).await;
    let result = &task["result"];
    let kinds: Vec<&str> = result["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["text", "image", "audio", "resource_link", "resource"]
    );
    assert_eq!(result["_meta"]["test/meta"], "kept");
    assert!(result["structuredContent"]["kinds"].is_array());
}

#[tokio::test]
async fn cancelling_and_timeouts_reach_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let servers = format!(
        "{}{}",
        testserver_toml("test", &state, ""),
        testserver_toml("strict", &state, "timeout_ms = 500")
    );
    let baton = start_with(dir.path(), &servers, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    wait_healthy(&api, "strict").await;

    // A plain call: notifications/cancelled with the call's request id.
    let id = api
        .submit(json!({"tool": "test__hang", "arguments": {"id": "c1"}}))
        .await;
    eventually("hang started upstream", LONG, async || {
        state.join("hang-c1.started").exists()
    })
    .await;
    let r = api.delete(&format!("/v1/tasks/{id}")).await;
    assert_eq!(r.status, 202);
    assert_eq!(api.wait_final(&id).await["status"], "cancelled");
    eventually("the upstream saw the cancellation", LONG, async || {
        state.join("hang-c1.cancelled").exists()
    })
    .await;

    // An upstream task (2026-07-28 extension): tasks/cancel.
    let id = api
        .submit(json!({"tool": "test__task_job", "arguments": {"id": "t1", "duration_ms": 60000}}))
        .await;
    eventually("the upstream task started", LONG, async || {
        state.join("task-t1.started").exists()
    })
    .await;
    api.delete(&format!("/v1/tasks/{id}")).await;
    assert_eq!(api.wait_final(&id).await["status"], "cancelled");
    eventually("the upstream task was cancelled", LONG, async || {
        state.join("task-t1.cancelled").exists()
    })
    .await;

    // The server's timeout: the call is cancelled upstream and the task fails with a
    // timeout error.
    let id = api
        .submit(json!({"tool": "strict__hang", "arguments": {"id": "slowpoke"}, "max_attempts": 1}))
        .await;
    let t = api.wait_final(&id).await;
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["code"], "timeout", "{t}");
    eventually(
        "the timed-out call was cancelled upstream",
        LONG,
        async || state.join("hang-slowpoke.cancelled").exists(),
    )
    .await;
}

#[tokio::test]
async fn an_upstream_crash_mid_call_is_retried_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let baton = start_with(dir.path(), &testserver_toml("test", &state, ""), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    let before = api.get("/v1/servers/test").await.body["pid"]
        .as_u64()
        .unwrap();
    // The first call makes the server process exit; the supervisor restarts it and the
    // retried call succeeds.
    let id = api
        .submit(json!({"tool": "test__flaky", "arguments": {"key": "k", "failures": 1}}))
        .await;
    let task = api.wait_final(&id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["attempt"], 2);
    assert_eq!(text(&task), "ok after 1 failures");
    let after = api.get("/v1/servers/test").await.body["pid"]
        .as_u64()
        .unwrap();
    assert_ne!(before, after, "a new process");
    assert!(!pid_alive(before as u32));
}

#[tokio::test]
async fn removing_a_server_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let baton = start_with(dir.path(), "", &[]);
    let api = Api::new(&baton.url);
    let r = api
        .post(
            "/v1/servers",
            json!({"name": "kids", "command": testserver_bin(), "args": ["--state-dir", state], "tags": ["spawner"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let server_pid = r.body["pid"].as_u64().unwrap() as u32;
    let id = api.submit(json!({"tool": "kids__spawn_child"})).await;
    let task = api.wait_final(&id).await;
    let child_pid = task["result"]["structuredContent"]["pid"].as_u64().unwrap() as u32;
    assert!(pid_alive(server_pid) && pid_alive(child_pid));
    let r = api.delete("/v1/servers/kids").await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually(
        "server and grandchild gone",
        Duration::from_secs(15),
        async || !pid_alive(server_pid) && !pid_alive(child_pid),
    )
    .await;
    assert_eq!(api.get("/v1/servers/kids").await.status, 404);
    assert!(
        !api.get("/v1/tools")
            .await
            .body
            .to_string()
            .contains("kids__")
    );
}

#[tokio::test]
async fn baton_stopping_stops_its_servers() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let baton = start_with(dir.path(), &testserver_toml("test", &state, ""), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    let server_pid = api.get("/v1/servers/test").await.body["pid"]
        .as_u64()
        .unwrap() as u32;
    let id = api.submit(json!({"tool": "test__spawn_child"})).await;
    let child_pid = api.wait_final(&id).await["result"]["structuredContent"]["pid"]
        .as_u64()
        .unwrap() as u32;
    assert!(baton.terminate().success());
    assert!(
        !pid_alive(server_pid) && !pid_alive(child_pid),
        "no orphans after a clean stop"
    );
}

#[tokio::test]
async fn a_killed_node_stops_its_orphans_when_it_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let servers = testserver_toml("test", &state, "");
    let baton = start_with(dir.path(), &servers, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    let server_pid = api.get("/v1/servers/test").await.body["pid"]
        .as_u64()
        .unwrap() as u32;
    // A grandchild that does not read stdin: it outlives a killed node (the server itself
    // exits when its stdin closes).
    let id = api.submit(json!({"tool": "test__spawn_child"})).await;
    let orphan = api.wait_final(&id).await["result"]["structuredContent"]["pid"]
        .as_u64()
        .unwrap() as u32;
    baton.kill9();
    eventually(
        "the server exited when its stdin closed",
        Duration::from_secs(10),
        async || !pid_alive(server_pid),
    )
    .await;
    assert!(
        pid_alive(orphan),
        "kill -9 gives the node no chance to stop its processes"
    );
    let baton = start_with(dir.path(), &servers, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    eventually(
        "the previous run's processes are stopped",
        Duration::from_secs(10),
        async || !pid_alive(orphan),
    )
    .await;
}

#[tokio::test]
async fn a_restart_resumes_the_same_upstream_task() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let upstream = HttpTestServer::start(free_port(), &state);
    let servers = format!(
        "[[servers]]\nname = \"remote\"\nurl = \"{}\"\n",
        upstream.url
    );
    let baton = start_with(dir.path(), &servers, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "remote").await;
    let id = api
        .submit(json!({"tool": "remote__task_job", "arguments": {"id": "r1", "duration_ms": 3000}}))
        .await;
    eventually("the upstream task started", LONG, async || {
        state.join("task-r1.started").exists()
    })
    .await;
    // Make sure the upstream task id is durable before the crash: the call's checkpoint
    // names the upstream task.
    let db = dir.path().join("data/baton.db");
    eventually("the upstream task id is stored", LONG, async || {
        sqlite_query(&db, "SELECT checkpoint FROM tasks WHERE id = ?", &[&id])
            .first()
            .is_some_and(|c| c.contains("upstream_task"))
    })
    .await;
    baton.kill9();
    let baton = start_with(dir.path(), &servers, &[]);
    let api = Api::new(&baton.url);
    let task = api.wait_final(&id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(text(&task), "job r1 done");
    assert_eq!(task["attempt"], 2, "the crashed run counted");
    let starts = std::fs::read_to_string(state.join("task-r1.started")).unwrap();
    assert_eq!(
        starts.lines().count(),
        1,
        "the upstream work started once: {starts}"
    );
}

#[tokio::test]
async fn a_failing_server_opens_its_circuit_and_tasks_wait_until_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = free_port();
    let mut upstream = HttpTestServer::start(port, &state);
    let servers = format!(
        "[[servers]]\nname = \"flaky\"\nurl = \"{}\"\n",
        upstream.url
    );
    let baton = start_with(
        dir.path(),
        &servers,
        &[
            ("BATON_UPSTREAM__HEALTH_INTERVAL", "300ms"),
            ("BATON_UPSTREAM__FAILURES_TO_OPEN", "2"),
            ("BATON_UPSTREAM__OPEN_FOR", "1s"),
        ],
    );
    let api = Api::new(&baton.url);
    wait_healthy(&api, "flaky").await;
    upstream.kill();
    eventually("the server is seen failing", LONG, async || {
        let s = api.get("/v1/servers/flaky").await.body;
        s["state"] != "healthy" && s["last_error"].is_string()
    })
    .await;
    let id = api
        .submit(json!({"tool": "flaky__echo", "arguments": {"text": "patience"}}))
        .await;
    // Part of the scenario, not a wait for an event: the server stays down for longer
    // than the circuit's open period (1 s), and the task must still be held back then,
    // with no attempt burnt.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = api.task(&id).await;
    assert_eq!(t["status"], "pending", "held back, not failing: {t}");
    assert_eq!(t["attempt"], 0, "no attempt burnt");
    assert!(
        t["waiting_reason"].as_str().unwrap().contains("flaky"),
        "{t}"
    );
    let _upstream = HttpTestServer::start(port, &state);
    let t = api.wait_final(&id).await;
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(t["attempt"], 1);
    assert_eq!(text(&t), "patience");
}

#[tokio::test]
async fn max_concurrency_holds_across_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let baton = start_with(
        dir.path(),
        &testserver_toml("test", &state, "max_concurrency = 2"),
        &[],
    );
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(
            api.submit(
                json!({"tool": "test__slow", "arguments": {"duration_ms": 300, "steps": 1}}),
            )
            .await,
        );
    }
    let mut spans = Vec::new();
    for id in &ids {
        let t = api.wait_final(id).await;
        assert_eq!(t["status"], "completed");
        let at = |k: &str| chrono_ms(t[k].as_str().unwrap());
        spans.push((at("started_at"), at("completed_at")));
    }
    for (start, _) in &spans {
        let overlapping = spans
            .iter()
            .filter(|(s, e)| s <= start && start < e)
            .count();
        assert!(overlapping <= 2, "{overlapping} ran at once");
    }
}

fn chrono_ms(rfc3339: &str) -> i64 {
    baton_core::Timestamp::parse_rfc3339(rfc3339)
        .unwrap()
        .as_millis()
}

#[tokio::test]
async fn groups_route_to_the_least_busy_healthy_member() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let servers = format!(
        "{}{}",
        testserver_toml("pool-a", &state, "group = \"pool\""),
        testserver_toml("pool-b", &state, "group = \"pool\"")
    );
    let baton = start_with(dir.path(), &servers, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "pool-a").await;
    wait_healthy(&api, "pool-b").await;
    let groups = api.get("/v1/servers").await.body["groups"].clone();
    assert_eq!(
        groups,
        json!([{"name": "pool", "members": ["pool-a", "pool-b"]}])
    );
    let pid_of = async |name: &str| {
        api.get(&format!("/v1/servers/{name}")).await.body["pid"]
            .as_u64()
            .unwrap()
    };
    let (a, b) = (pid_of("pool-a").await, pid_of("pool-b").await);
    // Keep one member busy; the next call goes to the other one.
    let busy = api
        .submit(json!({"tool": "pool__hang", "arguments": {"id": "g1"}}))
        .await;
    eventually("one member is busy", LONG, async || {
        state.join("hang-g1.started").exists()
    })
    .await;
    let busy_member = if api.get("/v1/servers/pool-a").await.body["in_flight"] == 1 {
        a
    } else {
        b
    };
    let id = api.submit(json!({"tool": "pool__pid"})).await;
    let t = api.wait_final(&id).await;
    let served_by = t["result"]["structuredContent"]["pid"].as_u64().unwrap();
    assert_ne!(served_by, busy_member, "went to the idle member");
    assert!(served_by == a || served_by == b);
    api.delete(&format!("/v1/tasks/{busy}")).await;
}

#[tokio::test]
async fn servers_api_persists_discovers_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let upstream = HttpTestServer::start(free_port(), &state);
    let baton = start_with(dir.path(), &everything_toml(), &[]);
    let api = Api::new(&baton.url);
    let secret = "s3cret-token-value";
    let r = api
        .post(
            "/v1/servers",
            json!({"name": "remote", "url": upstream.url, "headers": {"Authorization": format!("Bearer {secret}")},
                   "tags": ["research", "remote"], "max_concurrency": 3}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["state"], "healthy");
    assert_eq!(r.body["protocol_version"], "2026-07-28");
    assert!(r.body["tool_count"].as_u64().unwrap() >= 10);
    assert_eq!(r.body["config"]["headers"]["Authorization"], "***");
    // Discovery by capability.
    let by_tag = |tag: &'static str| {
        let api = api.clone();
        async move {
            let r = api.get(&format!("/v1/servers?tag={tag}")).await;
            r.body["servers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(by_tag("research").await, vec!["everything", "remote"]);
    assert_eq!(by_tag("remote").await, vec!["remote"]);
    assert!(by_tag("nothing").await.is_empty());
    // The catalog includes its tools with their schemas.
    let tools = api.get("/v1/tools").await.body;
    let echo = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "remote__echo")
        .unwrap()
        .clone();
    assert_eq!(echo["server"], "remote");
    assert!(echo["input_schema"]["properties"]["text"].is_object());
    let id = api
        .submit(json!({"tool": "remote__echo", "arguments": {"text": "over http"}}))
        .await;
    assert_eq!(text(&api.wait_final(&id).await), "over http");
    // Registered at runtime: survives a restart.
    assert!(baton.terminate().success());
    let baton = start_with(dir.path(), &everything_toml(), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "remote").await;
    // At rest the header is sealed under a key generated in the data directory, which
    // only its owner may read.
    let data = dir.path().join("data");
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret in plain text in {}",
            path.display()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(data.join("secret.key").exists());
    let everything = api.delete("/v1/servers/everything").await;
    assert_eq!(
        everything.status, 409,
        "config-file servers are removed in the config file"
    );
    assert_eq!(api.delete("/v1/servers/remote").await.status, 200);
    assert!(baton.terminate().success());
    let baton = start_with(dir.path(), &everything_toml(), &[]);
    let api = Api::new(&baton.url);
    assert_eq!(
        api.get("/v1/servers/remote").await.status,
        404,
        "removal is durable too"
    );
    // The secret never appeared in any answer or log line.
    let log = baton.log_text();
    assert!(!log.contains(secret), "secret in the log");
    let all = api.get("/v1/servers").await.body.to_string();
    assert!(!all.contains(secret));
}

#[tokio::test]
async fn tool_list_changes_reach_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let upstream = HttpTestServer::start(free_port(), &state);
    let servers = format!(
        "{}[[servers]]\nname = \"remote\"\nurl = \"{}\"\n",
        testserver_toml("local", &state, ""),
        upstream.url
    );
    let baton = start_with(dir.path(), &servers, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "local").await;
    wait_healthy(&api, "remote").await;
    // A 2025-11-25 session (stdio, legacy notification) and a 2026-07-28 one (HTTP, on a
    // subscriptions/listen stream).
    for (server, tool) in [("local", "brand_new"), ("remote", "remote_new")] {
        let id = api
            .submit(json!({"tool": format!("{server}__add_tool"), "arguments": {"name": tool}}))
            .await;
        api.wait_final(&id).await;
        let qualified = format!("{server}__{tool}");
        eventually(&format!("{qualified} in the catalog"), LONG, async || {
            api.get("/v1/tools")
                .await
                .body
                .to_string()
                .contains(&qualified)
        })
        .await;
        let id = api
            .submit(json!({"tool": qualified, "arguments": {"text": "hi"}}))
            .await;
        assert_eq!(api.wait_final(&id).await["status"], "completed");
    }
}

#[tokio::test]
async fn bad_upstream_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let baton = start_with(dir.path(), &testserver_toml("test", &state, ""), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    let cases = [
        (json!({"tool": "nope__echo"}), "no server named `nope`"),
        (json!({"tool": "test__nope"}), "unknown tool `test__nope`"),
        (
            json!({"tool": "test__strict", "arguments": {"name": "ABC", "count": 11, "mode": "x"}}),
            "/count",
        ),
        (
            json!({"tool": "test__strict", "arguments": {"name": "abc", "count": 1}}),
            "mode",
        ),
    ];
    for (body, fragment) in cases {
        let r = api.post("/v1/tasks", body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.error_message().contains(fragment), "{body}: {}", r.body);
    }
    let servers = [
        (
            json!({"name": "ghost", "command": "/no/such/program"}),
            400,
            "No such file",
        ),
        (
            json!({"name": "far", "url": format!("http://127.0.0.1:{}/mcp", free_port())}),
            400,
            "far",
        ),
        (
            json!({"name": "both", "command": "x", "url": "http://127.0.0.1:1/mcp"}),
            400,
            "not both",
        ),
        (json!({"name": "Bad Name", "command": "x"}), 400, "name"),
        (
            json!({"name": "test", "command": "x"}),
            409,
            "already exists",
        ),
        (
            json!({"name": "x", "command": "y", "colour": "red"}),
            400,
            "colour",
        ),
    ];
    for (body, status, fragment) in servers {
        let r = api.post("/v1/servers", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.error_message().contains(fragment), "{body}: {}", r.body);
    }
    let names: Vec<String> = api.get("/v1/servers").await.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["test"], "nothing half-registered");
    assert_eq!(api.get("/v1/servers/nope").await.status, 404);
    assert_eq!(api.delete("/v1/servers/nope").await.status, 404);
}

/// A new attempt after a failure or a timeout starts a new upstream task; only a restart
/// of the same attempt resumes the old one. The checkpoint (the upstream task id) used to
/// outlive its attempt: the second attempt of a timed-out call resumed the cancelled
/// upstream task and failed `upstream_cancelled`, and a retry by hand re-read the old
/// failed result without calling the tool.
#[tokio::test]
async fn each_attempt_of_an_upstream_task_call_starts_a_new_upstream_task() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let baton = start_with(dir.path(), &testserver_toml("test", &state, ""), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    let starts = |id: &str| {
        std::fs::read_to_string(state.join(format!("task-{id}.started")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let id = api
        .submit(
            json!({"tool": "test__task_job", "arguments": {"id": "to", "duration_ms": 60000},
                       "timeout_ms": 500, "max_attempts": 2}),
        )
        .await;
    let t = api.wait_final(&id).await;
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["attempt"], 2, "{t}");
    assert_eq!(
        t["error"]["code"], "timeout",
        "the second attempt timed out too: {t}"
    );
    assert_eq!(starts("to"), 2, "each attempt created its upstream task");
    // A retry by hand calls the tool again.
    let r = api
        .post(&format!("/v1/tasks/{id}/retry"), json!(null))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    eventually("the retry started a new upstream task", LONG, async || {
        starts("to") == 3
    })
    .await;
    let t = api.wait_final(&id).await;
    assert_eq!(t["error"]["code"], "timeout", "{t}");
}
