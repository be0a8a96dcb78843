//! The result cache: a workload of calls to a slow upstream tool, many of them repeats,
//! run with the cache and with it bypassed, on fresh nodes. The upstream (the test
//! server's `slow`, over stdio) records every call it gets, so the calls avoided are
//! counted where they would have happened.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::*;

/// The shape of the workload.
pub(crate) struct CacheShape {
    pub(crate) calls: usize,
    /// Different argument sets; call `i` uses set `i % distinct`.
    pub(crate) distinct: usize,
    pub(crate) clients: usize,
    /// How long one upstream call takes.
    pub(crate) tool_ms: u64,
}

struct Run {
    latency: Histogram<u64>,
    /// Of the calls the cache answered (`cached_from`: at once, or after waiting for
    /// an identical call in flight).
    answered: Histogram<u64>,
    upstream_calls: usize,
    secs: f64,
}

/// Calls the test server got: one line per call in its `slow-<id>.started` files.
fn upstream_calls(state: &Path) -> usize {
    std::fs::read_dir(state)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".started"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .map(|s| s.lines().count())
                .sum()
        })
        .unwrap_or(0)
}

async fn run_once(args: &BenchArgs, shape: &CacheShape, mode: &'static str) -> anyhow::Result<Run> {
    anyhow::ensure!(args.target.is_none(), "bench cache starts its own nodes");
    let bin = testserver_path()?;
    let state = tempfile::tempdir()?;
    let server: baton_upstream::ServerConfig = serde_json::from_value(json!({
        "name": "bench", "command": bin.to_string_lossy(),
        "args": ["--state-dir", state.path().to_string_lossy()],
    }))?;
    let (mut config, schema, dir) = Node::config(args, vec![server], args.workers)?;
    config.cache.tools.insert(
        "bench__slow".into(),
        baton_engine::cache::CacheSettingSpec::Ttl("1h".into()),
    );
    let node = Node::serve(config, schema, dir).await?;
    wait_bench_server(&node.url).await?;
    let http = http_client();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..shape.clients.max(1) {
        let (http, next) = (http.clone(), next.clone());
        let url = format!("{}/v1/tasks?wait=60", node.url);
        let (calls, distinct, tool_ms) = (shape.calls, shape.distinct.max(1), shape.tool_ms);
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            let mut answered = Histogram::<u64>::new(3)?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= calls {
                    return anyhow::Ok((h, answered));
                }
                let body = json!({
                    "tool": "bench__slow",
                    "arguments": {"duration_ms": tool_ms, "steps": 1, "id": format!("k{}", i % distinct)},
                    "cache": mode,
                });
                let t = Instant::now();
                let r = http.post(&url).json(&body).send().await?;
                let status = r.status();
                let v: Value = r.json().await?;
                anyhow::ensure!(
                    status == 200 && v["status"] == "completed",
                    "call failed: {status} {v}"
                );
                let took = t.elapsed().as_micros() as u64;
                h.record(took)?;
                if v.get("cached_from").is_some() {
                    answered.record(took)?;
                }
            }
        }));
    }
    let mut latency = Histogram::<u64>::new(3)?;
    let mut answered = Histogram::<u64>::new(3)?;
    for w in workers {
        let (h, a) = w.await??;
        latency.add(h)?;
        answered.add(a)?;
    }
    let secs = started.elapsed().as_secs_f64();
    node.stop().await;
    Ok(Run {
        latency,
        answered,
        upstream_calls: upstream_calls(state.path()),
        secs,
    })
}

pub(crate) async fn cache(args: &BenchArgs, shape: CacheShape) -> anyhow::Result<Report> {
    let off = run_once(args, &shape, "bypass").await?;
    let on = run_once(args, &shape, "use").await?;
    let calls = shape.calls as f64;
    Ok(Report {
        scenario: "cache: calls of a slow upstream tool, repeats answered from the result cache (use) vs every call made (bypass)",
        figures: vec![
            ("calls", calls, ""),
            ("distinct argument sets", shape.distinct as f64, ""),
            ("clients", shape.clients as f64, ""),
            ("upstream call", shape.tool_ms as f64, "ms"),
            ("upstream calls, bypass", off.upstream_calls as f64, ""),
            ("upstream calls, cache", on.upstream_calls as f64, ""),
            (
                "calls avoided",
                100.0 * (1.0 - on.upstream_calls as f64 / off.upstream_calls.max(1) as f64),
                "%",
            ),
            ("p50, bypass", ms(&off.latency, 0.5), "ms"),
            ("p99, bypass", ms(&off.latency, 0.99), "ms"),
            ("p50, cache", ms(&on.latency, 0.5), "ms"),
            ("p99, cache", ms(&on.latency, 0.99), "ms"),
            ("answered by the cache", on.answered.len() as f64, ""),
            ("p50 of those", ms(&on.answered, 0.5), "ms"),
            ("p99 of those", ms(&on.answered, 0.99), "ms"),
            ("calls/s, bypass", calls / off.secs, "/s"),
            ("calls/s, cache", calls / on.secs, "/s"),
        ],
    })
}
