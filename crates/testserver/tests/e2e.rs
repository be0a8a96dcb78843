//! End-to-end checks of the real `baton-testserver` binary through rmcp's
//! client: over stdio (legacy initialize and 2026-07-28 discover lifecycles)
//! and over Streamable HTTP (2025-06-18, 2025-11-25 and 2026-07-28).

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use rmcp::{
    ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
        ClientCapabilities, ClientConfig, ClientRequest, GetTaskParams, Implementation,
        InputResponses, JsonObject, ProgressNotificationParam, ProtocolVersion, Request,
        RequestMetaObject, ServerNotification, ServerResult, SubscriptionFilter, TaskPayload,
        TaskStatus, UpdateTaskParams,
    },
    service::{NotificationContext, PeerRequestOptions, RunningService},
    transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess},
};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

const BIN: &str = env!("CARGO_BIN_EXE_baton-testserver");
const WAIT: Duration = Duration::from_secs(10);

type Client = RunningService<RoleClient, Recorder>;

/// A client handler that records the notifications the tests look at.
#[derive(Clone, Default)]
struct Recorder {
    config: ClientConfig,
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    logs: Arc<Mutex<Vec<Value>>>,
    tool_list_changed: Arc<Mutex<usize>>,
}

impl Recorder {
    fn new(version: ProtocolVersion, capabilities: ClientCapabilities) -> Self {
        Self {
            config: ClientConfig::new(capabilities, Implementation::new("e2e", "0.0.0"))
                .with_protocol_version(version),
            ..Self::default()
        }
    }

    fn progress_for(&self, token: &rmcp::model::ProgressToken) -> Vec<ProgressNotificationParam> {
        let all = self.progress.lock().unwrap();
        all.iter()
            .filter(|p| &p.progress_token == token)
            .cloned()
            .collect()
    }
}

// Logging is deprecated by SEP-2577 but still delivered.
#[expect(deprecated)]
impl ClientHandler for Recorder {
    fn get_info(&self) -> ClientConfig {
        self.config.clone()
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }

    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        assert_eq!(params.logger.as_deref(), Some("baton-testserver"));
        assert_eq!(params.level, rmcp::model::LoggingLevel::Info);
        self.logs.lock().unwrap().push(params.data);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        *self.tool_list_changed.lock().unwrap() += 1;
    }
}

fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => panic!("arguments must be an object"),
    }
}

fn call(name: &'static str, arguments: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name).with_arguments(args(arguments))
}

fn text(result: &CallToolResult) -> &str {
    &result.content[0]
        .as_text()
        .expect("first block is text")
        .text
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_file(path: &Path) {
    eventually(&path.display().to_string(), || path.exists()).await;
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

fn legacy(version: ProtocolVersion) -> Recorder {
    Recorder::new(version, ClientCapabilities::default())
}

fn modern() -> Recorder {
    Recorder::new(
        ProtocolVersion::V_2026_07_28,
        ClientCapabilities::builder().enable_tasks().build(),
    )
}

fn discover() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

fn server_command(state: &Path, extra: &[&str]) -> tokio::process::Command {
    tokio::process::Command::new(BIN).configure(|cmd| {
        cmd.arg("--state-dir")
            .arg(state)
            .args(extra)
            .env("RUST_LOG", "error");
    })
}

async fn stdio_client(
    handler: Recorder,
    lifecycle: ClientLifecycleMode,
    cmd: tokio::process::Command,
) -> (Client, u32) {
    let transport = TokioChildProcess::new(cmd).expect("spawn server");
    let pid = transport.id().expect("server pid");
    let client = handler
        .serve_with_lifecycle(transport, lifecycle)
        .await
        .expect("client starts");
    (client, pid)
}

/// Calls `slow` and checks its progress notifications and result.
async fn check_slow_progress(client: &Client) {
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(call(
                "slow",
                json!({"duration_ms": 150, "steps": 3}),
            ))),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    let token = handle.progress_token.clone();
    let ServerResult::CallToolResult(result) = handle.await_response().await.unwrap() else {
        panic!("slow must return a tool result")
    };
    assert_eq!(text(&result), "done after 150 ms");
    let recorder = client.service();
    eventually("3 progress notifications", || {
        recorder.progress_for(&token).len() == 3
    })
    .await;
    let progress = recorder.progress_for(&token);
    for (i, p) in progress.iter().enumerate() {
        let step = i + 1;
        assert_eq!(p.progress, step as f64);
        assert_eq!(p.total, Some(3.0));
        assert_eq!(
            p.message.as_deref(),
            Some(format!("step {step} of 3").as_str())
        );
    }
}

/// Starts `hang`, waits until the server recorded it, cancels it, and waits
/// for the server to record the cancellation.
async fn check_hang_cancel(client: &Client, state: &Path, id: &str) {
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(call("hang", json!({"id": id})))),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    wait_for_file(&state.join(format!("hang-{id}.started"))).await;
    assert!(!state.join(format!("hang-{id}.cancelled")).exists());
    handle.cancel(Some("test cancels".into())).await.unwrap();
    wait_for_file(&state.join(format!("hang-{id}.cancelled"))).await;
}

/// Polls `tasks/get` until the task is terminal or asks for input.
async fn poll_task(client: &Client, task_id: &str, until: TaskStatus) -> TaskPayload {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = client
            .get_task(GetTaskParams::new(task_id.to_owned()))
            .await
            .unwrap();
        if got.task.task.status == until {
            return got.task.payload;
        }
        assert!(
            !got.task.task.status.is_terminal(),
            "task ended as {:?}, wanted {until:?}: {:?}",
            got.task.task.status,
            got.task.payload
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "task never reached {until:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_task(client: &Client, arguments: Value) -> String {
    match client
        .call_tool_once(call("task_job", arguments))
        .await
        .unwrap()
    {
        CallToolResponse::Task(created) => {
            assert_eq!(created.task.status, TaskStatus::Working);
            created.task.task_id
        }
        other => panic!("expected a task, got {other:?}"),
    }
}

fn completed_text(payload: &TaskPayload) -> String {
    let TaskPayload::Completed { result } = payload else {
        panic!("not completed: {payload:?}")
    };
    result["content"][0]["text"].as_str().unwrap().to_owned()
}

/// The task flows of the 2026-07-28 tasks extension: plain, with input, cancelled.
async fn check_tasks(client: &Client, state: &Path, prefix: &str) {
    // Runs in the background and completes.
    let id = format!("{prefix}-plain");
    let task = start_task(client, json!({"id": id, "duration_ms": 200})).await;
    let payload = poll_task(client, &task, TaskStatus::Completed).await;
    assert_eq!(completed_text(&payload), format!("job {id} done"));
    assert_eq!(line_count(&state.join(format!("task-{id}.started"))), 1);

    // input_required, answered through tasks/update.
    let id = format!("{prefix}-ask");
    let task = start_task(client, json!({"id": id, "duration_ms": 0, "ask": true})).await;
    let TaskPayload::InputRequired { input_requests } =
        poll_task(client, &task, TaskStatus::InputRequired).await
    else {
        unreachable!()
    };
    let request = serde_json::to_value(&input_requests["answer"]).unwrap();
    assert_eq!(request["method"], "elicitation/create");
    assert_eq!(
        request["params"]["requestedSchema"]["properties"]["answer"]["type"],
        "string"
    );
    let mut responses = InputResponses::new();
    responses.insert(
        "answer".into(),
        json!({"action": "accept", "content": {"answer": "forty-two"}}),
    );
    client
        .update_task(UpdateTaskParams::new(task.clone(), responses))
        .await
        .unwrap();
    let payload = poll_task(client, &task, TaskStatus::Completed).await;
    assert_eq!(
        completed_text(&payload),
        format!("job {id} answered: forty-two")
    );

    // tasks/cancel stops a long job.
    let id = format!("{prefix}-cancel");
    let task = start_task(client, json!({"id": id, "duration_ms": 600_000})).await;
    wait_for_file(&state.join(format!("task-{id}.started"))).await;
    client
        .cancel_task(CancelTaskParams::new(task.clone()))
        .await
        .unwrap();
    poll_task(client, &task, TaskStatus::Cancelled).await;
    wait_for_file(&state.join(format!("task-{id}.cancelled"))).await;
}

#[cfg(target_os = "linux")]
fn process_group_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command: state, ppid, pgrp, ...
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(2).unwrap().parse().unwrap()
}

#[tokio::test]
async fn stdio_legacy_session() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let mut cmd = server_command(state, &["--name", "upstream-a"]);
    // Its own process group, so spawn_child's group can be checked.
    cmd.process_group(0);
    let (client, pid) = stdio_client(
        legacy(ProtocolVersion::V_2025_11_25),
        ClientLifecycleMode::Initialize,
        cmd,
    )
    .await;

    let info = client.peer_info().unwrap();
    assert_eq!(info.protocol_version, ProtocolVersion::V_2025_11_25);
    assert_eq!(info.server_info.as_ref().unwrap().name, "upstream-a");
    assert!(info.capabilities.logging.is_some());
    assert_eq!(
        std::fs::read_to_string(state.join("pid")).unwrap(),
        pid.to_string()
    );

    // tools/list
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "echo",
            "add",
            "slow",
            "hang",
            "crash",
            "flaky",
            "strict",
            "fail_tool",
            "rich",
            "log",
            "pid",
            "spawn_child",
            "add_tool",
            "task_job"
        ]
    );
    let strict = tools.iter().find(|t| t.name == "strict").unwrap();
    assert_eq!(strict.input_schema["additionalProperties"], json!(false));
    assert_eq!(
        strict.input_schema["required"],
        json!(["name", "count", "mode"])
    );

    // Plain results.
    let echo = client
        .call_tool(call("echo", json!({"text": "hello"})))
        .await
        .unwrap();
    assert_eq!(text(&echo), "hello");
    assert_eq!(echo.structured_content, Some(json!({"text": "hello"})));
    let sum = client
        .call_tool(call("add", json!({"a": 2, "b": 3.5})))
        .await
        .unwrap();
    assert_eq!(text(&sum), "5.5");
    assert_eq!(sum.structured_content, Some(json!({"sum": 5.5})));
    let failed = client
        .call_tool(call("fail_tool", json!({"message": "boom"})))
        .await
        .unwrap();
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(text(&failed), "boom");
    let ok = client
        .call_tool(call(
            "strict",
            json!({"name": "abc", "count": 3, "mode": "slow"}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&ok), "name=abc count=3 mode=slow");
    for bad in [
        json!({"name": "ABC", "count": 3, "mode": "slow"}),
        json!({"name": "abc", "count": 11, "mode": "slow"}),
        json!({"name": "abc", "count": 3, "mode": "medium"}),
        json!({"name": "abc", "count": 3}),
        json!({"name": "abc", "count": 3, "mode": "slow", "extra": 1}),
    ] {
        let error = client.call_tool(call("strict", bad)).await.unwrap_err();
        assert!(error.to_string().contains("-32602"), "{error}");
    }

    // rich: every content type, structuredContent and _meta.
    let rich = client.call_tool(call("rich", json!({}))).await.unwrap();
    let rich = serde_json::to_value(&rich).unwrap();
    let kinds: Vec<_> = rich["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["text", "image", "audio", "resource_link", "resource"]
    );
    assert_eq!(rich["content"][1]["mimeType"], "image/png");
    assert_eq!(rich["content"][2]["mimeType"], "audio/wav");
    assert_eq!(rich["content"][3]["uri"], "test://resource/1");
    assert_eq!(
        rich["content"][4]["resource"]["text"],
        "embedded resource text"
    );
    assert_eq!(rich["structuredContent"]["kinds"], json!(kinds));
    assert_eq!(
        rich["_meta"],
        json!({
            "test/meta": "kept",
            "baton/cost": {"usd": 0.0125, "input_tokens": 120, "output_tokens": 48}
        })
    );

    // log → notifications/message
    let logged = client
        .call_tool(call("log", json!({"messages": ["one", "two"]})))
        .await
        .unwrap();
    assert_eq!(text(&logged), "logged 2");
    let recorder = client.service().clone();
    eventually("2 log messages", || {
        recorder.logs.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(*recorder.logs.lock().unwrap(), [json!("one"), json!("two")]);

    check_slow_progress(&client).await;
    check_hang_cancel(&client, state, "h1").await;

    // add_tool → list_changed, then the new tool is listed and callable.
    let added = client
        .call_tool(call("add_tool", json!({"name": "late_tool"})))
        .await
        .unwrap();
    assert_eq!(text(&added), "added tool late_tool");
    eventually("tools/list_changed", || {
        *recorder.tool_list_changed.lock().unwrap() == 1
    })
    .await;
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.last().unwrap().name, "late_tool");
    let late = client
        .call_tool(call("late_tool", json!({"text": "hi"})))
        .await
        .unwrap();
    assert_eq!(text(&late), "hi");

    // task_job without the tasks extension runs synchronously.
    let job = client
        .call_tool(call("task_job", json!({"id": "sync", "duration_ms": 50})))
        .await
        .unwrap();
    assert_eq!(text(&job), "job sync done");
    assert_eq!(line_count(&state.join("task-sync.started")), 1);
    let ask = client
        .call_tool(call(
            "task_job",
            json!({"id": "sync-ask", "duration_ms": 0, "ask": true}),
        ))
        .await
        .unwrap();
    assert_eq!(ask.is_error, Some(true));

    // pid and spawn_child.
    let reported = client.call_tool(call("pid", json!({}))).await.unwrap();
    assert_eq!(reported.structured_content, Some(json!({"pid": pid})));
    let child = client
        .call_tool(call("spawn_child", json!({})))
        .await
        .unwrap();
    let child_pid = child.structured_content.unwrap()["pid"].as_u64().unwrap() as u32;
    #[cfg(target_os = "linux")]
    assert_eq!(
        process_group_of(child_pid),
        pid,
        "sleep is in the server's group"
    );
    let _ = std::process::Command::new("kill")
        .arg(child_pid.to_string())
        .status();

    client.cancel().await.unwrap();
}

#[tokio::test]
async fn stdio_2026_tasks_and_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let (client, _) = stdio_client(modern(), discover(), server_command(state, &[])).await;
    let info = client.peer_info().unwrap();
    assert_eq!(info.protocol_version, ProtocolVersion::V_2026_07_28);
    assert!(info.capabilities.supports_tasks());

    let echo = client
        .call_tool(call("echo", json!({"text": "modern"})))
        .await
        .unwrap();
    assert_eq!(text(&echo), "modern");
    check_slow_progress(&client).await;
    check_hang_cancel(&client, state, "h2").await;
    check_tasks(&client, state, "stdio").await;

    // 2026-07-28 logging needs a per-request logLevel.
    let quiet = client
        .call_tool(call("log", json!({"messages": ["x"]})))
        .await
        .unwrap();
    assert_eq!(text(&quiet), "logged 0");
    let mut meta = RequestMetaObject::new();
    #[expect(deprecated)]
    meta.set_log_level(rmcp::model::LoggingLevel::Info);
    let loud = client
        .send_request_with_option(
            ClientRequest::CallToolRequest(Request::new(call("log", json!({"messages": ["y"]})))),
            PeerRequestOptions::no_options().with_meta(meta),
        )
        .await
        .unwrap()
        .await_response()
        .await
        .unwrap();
    let ServerResult::CallToolResult(loud) = loud else {
        panic!("log must return a tool result")
    };
    assert_eq!(text(&loud), "logged 1");
    let recorder = client.service().clone();
    eventually("1 log message", || recorder.logs.lock().unwrap().len() == 1).await;

    // list_changed arrives on a subscriptions/listen stream.
    let mut subscription = client
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .unwrap();
    assert_eq!(subscription.acknowledged().tools_list_changed, Some(true));
    client
        .call_tool(call("add_tool", json!({"name": "modern_tool"})))
        .await
        .unwrap();
    let notification = tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("list_changed in time")
        .unwrap()
        .expect("subscription still open");
    assert!(matches!(
        notification,
        ServerNotification::ToolListChangedNotification(_)
    ));
    subscription.cancel().await.unwrap();

    client.cancel().await.unwrap();
}

/// The count in flaky-<key> survives restarts: two crashes, then success.
#[tokio::test]
async fn flaky_crashes_then_succeeds_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    for attempt in 1..=3 {
        let (client, _) = stdio_client(
            legacy(ProtocolVersion::V_2025_06_18),
            ClientLifecycleMode::Initialize,
            server_command(state, &[]),
        )
        .await;
        let result = client
            .call_tool(call("flaky", json!({"key": "k1", "failures": 2})))
            .await;
        if attempt <= 2 {
            assert!(
                result.is_err(),
                "attempt {attempt} should crash: {result:?}"
            );
            assert_eq!(
                std::fs::read_to_string(state.join("flaky-k1")).unwrap(),
                attempt.to_string()
            );
        } else {
            assert_eq!(text(&result.unwrap()), "ok after 2 failures");
        }
    }
}

/// `crash` exits with the requested code and never answers the call.
#[test]
fn crash_exits_without_reply() {
    let mut child = std::process::Command::new(BIN)
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "crash", "arguments": {"exit_code": 7}}}),
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    let replies: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7));
    assert_eq!(replies.len(), 1, "only initialize is answered: {replies:?}");
    assert_eq!(replies[0]["id"], 1);
    drop(stdin);
}

struct HttpServer {
    child: tokio::process::Child,
    url: String,
}

async fn http_server(state: &Path) -> HttpServer {
    let mut child = server_command(state, &["--http", "127.0.0.1:0", "--name", "http-up"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("server prints its address")
        .unwrap()
        .expect("a line");
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
        "{url}"
    );
    HttpServer { child, url }
}

#[tokio::test]
async fn http_serves_all_three_protocol_versions() {
    let dir = tempfile::tempdir().unwrap();
    let state: PathBuf = dir.path().to_owned();
    let mut server = http_server(&state).await;

    // 2025-06-18 and 2025-11-25 use initialize and an Mcp-Session-Id session.
    for version in [ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_11_25] {
        let client = legacy(version.clone())
            .serve(StreamableHttpClientTransport::from_uri(server.url.clone()))
            .await
            .unwrap();
        let info = client.peer_info().unwrap();
        assert_eq!(info.protocol_version, version);
        assert_eq!(info.server_info.as_ref().unwrap().name, "http-up");
        let echo = client
            .call_tool(call("echo", json!({"text": version.to_string()})))
            .await
            .unwrap();
        assert_eq!(text(&echo), version.as_str());
        check_slow_progress(&client).await;
        check_hang_cancel(&client, &state, &format!("http-{version}")).await;
        client.cancel().await.unwrap();
    }

    // 2026-07-28: discover, stateless requests, tasks.
    let client = modern()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(server.url.clone()),
            discover(),
        )
        .await
        .unwrap();
    assert_eq!(
        client.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2026_07_28
    );
    let echo = client
        .call_tool(call("echo", json!({"text": "2026"})))
        .await
        .unwrap();
    assert_eq!(text(&echo), "2026");
    check_slow_progress(&client).await;
    check_hang_cancel(&client, &state, "http-2026").await;
    check_tasks(&client, &state, "http").await;
    client.cancel().await.unwrap();

    // The server is still alive and has not printed anything else.
    assert!(server.child.try_wait().unwrap().is_none());
    server.child.kill().await.unwrap();
}
