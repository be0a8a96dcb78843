//! What clients see, snapshot by snapshot.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::node::Node;

/// Ids and times change every run; the snapshots show where they are.
macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::assert_json_snapshot!($name, $value, {
            ".**.task_id" => "[task id]",
            ".**.id" => "[id]",
            ".**.poll_url" => "[url]",
            ".**.cancel_url" => "[url]",
            ".**.result_url" => "[url]",
            ".**.events_url" => "[url]",
            ".**.next_cursor" => "[cursor]",
            ".**.created_at" => "[time]",
            ".**.updated_at" => "[time]",
            ".**.started_at" => "[time]",
            ".**.completed_at" => "[time]",
            ".**.run_at" => "[time]",
            ".**.expires_at" => "[time]",
            ".**.estimated_completion" => "[time]",
            ".**.last_heartbeat" => "[time]",
            ".**.throughput" => "[rate]",
            ".**.version" => "[version]",
        })
    };
}

#[tokio::test]
async fn a_task_from_submission_to_result() {
    let node = Node::start().await;
    let (status, accepted) = node
        .post(
            "/v1/tasks",
            json!({"tool": "baton__echo", "arguments": {"greeting": "hello"}, "metadata": {"team": "docs"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    snapshot!("submit_accepted", &accepted);
    let id = accepted["task_id"].as_str().unwrap().to_string();
    let task = node.finished(&id).await;
    snapshot!("task_completed", &task);
    let (status, result) = node.get(&format!("/v1/tasks/{id}/result")).await;
    assert_eq!(status, StatusCode::OK);
    snapshot!("task_result", &result);
    let (_, list) = node.get("/v1/tasks?limit=1").await;
    snapshot!("task_list", &list);
    let (status, mut conflict) = node.delete(&format!("/v1/tasks/{id}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = conflict["error"]["message"]
        .as_str()
        .unwrap()
        .replace(&id, "[task id]");
    conflict["error"]["message"] = json!(message);
    snapshot!("cancel_finished_conflict", &conflict);
    node.engine.shutdown().await;
}

#[tokio::test]
async fn errors_have_one_shape() {
    let node = Node::start().await;
    for (name, path, body) in [
        ("unknown_tool", "/v1/tasks", json!({"tool": "nope__x"})),
        (
            "bad_field",
            "/v1/tasks",
            json!({"tool": "baton__echo", "priority": "urgent"}),
        ),
        (
            "bad_workflow",
            "/v1/workflows",
            json!({"name": "w", "steps": [{"id": "a", "tool": "baton__echo", "depends_on": ["ghost"]}]}),
        ),
    ] {
        let (status, body) = node.post(path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        snapshot!(format!("error_{name}"), &body);
    }
    let (status, body) = node.get("/v1/tasks?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    snapshot!("error_bad_limit", &body);
    let (status, body) = node
        .send(
            Request::post("/v1/tasks")
                .header("host", "127.0.0.1:7420")
                .header("content-type", "text/plain")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    snapshot!("error_media_type", &body);
    node.engine.shutdown().await;
}

#[tokio::test]
async fn queues_peers_and_the_catalog() {
    let node = Node::start().await;
    let (_, accepted) = node.post("/v1/tasks", json!({"tool": "baton__echo"})).await;
    node.finished(accepted["task_id"].as_str().unwrap()).await;
    let (_, queues) = node.get("/v1/queues").await;
    snapshot!("queues", &queues);
    let (_, tools) = node.get("/v1/tools").await;
    snapshot!("tools", &tools);
    let (status, _) = node.post("/v1/queues/default/pause", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let (_, health) = node.get("/readyz").await;
    snapshot!("readyz", &health);
    node.engine.shutdown().await;
}

/// MCP, through the same router: the orchestration tools and one call's answer.
#[tokio::test]
async fn mcp_answers() {
    let node = Node::start().await;
    let call = |id: u64, method: &str, params: Value| {
        Request::post("/mcp")
            .header("host", "127.0.0.1:7420")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method)
            .body(Body::from(
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
            ))
            .unwrap()
    };
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"}});
    let (status, tools) = node
        .send(call(1, "tools/list", json!({"_meta": meta})))
        .await;
    assert_eq!(status, StatusCode::OK, "{tools}");
    let orchestration: Vec<Value> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["name"].as_str().unwrap().contains("__"))
        .cloned()
        .collect();
    snapshot!("mcp_orchestration_tools", &orchestration);
    let mut req = call(
        2,
        "tools/call",
        json!({"name": "task_status", "arguments": {"task_id": "019a0000-0000-7000-8000-000000000000"}, "_meta": meta}),
    );
    req.headers_mut()
        .insert("mcp-name", "task_status".parse().unwrap());
    let (status, answer) = node.send(req).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    snapshot!("mcp_task_status_unknown", &answer);
    node.engine.shutdown().await;
}
