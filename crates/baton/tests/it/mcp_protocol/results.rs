//! What calls give back over time: waiting calls (keep-alives, disconnects,
//! cancellation), task subscriptions, and rich upstream results passed through exactly.

use futures::StreamExt;
use serde_json::{Value, json};

use super::{LONG, Mcp, sse_data, start};
use crate::common::{Api, eventually, everything_bin, wait_healthy};

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
    let mut id = 0;
    for (tool, args) in &calls {
        // Some results hold the time to the second (a blob "created at 11:24:31 AM"): the
        // pair of calls is made again when the two happened to straddle a second. A result
        // that differs otherwise differs every time.
        let mut attempts = 0;
        loop {
            id += 1;
            let through = mcp
                .legacy(
                    &session,
                    id,
                    "tools/call",
                    json!({"name": format!("everything__{tool}"), "arguments": args}),
                )
                .await;
            let through = through.last()["result"].clone();
            let expected = direct.call(tool, args.clone()).await;
            attempts += 1;
            if through == expected || attempts == 3 {
                assert_eq!(through, expected, "{tool}");
                break;
            }
        }
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
