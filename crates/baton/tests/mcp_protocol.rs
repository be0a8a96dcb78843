//! `/mcp` at the wire: the error codes and HTTP statuses the specifications name for bad
//! input, ownership of tasks, DNS rebinding protection, waiting calls (keep-alives,
//! disconnects, cancellation), task subscriptions, and pass-through of rich upstream
//! results. Real node, real port, real upstreams; requests written out by hand because
//! the point is what goes over the wire.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Api, Baton, eventually, everything_bin, testserver_bin, wait_healthy};
use futures::StreamExt;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);
const V2026: &str = "2026-07-28";

fn start(dir: &Path, everything: bool, env: &[(&str, &str)]) -> Baton {
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
    let config = dir.join("baton.toml");
    std::fs::write(&config, toml).unwrap();
    let config = config.to_string_lossy().to_string();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("BATON_CONFIG", &config));
    Baton::start(&dir.join("data"), &env)
}

/// What came back: the status, headers and every JSON-RPC message (one for a JSON
/// answer, the whole stream for SSE).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    messages: Vec<Value>,
}

impl Answer {
    /// The final message (the response).
    fn last(&self) -> &Value {
        self.messages.last().expect("an answer")
    }

    fn error_code(&self) -> i64 {
        self.last()["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("expected an error: {:?}", self.messages))
    }

    fn error_message(&self) -> &str {
        self.last()["error"]["message"].as_str().unwrap()
    }
}

fn sse_data(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|block| {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).unwrap())
        })
        .collect()
}

/// A hand-driven MCP client.
struct Mcp {
    http: reqwest::Client,
    url: String,
}

impl Mcp {
    fn new(base: &str) -> Mcp {
        Mcp {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            url: format!("{base}/mcp"),
        }
    }

    fn post(&self) -> reqwest::RequestBuilder {
        self.http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let sse = headers
            .get("content-type")
            .is_some_and(|c| c.to_str().unwrap().starts_with("text/event-stream"));
        let text = resp.text().await.unwrap();
        let messages = if sse {
            sse_data(&text)
        } else if text.is_empty() {
            Vec::new()
        } else {
            vec![serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))]
        };
        Answer {
            status,
            headers,
            messages,
        }
    }

    /// Begins a legacy session; returns its id.
    async fn initialize(&self, version: &str, capabilities: Value) -> String {
        let a = self
            .send(self.post().json(&json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": version, "capabilities": capabilities,
                           "clientInfo": {"name": "wire", "version": "1"}}
            })))
            .await;
        assert_eq!(a.status, 200);
        assert_eq!(a.last()["result"]["protocolVersion"], version);
        a.headers["mcp-session-id"].to_str().unwrap().to_string()
    }

    async fn legacy(&self, session: &str, id: u64, method: &str, params: Value) -> Answer {
        self.send(
            self.post()
                .header("mcp-session-id", session)
                .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})),
        )
        .await
    }

    /// A 2026-07-28 request with matching headers; `tasks`: declare the extension.
    fn modern_request(
        &self,
        id: u64,
        method: &str,
        mut params: Value,
        tasks: bool,
    ) -> reqwest::RequestBuilder {
        let caps = if tasks {
            json!({"extensions": {"io.modelcontextprotocol/tasks": {}}, "elicitation": {}})
        } else {
            json!({})
        };
        if !params["_meta"].is_object() {
            params["_meta"] = json!({});
        }
        params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(V2026);
        params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = caps;
        let mut req = self
            .post()
            .header("mcp-protocol-version", V2026)
            .header("mcp-method", method);
        let name = params
            .get("name")
            .or_else(|| params.get("taskId"))
            .and_then(Value::as_str);
        if let Some(n) = name {
            req = req.header("mcp-name", n);
        }
        req.json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
    }

    async fn modern(&self, id: u64, method: &str, params: Value, tasks: bool) -> Answer {
        self.send(self.modern_request(id, method, params, tasks))
            .await
    }
}

#[tokio::test]
async fn bad_input_gets_the_specified_errors_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(
        dir.path(),
        false,
        &[("BATON_MCP__MAX_MESSAGE_BYTES", "65536")],
    );
    let api = Api::new(&baton.url);
    let mcp = Mcp::new(&baton.url);
    let session = mcp.initialize("2025-11-25", json!({"tasks": {}})).await;

    // A task stored before the bad input, to check nothing is lost.
    let created = mcp
        .legacy(
            &session,
            1,
            "tools/call",
            json!({"name": "baton__echo", "arguments": {"keep": "me"}, "task": {}}),
        )
        .await;
    let kept = created.last()["result"]["task"]["taskId"]
        .as_str()
        .unwrap()
        .to_string();

    // Malformed JSON: parse error, HTTP 400.
    let a = mcp
        .send(mcp.post().body("{\"jsonrpc\": \"2.0\", \"id\": 1,"))
        .await;
    assert_eq!((a.status, a.error_code()), (400, -32700));
    assert!(
        a.error_message().contains("parse error"),
        "{}",
        a.error_message()
    );
    // Not JSON-RPC: invalid request, naming what is wrong.
    let a = mcp
        .send(mcp.post().json(&json!({"id": 3, "method": "tools/list"})))
        .await;
    assert_eq!((a.status, a.error_code()), (400, -32600));
    assert!(a.error_message().contains("jsonrpc"));
    assert_eq!(a.last()["id"], 3);
    let a = mcp
        .send(
            mcp.post()
                .json(&json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])),
        )
        .await;
    assert_eq!((a.status, a.error_code()), (400, -32600));
    assert!(a.error_message().contains("batch"));

    // Unknown method: -32601 (HTTP 200 in a legacy session, 404 for 2026-07-28).
    let a = mcp.legacy(&session, 4, "tools/frobnicate", json!({})).await;
    assert_eq!((a.status, a.error_code()), (200, -32601));
    assert!(a.error_message().contains("tools/frobnicate"));
    let a = mcp.modern(5, "tools/frobnicate", json!({}), false).await;
    assert_eq!((a.status, a.error_code()), (404, -32601));

    // Unknown and malformed task ids: -32602 in both task dialects.
    let unknown = "01a1fe74-ab42-7e09-a392-c0f41b2fd7ee";
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let a = mcp
            .legacy(&session, 6, method, json!({"taskId": unknown}))
            .await;
        assert_eq!(a.error_code(), -32602, "{method}");
        assert!(a.error_message().contains(unknown), "{}", a.error_message());
    }
    let a = mcp
        .legacy(&session, 7, "tasks/get", json!({"taskId": "nope"}))
        .await;
    assert_eq!(a.error_code(), -32602);
    let a = mcp.legacy(&session, 8, "tasks/get", json!({})).await;
    assert_eq!(a.error_code(), -32602);
    assert!(a.error_message().contains("taskId"));
    for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
        let a = mcp
            .modern(
                9,
                method,
                json!({"taskId": unknown, "inputResponses": {}}),
                true,
            )
            .await;
        assert_eq!(a.error_code(), -32602, "{method}");
    }
    let a = mcp
        .legacy(&session, 10, "tasks/list", json!({"cursor": "bogus"}))
        .await;
    assert_eq!(a.error_code(), -32602);
    assert!(a.error_message().contains("cursor"));

    // A `task` param on a tool whose taskSupport is forbidden: -32601.
    let a = mcp
        .legacy(
            &session,
            11,
            "tools/call",
            json!({"name": "task_list", "arguments": {}, "task": {}}),
        )
        .await;
    assert_eq!(a.error_code(), -32601);
    assert!(a.error_message().contains("task_list"));
    // Unknown tool and bad arguments: -32602 naming the problem.
    let a = mcp
        .legacy(
            &session,
            12,
            "tools/call",
            json!({"name": "ts__nope", "arguments": {}}),
        )
        .await;
    assert_eq!(a.error_code(), -32602);
    assert!(a.error_message().contains("ts__nope"));
    let a = mcp
        .legacy(
            &session,
            13,
            "tools/call",
            json!({"name": "baton__sleep", "arguments": {"ms": "soon"}}),
        )
        .await;
    assert_eq!(a.error_code(), -32602);
    assert!(a.error_message().contains("ms"), "{}", a.error_message());
    let a = mcp
        .legacy(
            &session,
            14,
            "tools/call",
            json!({"name": "baton__echo", "arguments": [1]}),
        )
        .await;
    assert_eq!(a.error_code(), -32602);

    // Too large: 413 with a JSON-RPC error.
    let big = json!({"jsonrpc": "2.0", "id": 15, "method": "tools/call",
                     "params": {"name": "baton__echo", "arguments": {"x": "y".repeat(70_000)}}});
    let a = mcp
        .send(mcp.post().header("mcp-session-id", &session).json(&big))
        .await;
    assert_eq!((a.status, a.error_code()), (413, -32600));
    assert!(a.error_message().contains("65536"));

    // Sessions: none, unknown, or a version header that contradicts the session.
    let a = mcp
        .send(
            mcp.post()
                .json(&json!({"jsonrpc": "2.0", "id": 16, "method": "tools/list"})),
        )
        .await;
    assert_eq!((a.status, a.error_code()), (400, -32600));
    assert!(a.error_message().contains("initialize"));
    let a = mcp
        .legacy("not-a-session", 17, "tools/list", json!({}))
        .await;
    assert_eq!(a.status, 404);
    let a = mcp
        .send(
            mcp.post()
                .header("mcp-session-id", &session)
                .header("mcp-protocol-version", "2025-06-18")
                .json(&json!({"jsonrpc": "2.0", "id": 18, "method": "tools/list"})),
        )
        .await;
    assert_eq!(a.status, 400);

    // 2026-07-28 envelope and header checks.
    let a = mcp
        .send(
            mcp.post()
                .header("mcp-protocol-version", V2026)
                .header("mcp-method", "tools/call")
                .header("mcp-name", "baton__sleep")
                .json(
                    &json!({"jsonrpc": "2.0", "id": 19, "method": "tools/call", "params": {
                    "name": "baton__echo", "arguments": {},
                    "_meta": {"io.modelcontextprotocol/protocolVersion": V2026,
                              "io.modelcontextprotocol/clientCapabilities": {}}}}),
                ),
        )
        .await;
    assert_eq!((a.status, a.error_code()), (400, -32020));
    assert!(a.error_message().contains("Mcp-Name"));
    let a = mcp
        .send(mcp.post().header("mcp-method", "tools/list").json(
            &json!({"jsonrpc": "2.0", "id": 20, "method": "tools/list", "params": {
                    "_meta": {"io.modelcontextprotocol/protocolVersion": V2026,
                              "io.modelcontextprotocol/clientCapabilities": {}}}}),
        ))
        .await;
    assert_eq!((a.status, a.error_code()), (400, -32020));
    assert!(a.error_message().contains("MCP-Protocol-Version"));
    let a = mcp
        .send(
            mcp.post()
                .header("mcp-protocol-version", "2099-01-01")
                .header("mcp-method", "tools/list")
                .json(
                    &json!({"jsonrpc": "2.0", "id": 21, "method": "tools/list", "params": {
                    "_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01",
                              "io.modelcontextprotocol/clientCapabilities": {}}}}),
                ),
        )
        .await;
    assert_eq!((a.status, a.error_code()), (400, -32022));
    assert_eq!(a.last()["error"]["data"]["supported"], json!([V2026]));
    let a = mcp
        .send(
            mcp.post()
                .header("mcp-protocol-version", V2026)
                .header("mcp-method", "tools/list")
                .json(
                    &json!({"jsonrpc": "2.0", "id": 22, "method": "tools/list", "params": {
                    "_meta": {"io.modelcontextprotocol/protocolVersion": V2026}}}),
                ),
        )
        .await;
    assert_eq!((a.status, a.error_code()), (400, -32602));
    assert!(a.error_message().contains("clientCapabilities"));
    // Tasks without the extension declared: -32021 naming the capability.
    let a = mcp
        .modern(23, "tasks/get", json!({"taskId": kept}), false)
        .await;
    assert_eq!((a.status, a.error_code()), (400, -32021));
    assert!(a.last()["error"]["data"]["requiredCapabilities"]["extensions"]["io.modelcontextprotocol/tasks"].is_object());
    // tasks/result and tasks/list do not exist in 2026-07-28.
    let a = mcp
        .modern(24, "tasks/result", json!({"taskId": kept}), true)
        .await;
    assert_eq!(a.error_code(), -32601);
    // GET and DELETE have no meaning without a legacy session.
    let r = mcp.http.get(&mcp.url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");

    // The task from before is intact and readable in both dialects and through REST.
    let a = mcp
        .legacy(&session, 25, "tasks/result", json!({"taskId": kept}))
        .await;
    assert_eq!(a.last()["result"]["structuredContent"]["keep"], "me");
    let a = mcp
        .modern(26, "tasks/get", json!({"taskId": kept}), true)
        .await;
    assert_eq!(a.last()["result"]["status"], "completed");
    assert_eq!(
        a.last()["result"]["result"]["structuredContent"]["keep"],
        "me"
    );
    assert_eq!(api.task(&kept).await["status"], "completed");
}

#[tokio::test]
async fn tasks_belong_to_their_principal() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), false, &[]);
    let api = Api::new(&baton.url);
    let mcp = Mcp::new(&baton.url);
    let created = mcp
        .send(
            mcp.modern_request(
                1,
                "tools/call",
                json!({"name": "baton__sleep", "arguments": {"ms": 100}}),
                true,
            )
            .header("baton-principal", "alice"),
        )
        .await;
    let id = created.last()["result"]["taskId"]
        .as_str()
        .unwrap()
        .to_string();
    // Alice sees it; Bob (and the anonymous principal) get the unknown-task error.
    let a = mcp
        .send(
            mcp.modern_request(2, "tasks/get", json!({"taskId": id}), true)
                .header("baton-principal", "alice"),
        )
        .await;
    assert!(a.last()["result"]["status"].is_string(), "{:?}", a.messages);
    for who in [Some("bob"), None] {
        let mut req = mcp.modern_request(3, "tasks/get", json!({"taskId": id}), true);
        if let Some(w) = who {
            req = req.header("baton-principal", w);
        }
        let a = mcp.send(req).await;
        assert_eq!(a.error_code(), -32602, "{who:?}");
        assert_eq!(a.error_message(), format!("unknown task `{id}`"));
        let mut req = mcp.modern_request(4, "tasks/cancel", json!({"taskId": id}), true);
        if let Some(w) = who {
            req = req.header("baton-principal", w);
        }
        assert_eq!(mcp.send(req).await.error_code(), -32602);
    }
    // Bob's legacy session does not list it, and task_result cannot read it.
    let session = {
        let a = mcp
            .send(mcp.post().header("baton-principal", "bob").json(&json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}}
            })))
            .await;
        a.headers["mcp-session-id"].to_str().unwrap().to_string()
    };
    let a = mcp
        .send(
            mcp.post()
                .header("mcp-session-id", &session)
                .header("baton-principal", "bob")
                .json(&json!({"jsonrpc": "2.0", "id": 5, "method": "tasks/list"})),
        )
        .await;
    assert!(
        !a.last()["result"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["taskId"] == id.as_str()),
        "{:?}",
        a.messages
    );
    let a = mcp
        .send(
            mcp.post()
                .header("mcp-session-id", &session)
                .header("baton-principal", "bob")
                .json(&json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
                              "params": {"name": "task_result", "arguments": {"task_id": id}}})),
        )
        .await;
    assert_eq!(a.last()["result"]["isError"], true);
    // REST applies the same rule, with the same header.
    let r = api
        .send(
            api.http
                .get(format!("{}/v1/tasks/{id}", baton.url))
                .header("baton-principal", "bob"),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = api
        .send(
            api.http
                .get(format!("{}/v1/tasks/{id}", baton.url))
                .header("baton-principal", "alice"),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = api
        .send(
            api.http
                .get(format!("{}/v1/tasks/{id}", baton.url))
                .header("baton-principal", "not valid"),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("Baton-Principal"));
}

#[tokio::test]
async fn dns_rebinding_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(
        dir.path(),
        false,
        &[(
            "BATON_MCP__ALLOWED_ORIGINS",
            "[\"https://app.example.com\"]",
        )],
    );
    let mcp = Mcp::new(&baton.url);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                      "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}});
    let a = mcp
        .send(
            mcp.post()
                .header("origin", "http://evil.example")
                .json(&init),
        )
        .await;
    assert_eq!(a.status, 403);
    assert!(a.error_message().contains("evil.example"));
    let a = mcp
        .send(mcp.post().header("origin", "null").json(&init))
        .await;
    assert_eq!(a.status, 403);
    // A rebound name resolving to 127.0.0.1 still carries its own Host.
    let port = baton.url.rsplit(':').next().unwrap();
    let a = mcp
        .send(
            mcp.post()
                .header("host", format!("evil.example:{port}"))
                .json(&init),
        )
        .await;
    assert_eq!(a.status, 403);
    assert!(a.error_message().contains("Host"));
    // Loopback origins, the server's own origin and configured ones are fine.
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1:9",
        "https://app.example.com",
        baton.url.as_str(),
    ] {
        let a = mcp
            .send(mcp.post().header("origin", origin).json(&init))
            .await;
        assert_eq!(a.status, 200, "{origin}");
    }
}

/// Reads a waiting call's stream up to the first message that names its task.
async fn first_task_id(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
) -> String {
    let mut buf = String::new();
    loop {
        let chunk = tokio::time::timeout(LONG, body.next())
            .await
            .expect("a message in time")
            .expect("the stream is open")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        let Some((complete, _)) = buf.rsplit_once("\n\n") else {
            continue;
        };
        for m in sse_data(complete) {
            if let Some(text) = m["params"]["message"].as_str()
                && let Some(at) = text.find("task ")
            {
                return text[at + 5..at + 41].to_string();
            }
        }
    }
}

#[tokio::test]
async fn waiting_calls_keep_alive_survive_disconnects_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), false, &[("BATON_MCP__KEEPALIVE", "1s")]);
    let api = Api::new(&baton.url);
    let mcp = Mcp::new(&baton.url);
    let session = mcp.initialize("2025-06-18", json!({})).await;

    // A long call without steps: keep-alive progress every second.
    let a = mcp
        .legacy(&session, 1, "tools/call", json!({"name": "baton__sleep", "arguments": {"ms": 3500}, "_meta": {"progressToken": "k"}}))
        .await;
    let keepalives = a
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .filter(|m| {
            m["params"]["message"]
                .as_str()
                .unwrap()
                .contains("still running")
        })
        .count();
    assert!(keepalives >= 2, "keep-alives: {:?}", a.messages);
    assert!(a.messages.iter().all(|m| m["method"] != "notifications/progress" || m["params"]["progressToken"] == "k"));
    assert_eq!(a.last()["result"]["structuredContent"]["slept_ms"], 3500);

    // The client goes away mid-call: the task runs on, and task_result fetches it.
    let resp = mcp
        .post()
        .header("mcp-session-id", &session)
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "baton__sleep", "arguments": {"ms": 1500}, "_meta": {"progressToken": 2}}}))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let id = first_task_id(&mut body).await;
    drop(body);
    let a = mcp
        .legacy(
            &session,
            3,
            "tools/call",
            json!({"name": "task_result", "arguments": {"task_id": id, "wait_seconds": 30}}),
        )
        .await;
    let r = &a.last()["result"];
    assert_eq!(r["structuredContent"]["status"], "completed", "{r}");
    assert_eq!(
        r["structuredContent"]["result"]["structuredContent"]["slept_ms"],
        1500
    );

    // notifications/cancelled cancels the task behind a waiting call.
    let waiting = tokio::spawn({
        let req = mcp
            .post()
            .header("mcp-session-id", &session)
            .json(&json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
                          "params": {"name": "baton__sleep", "arguments": {"ms": 60000}, "_meta": {"progressToken": "c"}}}));
        async move { req.send().await.unwrap().text().await.unwrap() }
    });
    let id = {
        let mut found = None;
        eventually("the call's task is running", LONG, async || {
            let r = api.get("/v1/tasks?status=running&tool=baton__sleep").await;
            found = r.body["tasks"][0]["task_id"].as_str().map(String::from);
            found.is_some()
        })
        .await;
        found.unwrap()
    };
    let a = mcp
        .send(mcp.post().header("mcp-session-id", &session).json(&json!({
            "jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "long", "reason": "user"}
        })))
        .await;
    assert_eq!(a.status, 202);
    assert_eq!(api.wait_final(&id).await["status"], "cancelled");
    // The cancelled request gets no response.
    let text = waiting.await.unwrap();
    assert!(
        sse_data(&text)
            .iter()
            .all(|m| m.get("result").is_none() && m.get("error").is_none()),
        "{text}"
    );

    // 2026-07-28: closing the response stream is the cancellation.
    let resp = mcp
        .modern_request(4, "tools/call", json!({"name": "baton__sleep", "arguments": {"ms": 60000}, "_meta": {"progressToken": 1}}), false)
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let id = first_task_id(&mut body).await;
    drop(body);
    assert_eq!(api.wait_final(&id).await["status"], "cancelled");
}

#[tokio::test]
async fn task_subscriptions_push_status_changes() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), false, &[]);
    let mcp = Mcp::new(&baton.url);

    // 2026-07-28: subscriptions/listen with taskIds gets notifications/tasks.
    let created = mcp
        .modern(
            1,
            "tools/call",
            json!({"name": "baton__sleep", "arguments": {"ms": 800}}),
            true,
        )
        .await;
    let id = created.last()["result"]["taskId"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = mcp
        .modern_request(7, "subscriptions/listen", json!({"notifications": {"taskIds": [id, "01a1fe74-ab42-7e09-a392-c0f41b2fd7ee"], "toolsListChanged": true}}), true)
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut seen = Vec::new();
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + LONG;
    while !seen
        .iter()
        .any(|m: &Value| m["params"]["status"] == "completed")
    {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("notifications in time")
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(end) = buf.rfind("\n\n") {
            seen.extend(sse_data(&buf[..end]));
            buf.drain(..end + 2);
        }
    }
    assert_eq!(
        seen[0]["method"],
        "notifications/subscriptions/acknowledged"
    );
    assert_eq!(
        seen[0]["params"]["notifications"]["taskIds"],
        json!([id]),
        "only the caller's existing tasks"
    );
    assert_eq!(
        seen[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    let done = seen.last().unwrap();
    assert_eq!(done["method"], "notifications/tasks");
    assert_eq!(done["params"]["taskId"], id.as_str());
    assert_eq!(
        done["params"]["result"]["structuredContent"]["slept_ms"],
        800
    );
    assert_eq!(
        done["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    drop(body);

    // 2025-11-25: notifications/tasks/status on the session's stream.
    let session = mcp.initialize("2025-11-25", json!({"tasks": {}})).await;
    let stream = mcp
        .http
        .get(&mcp.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    let created = mcp
        .legacy(
            &session,
            2,
            "tools/call",
            json!({"name": "baton__sleep", "arguments": {"ms": 300}, "task": {}}),
        )
        .await;
    let id = created.last()["result"]["task"]["taskId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut buf = String::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("a status notification in time")
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        let msgs = sse_data(buf.rsplit_once("\n\n").map_or("", |(a, _)| a));
        if let Some(n) = msgs.iter().find(|m| {
            m["method"] == "notifications/tasks/status" && m["params"]["status"] == "completed"
        }) {
            assert_eq!(n["params"]["taskId"], id.as_str());
            break;
        }
    }
}

/// Content blocks, structured content, isError and _meta come back exactly as the
/// upstream sent them: compared with the same calls made to server-everything directly.
#[tokio::test]
async fn rich_results_pass_through_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), true, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "everything").await;
    let mcp = Mcp::new(&baton.url);
    let session = mcp.initialize("2025-11-25", json!({})).await;

    let mut direct = Direct::start().await;
    let calls = [
        ("get-tiny-image", json!({})),
        ("get-resource-links", json!({"count": 3})),
        (
            "get-resource-reference",
            json!({"resourceType": "Blob", "resourceId": 2}),
        ),
        ("get-structured-content", json!({"location": "Chicago"})),
        (
            "get-annotated-message",
            json!({"messageType": "error", "includeImage": true}),
        ),
        ("echo", json!({"message": "ünïcødé ✓"})),
    ];
    for (i, (tool, args)) in calls.iter().enumerate() {
        let through = mcp
            .legacy(
                &session,
                i as u64 + 1,
                "tools/call",
                json!({"name": format!("everything__{tool}"), "arguments": args}),
            )
            .await;
        let through = through.last()["result"].clone();
        let expected = direct.call(tool, args.clone()).await;
        assert_eq!(through, expected, "{tool}");
    }
}

/// server-everything spoken to directly, over stdio.
struct Direct {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    next: u64,
}

impl Direct {
    async fn start() -> Direct {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(everything_bin())
            .arg("stdio")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut d = Direct {
            child,
            stdin,
            lines,
            next: 0,
        };
        d.request("initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "direct", "version": "1"}}))
            .await;
        d.write(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        d
    }

    async fn write(&mut self, msg: Value) {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
    }

    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.write(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let line = tokio::time::timeout(LONG, self.lines.next_line())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let msg: Value = serde_json::from_str(&line).unwrap();
            if msg["id"] == id && msg.get("method").is_none() {
                return msg["result"].clone();
            }
        }
    }

    async fn call(&mut self, tool: &str, args: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
            .await
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
