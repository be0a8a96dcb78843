//! Baton as a complete MCP gateway: the moment after start (calls to servers still
//! connecting wait for them; `/readyz` and `tools/list` say when they are there).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::{Api, Baton, baton_bin, everything_bin, testserver_bin};

const LONG: Duration = Duration::from_secs(60);

/// A config with `slow` (the test server, answering only after `delay_ms`) and, if asked,
/// `everything`.
fn config(dir: &Path, delay_ms: u64, everything: bool) -> std::path::PathBuf {
    let mut toml = format!(
        "[[servers]]\nname = \"slow\"\ncommand = \"{}\"\nargs = [\"--start-delay-ms\", \"{delay_ms}\"]\n",
        testserver_bin().display(),
    );
    if everything {
        toml.push_str(&format!(
            "\n[[servers]]\nname = \"everything\"\ncommand = \"{}\"\nargs = [\"stdio\"]\n",
            everything_bin().display()
        ));
    }
    let path = dir.join("baton.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// `baton mcp` as a one-shot client drives it: newline-delimited JSON-RPC on its stdin.
struct Stdio1 {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    /// Notifications read while waiting for answers.
    notifications: Vec<Value>,
    /// Answers read while waiting for another one.
    answers: std::collections::HashMap<i64, Value>,
}

impl Stdio1 {
    fn spawn(dir: &Path, config: &Path) -> Stdio1 {
        let mut child = tokio::process::Command::new(baton_bin())
            .args(["mcp", "--data-dir"])
            .arg(dir.join("data"))
            .env("BATON_CONFIG", config)
            .env_remove("BATON_URL")
            .env("BATON_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn baton mcp");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Stdio1 {
            child,
            stdin,
            lines,
            notifications: Vec::new(),
            answers: Default::default(),
        }
    }

    async fn send(&mut self, msg: Value) {
        let mut line = msg.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
    }

    /// The response to request `id`, keeping the notifications that came before it (and
    /// other answers, which may come in any order).
    async fn answer(&mut self, id: i64) -> Value {
        if let Some(a) = self.answers.remove(&id) {
            return a;
        }
        loop {
            let line = tokio::time::timeout(LONG, self.lines.next_line())
                .await
                .expect("an answer within a minute")
                .unwrap()
                .expect("baton mcp ended early");
            let msg: Value = serde_json::from_str(&line).expect("one JSON message per line");
            if msg["id"] == json!(id) {
                return msg;
            }
            match msg.get("id").and_then(Value::as_i64) {
                Some(other) => {
                    self.answers.insert(other, msg);
                }
                None => self.notifications.push(msg),
            }
        }
    }
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// A client that starts `baton mcp` and at once calls an upstream tool (as one-shot
/// clients do) gets the tool's answer, not "unknown tool": the call waits for the server
/// to connect. The tool list it asks for holds the servers' tools, and it hears
/// `list_changed` when they arrive.
#[tokio::test]
async fn a_one_shot_stdio_client_calls_an_upstream_tool_on_its_first_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1500, true);
    let mut mcp = Stdio1::spawn(dir.path(), &config);
    mcp.send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "one-shot", "version": "1"}}}),
    )
    .await;
    mcp.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    mcp.send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "slow__echo", "arguments": {"text": "first"}}}),
    )
    .await;
    mcp.send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "everything__echo", "arguments": {"message": "also first"}}}),
    )
    .await;
    let init = mcp.answer(1).await;
    assert!(init["result"]["capabilities"]["tools"]["listChanged"] == true);
    let call = mcp.answer(2).await;
    assert_eq!(
        call["result"]["structuredContent"],
        json!({"text": "first"}),
        "{call}"
    );
    let call = mcp.answer(3).await;
    assert!(
        call["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("also first")),
        "{call}"
    );
    mcp.send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}))
        .await;
    let names = tool_names(&mcp.answer(4).await);
    assert!(names.contains(&"slow__echo".to_string()), "{names:?}");
    assert!(names.contains(&"everything__echo".to_string()), "{names:?}");
    assert!(
        mcp.notifications
            .iter()
            .any(|n| n["method"] == "notifications/tools/list_changed"),
        "servers connecting after the handshake are announced: {:?}",
        mcp.notifications
    );
    // A fresh client whose first request is `tools/list`: the answer waits for the
    // servers instead of listing only Baton's own tools.
    drop(mcp);
    let dir2 = tempfile::tempdir().unwrap();
    let config = self::config(dir2.path(), 1500, false);
    let mut mcp = Stdio1::spawn(dir2.path(), &config);
    mcp.send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "one-shot", "version": "1"}}}),
    )
    .await;
    mcp.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    let names = tool_names(&mcp.answer(2).await);
    assert!(names.contains(&"slow__echo".to_string()), "{names:?}");
    mcp.child.kill().await.unwrap();
}

/// Over REST: while a configured server connects, `/readyz` answers 503 naming it, a call
/// to it is accepted and waits (with a `waiting_reason`), and a call to a tool the server
/// turns out not to have fails once, clearly, without retries.
#[tokio::test]
async fn a_node_is_ready_once_its_servers_have_connected() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 4000, false);
    let baton = Baton::start(
        &dir.path().join("data"),
        &[("BATON_CONFIG", config.to_str().unwrap())],
    );
    let api = Api::new(&baton.url);
    let ready = api.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.error_message().contains("slow"),
        "names the server: {}",
        ready.body
    );
    let echo = api
        .submit(json!({"tool": "slow__echo", "arguments": {"text": "waited"}}))
        .await;
    let typo = api
        .submit(json!({"tool": "slow__ecko", "arguments": {}}))
        .await;
    let pending = api.task(&echo).await;
    assert_eq!(pending["status"], "pending", "{pending}");
    assert!(
        pending["waiting_reason"]
            .as_str()
            .is_some_and(|r| r.contains("`slow` is connecting")),
        "{pending}"
    );
    let done = api.wait_final(&echo).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["structuredContent"]["text"], "waited");
    let failed = api.wait_final(&typo).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["attempt"], 1, "not retried: {failed}");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("unknown tool `slow__ecko`") && message.contains("slow__echo"),
        "{message}"
    );
    let ready = api.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    // Once the server is known, a wrong name is refused at the door again.
    let refused = api
        .post("/v1/tasks", json!({"tool": "slow__ecko", "arguments": {}}))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
}

/// Runs the TypeScript SDK client script against `target` (an MCP URL, or `stdio:` and
/// a JSON command line); returns what it printed last.
fn ts(target: &str, scenario: &str, args: Value) -> Value {
    let out = std::process::Command::new("node")
        .arg(crate::common::repo_root().join("test-support/node/ts-client.mjs"))
        .args([target, scenario, &args.to_string()])
        .env("BATON_LOG", "warn")
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

fn everything_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let toml = format!(
        "{extra}\n[[servers]]\nname = \"everything\"\ncommand = \"{}\"\nargs = [\"stdio\"]\n",
        everything_bin().display()
    );
    let path = dir.join("baton.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn texts(result: &Value) -> String {
    result["content"]
        .as_array()
        .expect("content")
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks that a client relayed one sampling and one elicitation request of
/// server-everything, made during plain calls, and that the tools got its answers.
fn check_relayed(target: &str) {
    let sampled = ts(
        target,
        "call",
        json!({"tool": "everything__trigger-sampling-request",
               "arguments": {"prompt": "name a colour", "maxTokens": 5},
               "sample": "ultramarine"}),
    );
    assert_eq!(
        sampled["samplings"].as_array().unwrap().len(),
        1,
        "{sampled}"
    );
    assert!(
        sampled["samplings"][0]["messages"][0]["content"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("name a colour")),
        "the server's request reached the client as it was sent: {sampled}"
    );
    assert!(
        texts(&sampled["result"]).contains("ultramarine"),
        "the client's answer reached the server: {sampled}"
    );
    let elicited = ts(
        target,
        "call",
        json!({"tool": "everything__trigger-elicitation-request", "arguments": {},
               "answer": {"name": "Ada Lovelace", "check": true}}),
    );
    assert_eq!(
        elicited["elicitations"].as_array().unwrap().len(),
        1,
        "{elicited}"
    );
    assert!(
        elicited["elicitations"][0]["requestedSchema"]["properties"]["name"].is_object(),
        "{elicited}"
    );
    assert!(
        texts(&elicited["result"]).contains("Name: Ada Lovelace"),
        "{elicited}"
    );
}

/// The official TypeScript SDK as the client, over Streamable HTTP and over stdio
/// (`baton mcp`): server-everything's sampling and elicitation requests, sent during
/// plain tool calls, reach the client and its answers reach the server.
#[tokio::test]
async fn typescript_sdk_relays_sampling_and_elicitation_over_http_and_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let config = everything_config(dir.path(), "");
    let baton = Baton::start(
        &dir.path().join("data"),
        &[("BATON_CONFIG", config.to_str().unwrap())],
    );
    let api = Api::new(&baton.url);
    crate::common::wait_healthy(&api, "everything").await;
    let url = format!("{}/mcp", baton.url);
    tokio::task::spawn_blocking(move || check_relayed(&url))
        .await
        .unwrap();
    drop(baton);

    let dir2 = tempfile::tempdir().unwrap();
    let config = everything_config(dir2.path(), "");
    let command = json!([
        baton_bin(),
        "mcp",
        "--data-dir",
        dir2.path().join("data"),
        "--config",
        config
    ]);
    let target = format!("stdio:{command}");
    tokio::task::spawn_blocking(move || check_relayed(&target))
        .await
        .unwrap();
}

/// A REST caller (no MCP client to relay to) sees the task `input_required` with the
/// server's request and answers it through `POST /v1/tasks/{id}/input`; nobody answering
/// within `[upstream] input_timeout` cancels the elicitation, and the call goes on.
#[tokio::test]
async fn a_rest_caller_answers_an_upstream_elicitation_and_an_unanswered_one_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = everything_config(dir.path(), "[upstream]\ninput_timeout = \"3s\"\n");
    let baton = Baton::start(
        &dir.path().join("data"),
        &[("BATON_CONFIG", config.to_str().unwrap())],
    );
    let api = Api::new(&baton.url);
    crate::common::wait_healthy(&api, "everything").await;
    let id = api
        .submit(json!({"tool": "everything__trigger-elicitation-request", "arguments": {}}))
        .await;
    let waiting = api.wait_status(&id, "input_required").await;
    let requests = waiting["input_requests"]
        .as_object()
        .expect("input requests");
    assert_eq!(requests.len(), 1, "{waiting}");
    let (key, request) = requests.iter().next().unwrap();
    assert_eq!(request["method"], "elicitation/create", "{waiting}");
    assert!(request["params"]["requestedSchema"]["properties"]["name"].is_object());
    let answered = api
        .post(
            &format!("/v1/tasks/{id}/input"),
            json!({"responses": {key.clone(): {"action": "accept", "content": {"name": "By Rest"}}}}),
        )
        .await;
    assert!(answered.status < 300, "{}", answered.body);
    let done = api.wait_final(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(texts(&done["result"]).contains("Name: By Rest"), "{done}");

    let id = api
        .submit(json!({"tool": "everything__trigger-elicitation-request", "arguments": {}}))
        .await;
    api.wait_status(&id, "input_required").await;
    let done = api.wait_final(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        texts(&done["result"]).contains("cancelled"),
        "no answer in time: the elicitation is cancelled: {done}"
    );
    let events = api.sse_events(&id, None).await;
    assert!(
        events.iter().any(|(_, kind, _)| kind == "input_received"),
        "the default answer is recorded like any answer: {events:?}"
    );
}

/// server-everything's resources, templates, prompts and completions through Baton, as
/// the TypeScript SDK sees them: namespaced under the server, paged, and read back.
#[tokio::test]
async fn resources_and_prompts_of_server_everything_are_listed_and_read_through_baton() {
    let dir = tempfile::tempdir().unwrap();
    let config = everything_config(dir.path(), "");
    let baton = Baton::start(
        &dir.path().join("data"),
        &[("BATON_CONFIG", config.to_str().unwrap())],
    );
    let api = Api::new(&baton.url);
    crate::common::wait_healthy(&api, "everything").await;
    let url = format!("{}/mcp", baton.url);
    let seen = tokio::task::spawn_blocking(move || {
        ts(
            &url,
            "gateway",
            json!({
                "prompt": "everything__args-prompt",
                "promptArgs": {"city": "Lisbon"},
                "complete": {
                    "ref": {"type": "ref/prompt", "name": "everything__completable-prompt"},
                    "argument": {"name": "department", "value": "Eng"}
                }
            }),
        )
    })
    .await
    .unwrap();
    let resources = seen["resources"].as_array().expect("resources");
    assert!(!resources.is_empty(), "{seen}");
    for r in resources {
        let uri = r["uri"].as_str().unwrap();
        assert!(uri.starts_with("baton://everything/"), "{uri}");
    }
    let first = resources[0]["uri"].as_str().unwrap();
    assert_eq!(
        seen["read"]["contents"][0]["uri"], first,
        "a read answers under the name it was asked by: {seen}"
    );
    assert!(
        seen["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["uriTemplate"]
                .as_str()
                .is_some_and(|u| u.starts_with("baton://everything/demo://"))),
        "{seen}"
    );
    let prompts: Vec<&str> = seen["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        prompts.contains(&"everything__simple-prompt"),
        "{prompts:?}"
    );
    assert!(
        seen["prompt"]["messages"][0]["content"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Lisbon")),
        "{seen}"
    );
    assert_eq!(
        seen["completion"]["completion"]["values"],
        json!(["Engineering"]),
        "{seen}"
    );
    assert!(
        seen["unknownRead"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("baton://nowhere/x")),
        "{seen}"
    );
}

/// The official MCP conformance suite (`scripts/conformance`, pinned in
/// test-support/conformance) against Baton, with the repository's fixture server as the
/// upstream over stdio.
fn conformance(url: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(crate::common::repo_root().join("scripts/conformance"))
        .args(["--url", url])
        .args(args)
        .output()
        .expect("run scripts/conformance");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn fixture_config(dir: &Path, qualified: bool) -> std::path::PathBuf {
    let fixture = crate::common::repo_root().join("test-support/conformance/fixture.mjs");
    let toml = format!(
        "[[servers]]\nname = \"fixture\"\nqualified = {qualified}\ncommand = \"node\"\nargs = [\"{}\"]\n",
        fixture.display()
    );
    let path = dir.join("baton.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// Transparent mode (`qualified = false`): Baton stands in front of the fixture without
/// renaming anything, and every scenario the suite scores passes through it: the default
/// suite, the pending 2025-11-25 ones, and the 2026-07-28 runs of the same scenarios.
#[tokio::test]
async fn the_conformance_suite_passes_through_baton_in_transparent_mode() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixture_config(dir.path(), false);
    let baton = Baton::start(
        &dir.path().join("data"),
        &[("BATON_CONFIG", config.to_str().unwrap())],
    );
    let api = Api::new(&baton.url);
    crate::common::wait_healthy(&api, "fixture").await;
    // The suite checks DNS-rebinding protection against a `localhost` URL.
    let url = format!("{}/mcp", baton.url.replace("127.0.0.1", "localhost"));
    tokio::task::spawn_blocking(move || {
        for args in [
            &[][..],
            &["--suite", "all", "--spec-version", "2025-11-25"][..],
            &["--spec-version", "2026-07-28"][..],
        ] {
            let (mut ok, mut out) = conformance(&url, args);
            if !ok {
                // Seen once in about ten runs under a loaded machine and not yet
                // explained: the failure is printed, and one more run must pass.
                eprintln!("conformance {args:?} failed once; running it again:\n{out}");
                (ok, out) = conformance(&url, args);
            }
            assert!(ok, "conformance {args:?} through Baton failed:\n{out}");
            assert!(out.contains(" 0 failed"), "{out}");
        }
    })
    .await
    .unwrap();
}

/// Qualified mode (the default): the fixture's tools, prompts and resources are named
/// `fixture__…` and `baton://fixture/…`, so the scenarios that call the fixture's own
/// names cannot find them (listed in test-support/conformance/qualified-baseline.yml);
/// everything else (handshake, sessions, lists, logging, ping, DNS rebinding) passes, and
/// the baseline must stay exact (an entry that starts passing fails the run).
#[tokio::test]
async fn the_conformance_suite_passes_through_baton_in_qualified_mode() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixture_config(dir.path(), true);
    let baton = Baton::start(
        &dir.path().join("data"),
        &[("BATON_CONFIG", config.to_str().unwrap())],
    );
    let api = Api::new(&baton.url);
    crate::common::wait_healthy(&api, "fixture").await;
    let url = format!("{}/mcp", baton.url.replace("127.0.0.1", "localhost"));
    let baseline =
        crate::common::repo_root().join("test-support/conformance/qualified-baseline.yml");
    tokio::task::spawn_blocking(move || {
        let (ok, out) = conformance(&url, &["--expected-failures", baseline.to_str().unwrap()]);
        assert!(ok, "conformance in qualified mode:\n{out}");
    })
    .await
    .unwrap();
}

/// Two transparent servers could offer the same names: the node refuses to start and
/// names both.
#[tokio::test]
async fn two_transparent_servers_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ts = testserver_bin();
    let toml = format!(
        "[[servers]]\nname = \"one\"\nqualified = false\ncommand = \"{0}\"\n\n[[servers]]\nname = \"two\"\nqualified = false\ncommand = \"{0}\"\n",
        ts.display()
    );
    let config = dir.path().join("baton.toml");
    std::fs::write(&config, toml).unwrap();
    let refused = std::process::Command::new(baton_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("BATON_CONFIG", &config)
        .env_remove("BATON_URL")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("`one`") && why.contains("`two`") && why.contains("qualified"),
        "{why}"
    );
}

/// A client that negotiated 2025-03-26 may send JSON-RPC batches (that version has
/// them), over HTTP and stdio; later versions are told to send one message at a time.
#[tokio::test]
async fn batches_work_in_2025_03_26_sessions_only() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(&dir.path().join("data"), &[]);
    let http = reqwest::Client::new();
    let url = format!("{}/mcp", baton.url);
    let begin = |version: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http
                .post(&url)
                .header("accept", "application/json, text/event-stream")
                .json(
                    &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": version, "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"}}}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.headers()["mcp-session-id"].to_str().unwrap().to_string()
        }
    };
    let send = |sid: String, version: &'static str, body: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.post(&url)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", sid)
                .header("mcp-protocol-version", version)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let sid = begin("2025-03-26").await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "baton__echo", "arguments": {"in": "a batch"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "no/such"}
    ]);
    let r = send(sid.clone(), "2025-03-26", batch).await;
    assert_eq!(r.status(), 200);
    let answers: Value = r.json().await.unwrap();
    let answers = answers.as_array().expect("one array of answers");
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[0]["result"], json!({}));
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(
        answers[1]["result"]["structuredContent"],
        json!({"in": "a batch"})
    );
    assert_eq!(answers[2]["id"], 3);
    assert_eq!(answers[2]["error"]["code"], -32601);
    // Only notifications: accepted, nothing to answer.
    let r = send(
        sid,
        "2025-03-26",
        json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]),
    )
    .await;
    assert_eq!(r.status(), 202);

    let sid = begin("2025-06-18").await;
    let r = send(
        sid,
        "2025-06-18",
        json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
    )
    .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2025-06-18") && m.contains("one message")),
        "{e}"
    );

    // stdio: one line, one array back.
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").unwrap();
    let mut mcp = Stdio1::spawn(dir.path().join("stdio").as_path(), &config);
    mcp.send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    mcp.answer(1).await;
    mcp.send(json!([
        {"jsonrpc": "2.0", "id": 7, "method": "ping"},
        {"jsonrpc": "2.0", "id": 8, "method": "ping"}
    ]))
    .await;
    let line = tokio::time::timeout(LONG, mcp.lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let answers: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        answers,
        json!([{"jsonrpc": "2.0", "id": 7, "result": {}}, {"jsonrpc": "2.0", "id": 8, "result": {}}])
    );
    mcp.child.kill().await.unwrap();
}

/// Runs the official Python SDK client script (test-support/python/py_client.py, in the
/// test virtual environment) against `target`; returns what it printed last.
fn py(target: &str, scenario: &str, args: Value) -> Value {
    let root = crate::common::repo_root();
    let out = std::process::Command::new(root.join("test-support/python/.venv/bin/python"))
        .arg(root.join("test-support/python/py_client.py"))
        .args([target, scenario, &args.to_string()])
        .env("BATON_LOG", "warn")
        .output()
        .expect("run the Python client (scripts/test-env makes its virtual environment)");
    assert!(
        out.status.success(),
        "py_client {scenario} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().expect("output")).expect("JSON output")
}

/// The official Python SDK as the client (it speaks 2026-07-28, where Baton asks for the
/// input as input rounds; and 2025-11-25 with `mode: legacy`, where it asks with
/// requests), over Streamable HTTP and stdio: server-everything's sampling and
/// elicitation reach it and its answers reach the server.
#[tokio::test]
async fn python_sdk_relays_sampling_and_elicitation_over_http_and_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let config = everything_config(dir.path(), "");
    let baton = Baton::start(
        &dir.path().join("data"),
        &[("BATON_CONFIG", config.to_str().unwrap())],
    );
    let api = Api::new(&baton.url);
    crate::common::wait_healthy(&api, "everything").await;
    let url = format!("{}/mcp", baton.url);
    let stdio_dir = tempfile::tempdir().unwrap();
    let command = json!([
        baton_bin(),
        "mcp",
        "--data-dir",
        stdio_dir.path().join("data"),
        "--config",
        config
    ]);
    let stdio = format!("stdio:{command}");
    tokio::task::spawn_blocking(move || {
        for target in [url.as_str(), stdio.as_str()] {
            for mode in ["auto", "legacy"] {
                let sampled = py(
                    target,
                    "call",
                    json!({"tool": "everything__trigger-sampling-request",
                           "arguments": {"prompt": "name a colour", "maxTokens": 5},
                           "sample": "ultramarine", "mode": mode}),
                );
                assert_eq!(
                    sampled["samplings"].as_array().unwrap().len(),
                    1,
                    "{sampled}"
                );
                let asked = &sampled["samplings"][0];
                assert!(
                    asked["messages"][0]["content"]["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("name a colour")),
                    "{sampled}"
                );
                assert_eq!(
                    asked["temperature"],
                    json!(0.7),
                    "relayed as the server sent it: {sampled}"
                );
                assert!(
                    texts(&sampled["result"]).contains("ultramarine"),
                    "{sampled}"
                );
                let elicited = py(
                    target,
                    "call",
                    json!({"tool": "everything__trigger-elicitation-request", "arguments": {},
                           "answer": {"name": "Grace Hopper", "check": true}, "mode": mode}),
                );
                assert_eq!(
                    elicited["elicitations"].as_array().unwrap().len(),
                    1,
                    "{elicited}"
                );
                assert!(
                    texts(&elicited["result"]).contains("Name: Grace Hopper"),
                    "{elicited}"
                );
            }
        }
    })
    .await
    .unwrap();
}
