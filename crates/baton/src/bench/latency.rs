//! Latency: one client submitting and waiting, one task after another; and workflows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::*;

pub(crate) async fn latency(
    url: &str,
    queue: &str,
    tasks: usize,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let http = http_client();
    // Warm up connections and caches.
    for i in 0..50 {
        let id = submit_one(&http, url, queue, i).await?;
        wait_result(&http, url, &id).await?;
    }
    let (url, queue) = (url.to_string(), queue.to_string());
    let hist = fan_out(concurrency, tasks, move |i| {
        let (http, url, queue) = (http.clone(), url.clone(), queue.clone());
        async move {
            let id = submit_one(&http, &url, &queue, i).await?;
            wait_result(&http, &url, &id).await
        }
    })
    .await?;
    Ok(Report {
        scenario: "latency: submit→complete as seen by a client",
        figures: vec![
            ("tasks", tasks as f64, ""),
            ("concurrency", concurrency as f64, ""),
            ("p50", hist.value_at_quantile(0.5) as f64 / 1000.0, "ms"),
            ("p90", hist.value_at_quantile(0.9) as f64 / 1000.0, "ms"),
            ("p99", hist.value_at_quantile(0.99) as f64 / 1000.0, "ms"),
            ("max", hist.max() as f64 / 1000.0, "ms"),
        ],
    })
}

pub(crate) async fn workflow(
    url: &str,
    queue: &str,
    workflows: usize,
    width: usize,
) -> anyhow::Result<Report> {
    let http = http_client();
    let mut steps = vec![json!({"id": "first", "tool": "baton__echo", "queue": queue})];
    let middle: Vec<String> = (0..width.max(1)).map(|i| format!("m{i}")).collect();
    for m in &middle {
        steps
            .push(json!({"id": m, "tool": "baton__echo", "queue": queue, "depends_on": ["first"]}));
    }
    steps.push(json!({"id": "join", "tool": "baton__echo", "queue": queue, "depends_on": middle}));
    let definition = json!({"name": "bench-diamond", "steps": steps});
    let mut wall = Histogram::<u64>::new(3)?;
    let mut handoff = Histogram::<u64>::new(3)?;
    let started = Instant::now();
    for _ in 0..workflows {
        let t = Instant::now();
        let r = http
            .post(format!("{url}/v1/workflows"))
            .json(&definition)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 202, "workflow refused: {}", r.status());
        let v: Value = r.json().await?;
        let id = v["workflow_id"].as_str().unwrap_or_default().to_string();
        loop {
            let wf: Value = http
                .get(format!("{url}/v1/workflows/{id}"))
                .send()
                .await?
                .json()
                .await?;
            match wf["status"].as_str() {
                Some("running") => tokio::time::sleep(Duration::from_millis(2)).await,
                Some("completed") => break,
                other => anyhow::bail!("workflow {id} ended {other:?}"),
            }
        }
        wall.record(t.elapsed().as_micros() as u64)?;
        // Hand-offs, from the stored event times (milliseconds).
        let tl: Value = http
            .get(format!("{url}/v1/workflows/{id}/timeline"))
            .send()
            .await?
            .json()
            .await?;
        let at = |step: &str, kind: &str| -> Option<i64> {
            tl["events"].as_array()?.iter().find_map(|e| {
                (e["step_id"] == step && e["kind"] == kind)
                    .then(|| millis(&e["at"]))
                    .flatten()
            })
        };
        if let Some(done) = at("first", "completed") {
            for m in &middle {
                if let Some(created) = at(m, "created") {
                    handoff.record((created - done).max(0) as u64)?;
                }
            }
        }
        let last = middle.iter().filter_map(|m| at(m, "completed")).max();
        if let (Some(done), Some(created)) = (last, at("join", "created")) {
            handoff.record((created - done).max(0) as u64)?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Report {
        scenario: "workflow: diamonds of baton__echo steps, one after another",
        figures: vec![
            ("workflows", workflows as f64, ""),
            ("steps per workflow", (width + 2) as f64, ""),
            ("workflows per second", workflows as f64 / secs, "/s"),
            (
                "wall time p50",
                wall.value_at_quantile(0.5) as f64 / 1000.0,
                "ms",
            ),
            (
                "wall time p99",
                wall.value_at_quantile(0.99) as f64 / 1000.0,
                "ms",
            ),
            ("hand-off p50", handoff.value_at_quantile(0.5) as f64, "ms"),
            ("hand-off p99", handoff.value_at_quantile(0.99) as f64, "ms"),
            ("hand-off max", handoff.max() as f64, "ms"),
        ],
    })
}

/// An RFC 3339 timestamp as milliseconds since the epoch.
pub(crate) fn millis(v: &Value) -> Option<i64> {
    Some(
        baton_core::Timestamp::parse_rfc3339(v.as_str()?)
            .ok()?
            .as_millis(),
    )
}

/// Runs `op(i)` for every `i` in `0..tasks`, `workers` at a time (each worker takes the
/// next index), and returns the histogram of their durations in microseconds.
pub(crate) async fn fan_out<F, Fut>(
    workers: usize,
    tasks: usize,
    op: F,
) -> anyhow::Result<Histogram<u64>>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut joins = Vec::new();
    for _ in 0..workers.max(1) {
        let (next, op) = (next.clone(), op.clone());
        joins.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= tasks {
                    return Ok::<_, anyhow::Error>(h);
                }
                let t = Instant::now();
                op(i).await?;
                h.record(t.elapsed().as_micros() as u64)?;
            }
        }));
    }
    let mut hist = Histogram::<u64>::new(3)?;
    for j in joins {
        hist.add(j.await??)?;
    }
    Ok(hist)
}

pub(crate) async fn submit_one(
    http: &reqwest::Client,
    url: &str,
    queue: &str,
    i: usize,
) -> anyhow::Result<String> {
    let r = http
        .post(format!("{url}/v1/tasks"))
        .json(&task_body(queue, i))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 202, "submit refused: {}", r.status());
    let v: Value = r.json().await?;
    Ok(v["task_id"].as_str().unwrap_or_default().to_string())
}

pub(crate) async fn wait_result(http: &reqwest::Client, url: &str, id: &str) -> anyhow::Result<()> {
    loop {
        let r = http
            .get(format!("{url}/v1/tasks/{id}/result?wait=30"))
            .send()
            .await?;
        let status = r.status();
        let _ = r.bytes().await?;
        if status == 200 {
            return Ok(());
        }
        anyhow::ensure!(status == 202, "result: {status}");
    }
}
