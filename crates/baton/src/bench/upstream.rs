//! Calls through Baton to a real MCP server, and Baton's own MCP front door.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::client::Client;

use super::*;

pub(crate) fn testserver_path() -> anyhow::Result<std::path::PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("baton-testserver");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing; build it first: cargo build --release -p baton -p baton-testserver",
        bin.display()
    );
    Ok(bin)
}

pub(crate) fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub(crate) async fn upstream(args: &BenchArgs, calls: usize) -> anyhow::Result<Report> {
    let bin = testserver_path()?;
    let arguments = json!({"a": 2, "b": 3});
    // Direct: this process is the MCP client of its own copy of the server.
    let transport = baton_upstream::config::Transport::Stdio {
        command: bin.to_string_lossy().into(),
        args: Vec::new(),
        env: Default::default(),
        cwd: None,
    };
    let direct = baton_upstream::connection::Connection::open("direct", &transport, "bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut d = Histogram::<u64>::new(3)?;
    for i in 0..(100 + calls) {
        let t = Instant::now();
        direct
            .call_direct("add", arguments.clone())
            .await
            .map_err(anyhow::Error::msg)?;
        if i >= 100 {
            d.record(t.elapsed().as_micros() as u64)?;
        }
    }
    direct.close().await;

    // Through Baton: the same server registered on an embedded node.
    let server: baton_upstream::ServerConfig = serde_json::from_value(json!({
        "name": "bench", "command": bin.to_string_lossy()
    }))?;
    let node = Node::start(args, vec![server]).await?;
    let http = http_client();
    wait_bench_server(&node.url).await?;
    let body = json!({"tool": "bench__add", "arguments": arguments});
    let mut b = Histogram::<u64>::new(3)?;
    for i in 0..(100 + calls) {
        let t = Instant::now();
        // Submit and wait in one request: 200 with the result once the task finished.
        let r = http
            .post(format!("{}/v1/tasks?wait=30", node.url))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        anyhow::ensure!(
            status == 200 && v["status"] == "completed",
            "call failed: {status} {v}"
        );
        if i >= 100 {
            b.record(t.elapsed().as_micros() as u64)?;
        }
    }
    node.stop().await;
    Ok(Report {
        scenario: "upstream: tool call through Baton over a direct rmcp call (stdio, trivial tool)",
        figures: vec![
            ("calls", calls as f64, ""),
            ("direct p50", ms(&d, 0.5), "ms"),
            ("direct p99", ms(&d, 0.99), "ms"),
            ("through Baton p50", ms(&b, 0.5), "ms"),
            ("through Baton p99", ms(&b, 0.99), "ms"),
            ("added p50", ms(&b, 0.5) - ms(&d, 0.5), "ms"),
            ("added p99", ms(&b, 0.99) - ms(&d, 0.99), "ms"),
        ],
    })
}

/// An embedded node with `baton-testserver` registered as `bench`, once it is healthy.
pub(crate) async fn node_with_testserver(args: &BenchArgs) -> anyhow::Result<Node> {
    let bin = testserver_path()?;
    let server: baton_upstream::ServerConfig = serde_json::from_value(json!({
        "name": "bench", "command": bin.to_string_lossy()
    }))?;
    let node = Node::start(args, vec![server]).await?;
    wait_bench_server(&node.url).await?;
    Ok(node)
}

/// Waits until the node's `bench` server is healthy (at most 30 s).
pub(crate) async fn wait_bench_server(url: &str) -> anyhow::Result<()> {
    let client = Client::new(url);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, s) = client
            .send(client.http().get(client.url("/v1/servers/bench")))
            .await?;
        if s["state"] == "healthy" {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the bench server did not become healthy: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One 2026-07-28 `tools/call` of `bench__add`; checks the answer has the expected shape.
pub(crate) async fn mcp_call(
    http: &reqwest::Client,
    url: &str,
    id: usize,
    task: bool,
) -> anyhow::Result<()> {
    let caps = if task {
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}})
    } else {
        json!({})
    };
    let body = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "bench__add", "arguments": {"a": id, "b": 1},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities": caps}}
    });
    let r = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "bench__add")
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    // A quick answer is plain JSON; a slow one an SSE stream ending with the response.
    let last = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data:").map(str::trim))
        .unwrap_or(&text);
    let v: Value = serde_json::from_str(last)?;
    let ok = if task {
        v["result"]["resultType"] == "task"
    } else {
        v["result"]["structuredContent"]["sum"].as_f64() == Some(id as f64 + 1.0)
    };
    anyhow::ensure!(status == 200 && ok, "call failed: {status} {v}");
    Ok(())
}

pub(crate) async fn mcp(
    args: &BenchArgs,
    calls: usize,
    clients: usize,
    mode: McpMode,
) -> anyhow::Result<Report> {
    let node = node_with_testserver(args).await?;
    let client = Client::new(&node.url);
    let url = format!("{}/mcp", node.url);
    let http = http_client();
    let task = mode == McpMode::Task;
    // Warm up connections, the upstream and the store.
    for i in 0..200 {
        mcp_call(&http, &url, i, false).await?;
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients.max(1) {
        let (http, url, next) = (http.clone(), url.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= calls {
                    return anyhow::Ok(h);
                }
                let t = Instant::now();
                mcp_call(&http, &url, 1000 + i, task).await?;
                h.record(t.elapsed().as_micros() as u64)?;
            }
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    for w in workers {
        all.add(w.await??)?;
    }
    let answered = started.elapsed().as_secs_f64();
    let mut figures = vec![
        ("calls", calls as f64, ""),
        ("clients", clients as f64, ""),
        ("calls answered/s", calls as f64 / answered, "/s"),
        ("answer p50", ms(&all, 0.5), "ms"),
        ("answer p99", ms(&all, 0.99), "ms"),
    ];
    if task {
        let done = wait_done(&node, &client, "default", calls as u64).await?;
        figures.push((
            "tasks completed/s",
            calls as f64 / done.duration_since(started).as_secs_f64(),
            "/s",
        ));
    }
    node.stop().await;
    Ok(Report {
        scenario: if task {
            "mcp: tools/call through /mcp, task mode (2026-07-28 tasks extension)"
        } else {
            "mcp: tools/call through /mcp, plain mode (each call waits for its result)"
        },
        figures,
    })
}
