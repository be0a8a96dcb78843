//! Bad input gets a 4xx whose message names the problem, and nothing stored changes.

use crate::common::{Api, Baton};
use serde_json::{Value, json};

/// Every case: (what is sent, expected status, a fragment the message must contain).
async fn expect_error(api: &Api, body: Value, status: u16, fragment: &str) {
    let r = api.post("/v1/tasks", body.clone()).await;
    assert_eq!(r.status, status, "{body} -> {}", r.body);
    let msg = r.error_message();
    assert!(
        msg.contains(fragment),
        "{body}: message `{msg}` should mention `{fragment}`"
    );
}

#[tokio::test]
async fn bad_submissions_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(
        &dir.path().join("data"),
        &[("BATON_HTTP__MAX_BODY_BYTES", "65536")],
    );
    let api = Api::new(&baton.url);
    // A task stored before the bad input, which must come through untouched.
    let kept = api
        .submit(json!({"tool": "baton__echo", "arguments": {"keep": "me"}}))
        .await;
    let before = api.wait_final(&kept).await;

    // Malformed JSON and empty bodies.
    for (raw, fragment) in [
        ("{\"tool\": \"baton__echo\"", "malformed JSON"),
        ("{tool: baton__echo}", "malformed JSON"),
        ("", "empty"),
        ("[1, 2]", "invalid request"),
    ] {
        let r = api.post_raw("/v1/tasks", raw).await;
        assert_eq!(r.status, 400, "{raw:?}");
        assert!(r.error_message().contains(fragment), "{raw:?}: {}", r.body);
    }
    // Unknown tools.
    expect_error(
        &api,
        json!({"tool": "baton__nope"}),
        400,
        "unknown tool `baton__nope`",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "nope__x"}),
        400,
        "no server named `nope`",
    )
    .await;
    expect_error(&api, json!({"tool": "sleep"}), 400, "server__tool").await;
    expect_error(&api, json!({}), 400, "tool").await;
    // Wrong types, named by field.
    expect_error(&api, json!({"tool": 5}), 400, "`tool`").await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "priority": []}),
        400,
        "`priority`",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "priority": "urgent"}),
        400,
        "unknown priority",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "arguments": [1]}),
        400,
        "arguments",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "timeout_ms": "1s"}),
        400,
        "`timeout_ms`",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "argumnets": {}}),
        400,
        "argumnets",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__sleep", "arguments": {"ms": "five"}}),
        400,
        "/ms",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__sleep", "arguments": {}}),
        400,
        "ms",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__sleep", "arguments": {"ms": 1, "extra": true}}),
        400,
        "extra",
    )
    .await;
    // Negative and huge numbers.
    expect_error(
        &api,
        json!({"tool": "baton__sleep", "arguments": {"ms": -1}}),
        400,
        "/ms",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__sleep", "arguments": {"ms": 1e20}}),
        400,
        "/ms",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__sleep", "arguments": {"ms": 1, "steps": 0}}),
        400,
        "/steps",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "timeout_ms": -5}),
        400,
        "`timeout_ms`",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "timeout_ms": 0}),
        400,
        "timeout_ms",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "timeout_ms": 99_999_999_999u64}),
        400,
        "timeout_ms",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "max_attempts": 1_000_000_000}),
        400,
        "max_attempts",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "max_attempts": 0}),
        400,
        "max_attempts",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "priority": 1000}),
        400,
        "out of range",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "priority": -1}),
        400,
        "out of range",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "delay_ms": 1e30}),
        400,
        "delay_ms",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "run_at": "next tuesday"}),
        400,
        "run_at",
    )
    .await;
    expect_error(
        &api,
        json!({"tool": "baton__echo", "queue": "no spaces"}),
        400,
        "queue",
    )
    .await;
    // Oversize body.
    let big = json!({"tool": "baton__echo", "arguments": {"blob": "x".repeat(100_000)}});
    let r = api.post("/v1/tasks", big).await;
    assert_eq!(r.status, 413);
    assert!(
        r.error_message()
            .contains("at most 65536 bytes (http.max_body_bytes)"),
        "{}",
        r.body
    );
    // Batches.
    let r = api.post("/v1/tasks/batch", json!({"tasks": []})).await;
    assert_eq!(r.status, 400);
    let r = api
        .post(
            "/v1/tasks/batch",
            json!({"tasks": [{"tool": "baton__echo"}, {"tool": "baton__nope"}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("tasks[1]"), "{}", r.body);

    // Nothing was stored by any of that, and the earlier task is intact.
    let all = api.get("/v1/tasks?limit=1000").await;
    let tasks = all.body["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "only the first task exists: {}", all.body);
    let after = api.task(&kept).await;
    assert_eq!(after, before);
    let q = api.get("/v1/queues").await;
    assert_eq!(q.body["queues"][0]["counts"]["completed"], 1);
}

#[tokio::test]
async fn bad_ids_queries_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(&dir.path().join("data"), &[]);
    let api = Api::new(&baton.url);
    let unknown = "019a0000-0000-7000-8000-000000000000";
    for path in [
        format!("/v1/tasks/{unknown}"),
        format!("/v1/tasks/{unknown}/result"),
        format!("/v1/tasks/{unknown}/events"),
    ] {
        let r = api.get(&path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.error_message().contains(unknown), "{path}: {}", r.body);
    }
    assert_eq!(
        api.delete(&format!("/v1/tasks/{unknown}")).await.status,
        404
    );
    assert_eq!(
        api.post(&format!("/v1/tasks/{unknown}/retry"), json!(null))
            .await
            .status,
        404
    );
    let r = api.get("/v1/tasks/not-a-task-id").await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("not-a-task-id"));
    let id = api.submit(json!({"tool": "baton__echo"})).await;
    for (path, fragment) in [
        ("/v1/tasks?cursor=garbage".to_string(), "invalid cursor"),
        ("/v1/tasks?limit=0".to_string(), "limit"),
        ("/v1/tasks?limit=100000".to_string(), "limit"),
        ("/v1/tasks?limit=ten".to_string(), "limit"),
        ("/v1/tasks?status=done".to_string(), "unknown status `done`"),
        ("/v1/tasks?stauts=pending".to_string(), "stauts"),
        (format!("/v1/tasks/{id}/result?wait=100000"), "wait"),
        (format!("/v1/tasks/{id}/result?wait=-1"), "wait"),
    ] {
        let r = api.get(&path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.error_message().contains(fragment), "{path}: {}", r.body);
    }
    let r = api
        .send(
            api.http
                .get(format!("{}/v1/tasks/{id}/events", api.base))
                .header("Last-Event-ID", "abc"),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api.get("/v2/nothing").await;
    assert_eq!(r.status, 404);
    assert!(r.error_message().contains("/v2/nothing"));
    let r = api
        .send(api.http.put(format!("{}/v1/tasks", api.base)))
        .await;
    assert_eq!(r.status, 405);
    assert!(r.error_message().contains("PUT"));
}

/// What a web page can make the browser send: a cross-site form or `text/plain` fetch (no
/// CORS preflight), a foreign `Origin`, or a domain rebound to 127.0.0.1 (its own `Host`).
/// None of it reaches a handler: a command in a server registration never runs.
#[tokio::test]
async fn browser_requests_cannot_drive_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(&dir.path().join("data"), &[]);
    let api = Api::new(&baton.url);
    let port = baton.url.rsplit(':').next().unwrap().to_string();
    let marker = dir.path().join("the-command-ran");
    let register = json!({
        "name": "pwn",
        "command": "sh",
        "args": ["-c", format!("touch '{}'", marker.display())],
    })
    .to_string();
    let servers = format!("{}/v1/servers", api.base);

    // Bodies that are not declared JSON: 415, whatever they hold.
    for content_type in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut req = api.http.post(&servers).body(register.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let r = api.send(req).await;
        assert_eq!(r.status, 415, "{content_type:?}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "unsupported_media_type");
        assert!(
            r.error_message().contains("application/json"),
            "{content_type:?}: {}",
            r.body
        );
    }
    // JSON, but from a page of another site, or a page whose domain was rebound.
    for (header, value) in [
        ("origin", "http://evil.example".to_string()),
        ("origin", "null".to_string()),
        ("origin", format!("http://evil.example:{port}")),
        ("host", format!("evil.example:{port}")),
    ] {
        let r = api
            .send(
                api.http
                    .post(&servers)
                    .header("content-type", "application/json")
                    .header(header, &value)
                    .body(register.clone()),
            )
            .await;
        assert_eq!(r.status, 403, "{header}: {value}: {}", r.body);
        assert!(r.error_message().contains(&value), "{}", r.body);
    }
    // Reads from a rebound name are refused too, so a page cannot read results.
    let r = api
        .send(
            api.http
                .get(format!("{}/v1/tasks", api.base))
                .header("host", format!("rebound.example:{port}")),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // `/mcp` answers the same refusals as JSON-RPC errors.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "page", "version": "1"}}})
    .to_string();
    let resp = api
        .http
        .post(format!("{}/mcp", api.base))
        .header("content-type", "text/plain")
        .body(init.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );
    let resp = api
        .http
        .post(format!("{}/mcp", api.base))
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .body(init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // Nothing ran and nothing was registered.
    assert!(!marker.exists(), "a refused registration ran its command");
    let r = api.get("/v1/servers").await;
    assert_eq!(r.body["servers"].as_array().unwrap().len(), 0, "{}", r.body);

    // What the node's own clients send still works: YAML where documented, body-less
    // actions, JSON from loopback origins.
    let r = api
        .send(
            api.http
                .post(format!("{}/v1/workflows", api.base))
                .header("content-type", "application/yaml")
                .body("name: w\nsteps:\n  - { id: a, tool: baton__echo }\n"),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = api
        .send(
            api.http
                .post(format!("{}/v1/tasks", api.base))
                .header("content-type", "application/yaml")
                .body("tool: baton__echo\n"),
        )
        .await;
    assert_eq!(r.status, 415, "YAML is only for workflows: {}", r.body);
    let id = api.submit(json!({"tool": "baton__echo"})).await;
    api.wait_final(&id).await;
    let r = api
        .send(api.http.post(format!("{}/v1/tasks/{id}/retry", api.base)))
        .await;
    assert_eq!(
        r.status, 409,
        "a body-less action is not refused: {}",
        r.body
    );
    let r = api
        .send(
            api.http
                .post(format!("{}/v1/tasks", api.base))
                .header("content-type", "application/json; charset=utf-8")
                .header("origin", format!("http://localhost:{port}"))
                .body(r#"{"tool": "baton__echo"}"#),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    // The control: the same registration, sent as the CLI sends it, does run the command
    // (and fails, since `sh` is no MCP server), so the checks above are not vacuous.
    let r = api
        .send(
            api.http
                .post(&servers)
                .header("content-type", "application/json")
                .body(register),
        )
        .await;
    assert!(r.status >= 400, "{}", r.body);
    assert!(marker.exists(), "the control registration should have run");
}

/// Slow and idle clients cannot hold a node's connections: a request head must arrive
/// whole within `http.header_read_timeout` (which also closes keep-alive connections idle
/// for that long), and beyond `http.max_connections` new connections wait instead of the
/// node running out of descriptors. Without these, 500 slowloris sockets were all held.
#[tokio::test]
async fn slow_and_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(
        &dir.path().join("data"),
        &[
            ("BATON_HTTP__HEADER_READ_TIMEOUT", "1s"),
            ("BATON_HTTP__MAX_CONNECTIONS", "5"),
        ],
    );
    let addr = baton.url.trim_start_matches("http://").to_string();
    // Five clients trickling a head that never ends take every connection slot.
    let mut slow = Vec::new();
    for _ in 0..5 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
            .await
            .unwrap();
        slow.push(s);
    }
    // A sixth client waits for a slot, and is served once the slow ones are cut off.
    let started = std::time::Instant::now();
    let api = Api::new(&baton.url);
    let r = tokio::time::timeout(std::time::Duration::from_secs(20), api.get("/healthz"))
        .await
        .expect("served once the slow clients were closed");
    assert_eq!(r.status, 200);
    eprintln!("the sixth client waited {:?}", started.elapsed());
    for mut s in slow {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the slow connection was closed");
        // Closed: end of stream, a reset, or an error status before closing.
        if let Ok(n) = n
            && n > 0
        {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(
                text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.1 400"),
                "{text}"
            );
        }
    }
    // A keep-alive connection idle for longer than the timeout is closed too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), idle.read(&mut buf))
        .await
        .expect("the idle connection was closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "end of stream");
}
