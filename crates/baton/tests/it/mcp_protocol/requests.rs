//! Requests at the wire: the specified errors for bad input, ownership of tasks, DNS
//! rebinding protection.

use serde_json::json;

use super::{Mcp, V2026, start};
use crate::common::Api;

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

/// The `ttl` a 2025-11-25 client asks for is honoured within Baton's limits, and every
/// view of the task reports what was granted; REST takes the same as `ttl_ms`.
#[tokio::test]
async fn a_requested_task_ttl_is_honoured_within_limits() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), false, &[("BATON_TASKS__RETENTION", "1h")]);
    let api = Api::new(&baton.url);
    let mcp = Mcp::new(&baton.url);
    let session = mcp.initialize("2025-11-25", json!({"tasks": {}})).await;
    let call = |id: u64, ttl: serde_json::Value| {
        let (mcp, session) = (&mcp, &session);
        async move {
            mcp.legacy(
                session,
                id,
                "tools/call",
                json!({"name": "baton__echo", "arguments": {}, "task": {"ttl": ttl}}),
            )
            .await
        }
    };
    // Shorter than the retention: granted as asked, in the answer and in tasks/get.
    let a = call(1, json!(5000)).await;
    assert_eq!(a.last()["result"]["task"]["ttl"], 5000, "{:?}", a.last());
    let id = a.last()["result"]["task"]["taskId"]
        .as_str()
        .unwrap()
        .to_string();
    let got = mcp
        .legacy(&session, 2, "tasks/get", json!({"taskId": id}))
        .await;
    assert_eq!(got.last()["result"]["ttl"], 5000);
    let view = api.task(&id).await;
    assert!(view["expires_at"].is_string(), "{view}");
    // Longer than the retention: capped to it. Too short: raised to a second.
    let a = call(3, json!(10_u64.pow(12))).await;
    assert_eq!(a.last()["result"]["task"]["ttl"], 3_600_000);
    let a = call(4, json!(1)).await;
    assert_eq!(a.last()["result"]["task"]["ttl"], 1000);
    // Not a number of milliseconds: a clear error naming the field.
    let a = call(5, json!("soon")).await;
    assert_eq!(a.error_code(), -32602);
    assert!(
        a.error_message().contains("task.ttl"),
        "{}",
        a.error_message()
    );

    // REST: `ttl_ms`, checked at the door.
    let r = api
        .post("/v1/tasks", json!({"tool": "baton__echo", "ttl_ms": 10}))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("ttl_ms"),
        "{}",
        r.error_message()
    );
    let r = api
        .post(
            "/v1/tasks",
            json!({"tool": "baton__echo", "ttl_ms": 60_000}),
        )
        .await;
    assert!(r.status < 300, "{}", r.body);
    assert!(r.body["expires_at"].is_string(), "{}", r.body);
}

/// Calls a tool over MCP (2026-07-28, no task) and returns its result.
async fn call_tool(
    mcp: &Mcp,
    id: u64,
    name: &str,
    arguments: serde_json::Value,
) -> serde_json::Value {
    let a = mcp
        .modern(
            id,
            "tools/call",
            json!({"name": name, "arguments": arguments}),
            false,
        )
        .await;
    a.last()["result"].clone()
}

/// The queue controls, retry and priority as MCP tools: the operations, names and answers of the
/// REST API, with mistakes as readable tool errors.
#[tokio::test]
async fn queue_controls_and_retry_are_tools() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), false, &[]);
    let api = Api::new(&baton.url);
    let mcp = Mcp::new(&baton.url);
    let held = api
        .submit(json!({"tool": "baton__echo", "queue": "mq", "delay_ms": 600000}))
        .await;
    let paused_in_rest = async || {
        api.get("/v1/queues").await.body["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "mq")
            .unwrap()["paused"]
            .clone()
    };

    let r = call_tool(&mcp, 1, "queue_pause", json!({"name": "mq"})).await;
    assert_eq!(
        r["structuredContent"],
        json!({"name": "mq", "paused": true}),
        "{r}"
    );
    assert_eq!(paused_in_rest().await, true);
    let r = call_tool(&mcp, 2, "queue_resume", json!({"name": "mq"})).await;
    assert_eq!(r["structuredContent"]["paused"], false, "{r}");
    assert_eq!(paused_in_rest().await, false);
    let r = call_tool(&mcp, 3, "queue_pause", json!({"name": "nowhere"})).await;
    assert_eq!(r["isError"], true, "{r}");
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("nowhere"),
        "{r}"
    );

    let r = call_tool(&mcp, 4, "queue_clear", json!({"name": "mq"})).await;
    assert_eq!(r["isError"], true, "{r}");
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("confirm"),
        "{r}"
    );
    assert_eq!(api.task(&held).await["status"], "pending");
    let r = call_tool(
        &mcp,
        5,
        "queue_clear",
        json!({"name": "mq", "confirm": true}),
    )
    .await;
    assert_eq!(
        r["structuredContent"],
        json!({"name": "mq", "statuses": ["pending"], "cancelled": 1}),
        "{r}"
    );
    assert_eq!(api.task(&held).await["status"], "cancelled");

    let r = call_tool(&mcp, 6, "task_retry", json!({"task_id": held})).await;
    assert_eq!(r["structuredContent"]["task_id"], held.as_str(), "{r}");
    assert_ne!(r["structuredContent"]["status"], "cancelled", "{r}");
    let r = call_tool(&mcp, 7, "task_retry", json!({"task_id": held})).await;
    assert_eq!(
        r["isError"], true,
        "a task that is not failed or cancelled: {r}"
    );

    let later = api
        .submit(json!({"tool": "baton__echo", "queue": "mq", "delay_ms": 600000}))
        .await;
    let r = call_tool(
        &mcp,
        8,
        "task_priority",
        json!({"task_id": later, "priority": 90}),
    )
    .await;
    assert_eq!(r["structuredContent"]["priority"], 90, "{r}");
    assert_eq!(api.task(&later).await["priority"], 90);
    let r = call_tool(&mcp, 9, "task_priority", json!({"task_id": later})).await;
    assert_eq!(r["isError"], true, "{r}");
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("nothing to change"),
        "{r}"
    );
}
