//! Throughput: batched submissions, and one HTTP request per task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::json;

use crate::client::Client;

use super::*;

/// What `bench batch` submits.
pub(crate) struct BatchShape {
    pub(crate) tasks: usize,
    pub(crate) batch_size: usize,
    pub(crate) clients: usize,
    /// Group keys the tasks are spread over (0: none).
    pub(crate) groups: usize,
}

pub(crate) async fn batch(
    node: &Node,
    client: &Client,
    queue: &str,
    shape: BatchShape,
) -> anyhow::Result<Report> {
    let BatchShape {
        tasks,
        batch_size,
        clients,
        groups,
    } = shape;
    let url = node.url.as_str();
    let http = http_client();
    let next = Arc::new(AtomicU64::new(0));
    let batches = tasks.div_ceil(batch_size) as u64;
    let start = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..clients.max(1) {
        let (http, next, url, queue) = (
            http.clone(),
            next.clone(),
            url.to_string(),
            queue.to_string(),
        );
        joins.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok::<(), anyhow::Error>(());
                }
                let from = b as usize * batch_size;
                let to = (from + batch_size).min(tasks);
                let body = json!({"tasks": (from..to).map(|i| {
                    let mut t = task_body(&queue, i);
                    if groups > 0 {
                        t["group_key"] = json!(format!("g{}", i % groups));
                    }
                    t
                }).collect::<Vec<_>>()});
                let r = http
                    .post(format!("{url}/v1/tasks/batch"))
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    r.status() == 202,
                    "batch refused: {} {}",
                    r.status(),
                    r.text().await?
                );
            }
        }));
    }
    for j in joins {
        j.await??;
    }
    let submitted = start.elapsed();
    let done = wait_done(node, client, queue, tasks as u64)
        .await?
        .duration_since(start);
    Ok(Report {
        scenario: "batch: submit→complete, batched submissions",
        figures: vec![
            ("tasks", tasks as f64, ""),
            ("batch size", batch_size as f64, ""),
            (
                "submit rate",
                tasks as f64 / submitted.as_secs_f64(),
                "tasks/s",
            ),
            (
                "submit→complete throughput",
                tasks as f64 / done.as_secs_f64(),
                "tasks/s",
            ),
            ("wall time", done.as_secs_f64(), "s"),
        ],
    })
}

pub(crate) async fn per_request(
    node: &Node,
    client: &Client,
    queue: &str,
    tasks: usize,
    clients: usize,
) -> anyhow::Result<Report> {
    let http = http_client();
    let (url, owned_queue) = (node.url.clone(), queue.to_string());
    let start = Instant::now();
    let hist = fan_out(clients, tasks, move |i| {
        let (http, url, queue) = (http.clone(), url.clone(), owned_queue.clone());
        async move { submit_one(&http, &url, &queue, i).await.map(|_| ()) }
    })
    .await?;
    let submitted = start.elapsed();
    let done = wait_done(node, client, queue, tasks as u64)
        .await?
        .duration_since(start);
    Ok(Report {
        scenario: "http: submit→complete, one request per task",
        figures: vec![
            ("tasks", tasks as f64, ""),
            ("clients", clients as f64, ""),
            (
                "submit rate (202s)",
                tasks as f64 / submitted.as_secs_f64(),
                "tasks/s",
            ),
            (
                "submit→complete throughput",
                tasks as f64 / done.as_secs_f64(),
                "tasks/s",
            ),
            (
                "202 latency p50",
                hist.value_at_quantile(0.5) as f64 / 1000.0,
                "ms",
            ),
            (
                "202 latency p99",
                hist.value_at_quantile(0.99) as f64 / 1000.0,
                "ms",
            ),
        ],
    })
}
