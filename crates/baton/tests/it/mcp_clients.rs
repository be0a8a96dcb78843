//! Baton as an MCP server, driven by real MCP clients: the official TypeScript SDK (1.x,
//! protocol 2025-11-25 with experimental tasks), rmcp (3.x, protocol 2026-07-28 with the
//! tasks extension) over Streamable HTTP and over stdio (`baton mcp`), and the MCP
//! Inspector CLI. Upstreams are the repository's `baton-testserver` and the official
//! `server-everything`.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Api, Baton, everything_bin, repo_root, testserver_bin, wait_healthy};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, ClientCapabilities, ClientConfig,
    ElicitRequestParams, ElicitResult, ElicitationAction, ErrorData, GetTaskParams, Implementation,
    InputResponses, JsonObject, ProtocolVersion, ServerNotification, SubscriptionFilter,
    TaskPayload, TaskStatus, UpdateTaskParams,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

fn config_toml(dir: &Path, everything: bool) -> String {
    let mut toml = format!(
        "[[servers]]\nname = \"ts\"\ncommand = \"{}\"\nargs = [\"--state-dir\", \"{}\"]\n",
        testserver_bin().display(),
        dir.join("ts-state").display()
    );
    if everything {
        toml.push_str(&format!(
            "\n[[servers]]\nname = \"everything\"\ncommand = \"{}\"\nargs = [\"stdio\"]\n",
            everything_bin().display()
        ));
    }
    toml
}

/// A node with the test server (and server-everything) as upstreams.
fn start(dir: &Path, everything: bool, env: &[(&str, &str)]) -> Baton {
    let config = dir.join("baton.toml");
    std::fs::write(&config, config_toml(dir, everything)).unwrap();
    let config = config.to_string_lossy().to_string();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("BATON_CONFIG", &config));
    Baton::start(&dir.join("data"), &env)
}

/// Runs the TypeScript SDK client script; returns what it printed last.
fn ts_client(url: &str, scenario: &str, args: Value) -> Value {
    let out = Command::new("node")
        .arg(repo_root().join("test-support/node/ts-client.mjs"))
        .args([&format!("{url}/mcp"), scenario, &args.to_string()])
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "ts-client {scenario} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().expect("output")).expect("JSON output")
}

fn task_id_in(message: &str) -> String {
    let at = message.find("task ").expect("message names the task") + 5;
    message[at..at + 36].to_string()
}

#[tokio::test]
async fn typescript_sdk_lists_calls_and_runs_2025_11_25_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), true, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "ts").await;
    wait_healthy(&api, "everything").await;
    let url = baton.url.clone();

    // tools/list: every upstream tool under its qualified name, runnable as a task; the
    // orchestration tools with output schemas.
    let listed = tokio::task::spawn_blocking({
        let url = url.clone();
        move || ts_client(&url, "list", json!({}))
    })
    .await
    .unwrap();
    assert_eq!(listed["protocolVersion"], "2025-11-25");
    assert!(listed["capabilities"]["tasks"]["requests"]["tools"]["call"].is_object());
    let tools = listed["tools"].as_array().unwrap();
    let tool = |name: &str| {
        tools
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"))
            .clone()
    };
    let echo = tool("ts__echo");
    assert_eq!(echo["execution"]["taskSupport"], "optional");
    assert_eq!(echo["inputSchema"]["properties"]["text"]["type"], "string");
    let research = tool("everything__simulate-research-query");
    assert_eq!(research["execution"]["taskSupport"], "optional");
    assert_eq!(
        tool("everything__get-structured-content")["outputSchema"]["type"],
        "object"
    );
    for name in [
        "task_submit",
        "task_status",
        "task_result",
        "task_cancel",
        "task_list",
        "queue_stats",
        "server_list",
    ] {
        let t = tool(name);
        assert_eq!(t["execution"]["taskSupport"], "forbidden", "{name}");
        assert_eq!(t["outputSchema"]["type"], "object", "{name}");
    }

    // A plain call waits for its task, with progress that names the task.
    let called = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            ts_client(
                &url,
                "call",
                json!({"tool": "baton__sleep", "arguments": {"ms": 600, "steps": 3}}),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(called["result"]["structuredContent"]["slept_ms"], 600);
    let progress = called["progress"].as_array().unwrap();
    assert!(progress.len() >= 4, "progress: {progress:?}");
    let values: Vec<f64> = progress
        .iter()
        .map(|p| p["progress"].as_f64().unwrap())
        .collect();
    assert!(
        values.windows(2).all(|w| w[1] > w[0]),
        "progress grows: {values:?}"
    );
    assert!(
        progress
            .iter()
            .any(|p| p["message"].as_str().unwrap().contains("step 2 of 3"))
    );
    let id = task_id_in(progress[0]["message"].as_str().unwrap());
    // The same task through REST.
    let t = api.task(&id).await;
    assert_eq!(t["status"], "completed");
    assert_eq!(t["tool"], "baton__sleep");

    // A 2025-11-25 task, polled to its result.
    let tasked = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            ts_client(
                &url,
                "task",
                json!({"tool": "ts__slow", "arguments": {"duration_ms": 300, "steps": 2}}),
            )
        }
    })
    .await
    .unwrap();
    let messages = tasked["messages"].as_array().unwrap();
    assert_eq!(messages[0]["type"], "taskCreated", "{messages:?}");
    let last = messages.last().unwrap();
    assert_eq!(last["type"], "result", "{messages:?}");
    assert_eq!(last["result"]["content"][0]["text"], "done after 300 ms");
    let id = messages[0]["task"]["taskId"].as_str().unwrap();
    assert_eq!(
        last["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        id
    );
    assert_eq!(tasked["get"]["status"], "completed");
    assert!(
        tasked["list"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["taskId"] == id)
    );
    assert_eq!(api.task(id).await["status"], "completed");

    // A task that needs input: the question comes as an elicitation on tasks/result
    // (tagged with the task), the answer reaches server-everything.
    let asked = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            ts_client(
                &url,
                "task",
                json!({
                    "tool": "everything__simulate-research-query",
                    "arguments": {"topic": "python", "ambiguous": true},
                    "answer": {"interpretation": "snake"}
                }),
            )
        }
    })
    .await
    .unwrap();
    let elicitations = asked["elicitations"].as_array().unwrap();
    assert_eq!(elicitations.len(), 1, "{asked}");
    let id = asked["messages"][0]["task"]["taskId"].as_str().unwrap();
    assert_eq!(
        elicitations[0]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        id
    );
    let report =
        asked["messages"].as_array().unwrap().last().unwrap()["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_lowercase();
    assert!(report.contains("snake"), "{report}");

    // Cancelling a task: it says cancelled at once; a second cancel is an error.
    let cancelled = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            ts_client(
                &url,
                "cancel",
                json!({"tool": "baton__sleep", "arguments": {"ms": 30000}}),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(cancelled["cancelled"]["status"], "cancelled");
    assert_eq!(cancelled["get"]["status"], "cancelled");
    assert_eq!(cancelled["secondCancel"]["code"], -32602);
    let id = cancelled["created"]["task"]["taskId"].as_str().unwrap();
    assert_eq!(api.wait_final(id).await["status"], "cancelled");
}

#[tokio::test]
async fn typescript_sdk_hears_upstream_logs_and_tool_list_changes() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), false, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "ts").await;
    let url = baton.url.clone();

    // The upstream's log messages reach the client that made the call.
    let called = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            ts_client(
                &url,
                "call",
                json!({"tool": "ts__log", "arguments": {"messages": ["first", "second"]}}),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(called["result"]["content"][0]["text"], "logged 2");
    let logs: Vec<&Value> = called["logs"].as_array().unwrap().iter().collect();
    assert_eq!(logs.len(), 2, "{called}");
    assert_eq!(logs[0]["data"], "first");
    assert_eq!(logs[0]["level"], "info");
    assert_eq!(logs[0]["logger"], "baton-testserver");

    // A server added through REST: the session's stream announces the new tools.
    let mut child = std::process::Command::new("node")
        .arg(repo_root().join("test-support/node/ts-client.mjs"))
        .args([
            &format!("{url}/mcp"),
            "watch",
            r#"{"expect": "more__echo"}"#,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let ready = tokio::task::spawn_blocking(move || {
        let first = lines.next().unwrap().unwrap();
        (first, lines)
    })
    .await
    .unwrap();
    assert_eq!(ready.0, r#"{"ready":true}"#);
    let added = api
        .post(
            "/v1/servers",
            json!({"name": "more", "command": testserver_bin(), "args": ["--state-dir", dir.path().join("more")]}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let mut lines = ready.1;
    let out = tokio::task::spawn_blocking(move || lines.next().unwrap().unwrap())
        .await
        .unwrap();
    assert!(child.wait().unwrap().success());
    let out: Value = serde_json::from_str(&out).unwrap();
    assert!(out["changes"].as_u64().unwrap() >= 1, "{out}");
    assert!(
        out["after"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "more__echo"),
        "{out}"
    );
}

// ---- rmcp, protocol 2026-07-28 with the tasks extension ------------------------------

/// A 2026-07-28 client; answers elicitations with `answer`.
#[derive(Clone)]
struct Rmcp {
    config: ClientConfig,
    answer: Value,
    asked: Arc<Mutex<Vec<Value>>>,
}

impl Rmcp {
    fn new(tasks: bool) -> Rmcp {
        let mut caps = ClientCapabilities::builder().enable_elicitation();
        if tasks {
            caps = caps.enable_tasks();
        }
        Rmcp {
            config: ClientConfig::new(caps.build(), Implementation::new("baton-tests", "1.0.0"))
                .with_protocol_version(ProtocolVersion::V_2026_07_28),
            answer: json!({"answer": "forty-two"}),
            asked: Arc::default(),
        }
    }
}

impl ClientHandler for Rmcp {
    fn get_info(&self) -> ClientConfig {
        self.config.clone()
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.asked
            .lock()
            .unwrap()
            .push(serde_json::to_value(&request).unwrap());
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(self.answer.clone()))
    }
}

type Client = RunningService<RoleClient, Rmcp>;

fn discover() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

async fn http_client(url: &str, handler: Rmcp) -> Client {
    let transport = StreamableHttpClientTransport::from_uri(format!("{url}/mcp"));
    handler
        .serve_with_lifecycle(transport, discover())
        .await
        .expect("rmcp client connects")
}

fn call(name: &str, arguments: Value) -> CallToolRequestParams {
    let Value::Object(args) = arguments else {
        panic!("arguments must be an object")
    };
    CallToolRequestParams::new(name.to_string()).with_arguments(args as JsonObject)
}

async fn start_task(client: &Client, name: &str, arguments: Value) -> String {
    match client.call_tool_once(call(name, arguments)).await.unwrap() {
        CallToolResponse::Task(created) => created.task.task_id,
        other => panic!("expected a task, got {other:?}"),
    }
}

async fn poll(client: &Client, id: &str, until: TaskStatus) -> TaskPayload {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let got = client
            .get_task(GetTaskParams::new(id.to_string()))
            .await
            .unwrap();
        if got.task.task.status == until {
            return got.task.payload;
        }
        assert!(
            !got.task.task.status.is_terminal(),
            "task ended {:?}, wanted {until:?}: {:?}",
            got.task.task.status,
            got.task.payload
        );
        assert!(std::time::Instant::now() < deadline, "never {until:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn completed_text(payload: &TaskPayload) -> String {
    let TaskPayload::Completed { result } = payload else {
        panic!("not completed: {payload:?}")
    };
    result["content"][0]["text"].as_str().unwrap().to_string()
}

/// Create, get, answer input, cancel: the extension's flows end to end.
async fn check_extension_tasks(client: &Client, api: &Api, prefix: &str) {
    let info = client.peer_info().expect("discovered");
    assert_eq!(info.protocol_version, ProtocolVersion::V_2026_07_28);
    assert!(info.capabilities.supports_tasks());
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "ts__task_job"));
    assert!(tools.iter().any(|t| t.name == "task_result"));

    // Created at once, completed in the background.
    let id = start_task(
        client,
        "ts__task_job",
        json!({"id": format!("{prefix}-plain"), "duration_ms": 200}),
    )
    .await;
    let payload = poll(client, &id, TaskStatus::Completed).await;
    assert_eq!(completed_text(&payload), format!("job {prefix}-plain done"));
    assert_eq!(api.task(&id).await["status"], "completed");

    // input_required: the upstream's question is shown and answered with tasks/update.
    let id = start_task(
        client,
        "ts__task_job",
        json!({"id": format!("{prefix}-ask"), "duration_ms": 0, "ask": true}),
    )
    .await;
    let TaskPayload::InputRequired { input_requests } =
        poll(client, &id, TaskStatus::InputRequired).await
    else {
        unreachable!()
    };
    assert_eq!(input_requests.len(), 1);
    let (key, request) = input_requests.iter().next().unwrap();
    let request = serde_json::to_value(request).unwrap();
    assert_eq!(request["method"], "elicitation/create");
    let mut responses = InputResponses::new();
    responses.insert(
        key.clone(),
        json!({"action": "accept", "content": {"answer": "forty-two"}}),
    );
    client
        .update_task(UpdateTaskParams::new(id.clone(), responses))
        .await
        .unwrap();
    let payload = poll(client, &id, TaskStatus::Completed).await;
    assert_eq!(
        completed_text(&payload),
        format!("job {prefix}-ask answered: forty-two")
    );

    // Cancelled: acknowledged, then the task ends cancelled.
    let id = start_task(client, "baton__sleep", json!({"ms": 30000})).await;
    client
        .cancel_task(CancelTaskParams::new(id.clone()))
        .await
        .unwrap();
    poll(client, &id, TaskStatus::Cancelled).await;
    assert_eq!(api.task(&id).await["status"], "cancelled");
}

#[tokio::test]
async fn rmcp_client_over_http_uses_the_tasks_extension() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), false, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "ts").await;
    let client = http_client(&baton.url, Rmcp::new(true)).await;
    check_extension_tasks(&client, &api, "http").await;

    // A client without the extension gets plain results; a task's question comes as an
    // input round (MRTR) that rmcp answers through its handler.
    let handler = Rmcp::new(false);
    let asked = handler.asked.clone();
    let plain = http_client(&baton.url, handler).await;
    let result = plain
        .call_tool(call(
            "ts__task_job",
            json!({"id": "mrtr", "duration_ms": 0, "ask": true}),
        ))
        .await;
    // Without the extension Baton still runs a durable task, and the upstream (which
    // Baton calls with the extension) asks; the question reaches this client as a round.
    let result = result.expect("call completes");
    assert_eq!(
        result.content[0].as_text().unwrap().text,
        "job mrtr answered: forty-two"
    );
    assert_eq!(asked.lock().unwrap().len(), 1);
    // Without the extension, tasks/get is refused with the missing capability.
    let err = plain
        .get_task(GetTaskParams::new("01a1fe74-ab42-7e09-a392-c0f41b2fd7ee"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("-32021") || err.to_string().contains("capability"),
        "{err}"
    );

    // tools list changes reach a subscription.
    let mut sub = client
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .unwrap();
    assert_eq!(sub.acknowledged().tools_list_changed, Some(true));
    let added = api
        .post(
            "/v1/servers",
            json!({"name": "more", "command": testserver_bin(), "args": ["--state-dir", dir.path().join("more")]}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let n = tokio::time::timeout(LONG, sub.next())
        .await
        .expect("a notification")
        .unwrap()
        .expect("not ended");
    assert!(
        matches!(n, ServerNotification::ToolListChangedNotification(_)),
        "{n:?}"
    );
    sub.cancel().await.unwrap();
}

#[tokio::test]
async fn rmcp_client_over_stdio_uses_the_tasks_extension() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("baton.toml");
    std::fs::write(&config, config_toml(dir.path(), false)).unwrap();
    let data = dir.path().join("data");
    let cmd = tokio::process::Command::new(crate::common::baton_bin()).configure(|c| {
        c.args(["mcp", "--data-dir"])
            .arg(&data)
            .env("BATON_CONFIG", &config)
            .env_remove("BATON_URL")
            .env("BATON_LOG", "warn");
    });
    let transport = TokioChildProcess::new(cmd).expect("spawn baton mcp");
    let client = Rmcp::new(true)
        .serve_with_lifecycle(transport, discover())
        .await
        .expect("stdio client connects");
    // The stdio node has no HTTP listener; REST assertions go through a second look at
    // the store after it stops, so check through MCP only here.
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let r = client
            .call_tool_once(call("server_list", json!({})))
            .await
            .unwrap();
        let CallToolResponse::Complete(r) = r else {
            panic!("orchestration tools answer at once: {r:?}")
        };
        let servers = r.structured_content.unwrap();
        if servers["servers"][0]["state"] == "healthy" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "ts never healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = start_task(
        &client,
        "ts__task_job",
        json!({"id": "stdio", "duration_ms": 100}),
    )
    .await;
    assert_eq!(
        completed_text(&poll(&client, &id, TaskStatus::Completed).await),
        "job stdio done"
    );
    let id = start_task(
        &client,
        "ts__task_job",
        json!({"id": "stdio-ask", "duration_ms": 0, "ask": true}),
    )
    .await;
    let TaskPayload::InputRequired { input_requests } =
        poll(&client, &id, TaskStatus::InputRequired).await
    else {
        unreachable!()
    };
    let key = input_requests.keys().next().unwrap().clone();
    let mut responses = InputResponses::new();
    responses.insert(
        key,
        json!({"action": "accept", "content": {"answer": "by stdio"}}),
    );
    client
        .update_task(UpdateTaskParams::new(id.clone(), responses))
        .await
        .unwrap();
    assert_eq!(
        completed_text(&poll(&client, &id, TaskStatus::Completed).await),
        "job stdio-ask answered: by stdio"
    );
    let id = start_task(&client, "baton__sleep", json!({"ms": 30000})).await;
    client
        .cancel_task(CancelTaskParams::new(id.clone()))
        .await
        .unwrap();
    poll(&client, &id, TaskStatus::Cancelled).await;
    client.cancel().await.unwrap();

    // Same store, served over HTTP now: the stdio tasks are there.
    let baton = Baton::start(&data, &[("BATON_CONFIG", config.to_str().unwrap())]);
    let api = Api::new(&baton.url);
    assert_eq!(api.task(&id).await["status"], "cancelled");
}

#[tokio::test]
async fn stdio_bridge_relays_to_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), false, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "ts").await;
    let url = baton.url.clone();
    let cmd = tokio::process::Command::new(crate::common::baton_bin()).configure(|c| {
        c.args(["mcp", "--server", &url]).env("BATON_LOG", "warn");
    });
    let transport = TokioChildProcess::new(cmd).expect("spawn baton mcp --server");
    let client = Rmcp::new(true)
        .serve_with_lifecycle(transport, discover())
        .await
        .expect("bridged client connects");
    check_extension_tasks(&client, &api, "bridge").await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_task_survives_a_restart_between_call_and_get() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), false, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "ts").await;
    let client = http_client(&baton.url, Rmcp::new(true)).await;
    let id = start_task(
        &client,
        "ts__task_job",
        json!({"id": "restart", "duration_ms": 1500}),
    )
    .await;
    drop(client);
    // Killed without a chance to clean up, then started again on the same data.
    baton.kill9();
    let baton = start(dir.path(), false, &[]);
    let client = http_client(&baton.url, Rmcp::new(true)).await;
    let payload = poll(&client, &id, TaskStatus::Completed).await;
    assert_eq!(completed_text(&payload), "job restart done");
}

#[tokio::test]
async fn inspector_cli_lists_and_calls_tools() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), false, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "ts").await;
    let node = repo_root().join("test-support/node");
    let inspector = |args: &[&str]| {
        // The CLI resolves its own package.json relative to the working directory's
        // parent, so it runs from inside the npm prefix.
        let out = Command::new(node.join("node_modules/.bin/mcp-inspector-cli"))
            .arg("--cli")
            .arg(format!("{}/mcp", baton.url))
            .args(["--transport", "http"])
            .args(args)
            .current_dir(node.join("node_modules"))
            .output()
            .expect("run mcp-inspector-cli");
        assert!(
            out.status.success(),
            "inspector {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let start = stdout.find('{').expect("JSON output");
        serde_json::from_str::<Value>(&stdout[start..]).expect("JSON output")
    };
    let listed = inspector(&["--method", "tools/list"]);
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"ts__add"), "{names:?}");
    assert!(names.contains(&"task_submit"), "{names:?}");
    let called = inspector(&[
        "--method",
        "tools/call",
        "--tool-name",
        "ts__add",
        "--tool-arg",
        "a=2",
        "b=3",
    ]);
    assert_eq!(
        called["structuredContent"]["sum"].as_f64(),
        Some(5.0),
        "{called}"
    );
    // The orchestration tools work for a host without tasks too.
    let submitted = inspector(&[
        "--method",
        "tools/call",
        "--tool-name",
        "task_submit",
        "--tool-arg",
        "tool=baton__echo",
        r#"arguments={"x":1}"#,
    ]);
    let id = submitted["structuredContent"]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let result = inspector(&[
        "--method",
        "tools/call",
        "--tool-name",
        "task_result",
        "--tool-arg",
        &format!("task_id={id}"),
        "wait_seconds=30",
    ]);
    assert_eq!(
        result["structuredContent"]["status"], "completed",
        "{result}"
    );
    assert_eq!(
        result["structuredContent"]["result"]["structuredContent"]["x"],
        1
    );
}
