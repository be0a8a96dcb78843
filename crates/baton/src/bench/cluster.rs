//! Two nodes on one PostgreSQL database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::Value;

use super::*;

pub(crate) async fn cross_node(
    args: &BenchArgs,
    tasks: usize,
    concurrency: usize,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.store.is_some() && args.target.is_none(),
        "cross-node needs --store postgres://… (and no --target)"
    );
    let mut node = Node::start_with(args, Vec::new(), 0).await?;
    node.add_worker(args).await?;
    let http = http_client();
    let queue = format!("bench-{:08x}", rand_u32());
    // Warm-up: connections, the worker's first claims.
    for i in 0..50 {
        let id = submit_one(&http, &node.url, &queue, i).await?;
        wait_result(&http, &node.url, &id).await?;
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (http, next, url, queue) =
            (http.clone(), next.clone(), node.url.clone(), queue.clone());
        joins.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= tasks {
                    return anyhow::Ok(ids);
                }
                let id = submit_one(&http, &url, &queue, i).await?;
                wait_result(&http, &url, &id).await?;
                ids.push(id);
            }
        }));
    }
    let mut ids = Vec::new();
    for j in joins {
        ids.extend(j.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Submit→start as the store recorded it: the API node stamped `created_at`, the
    // worker `started_at` (one clock: both run on this machine).
    let mut hist = Histogram::<u64>::new(3)?;
    for id in &ids {
        let t: Value = http
            .get(format!("{}/v1/tasks/{id}", node.url))
            .send()
            .await?
            .json()
            .await?;
        let at = |k: &str| {
            t[k].as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.timestamp_millis())
        };
        if let (Some(c), Some(s)) = (at("created_at"), at("started_at")) {
            hist.record((s - c).max(0) as u64)?;
        }
    }
    node.stop().await;
    Ok(Report {
        scenario: "cross-node: submitted to an API node, run by a worker process (PostgreSQL)",
        figures: vec![
            ("tasks", tasks as f64, ""),
            ("concurrency", concurrency as f64, ""),
            ("submit→complete per second", tasks as f64 / elapsed, "/s"),
            ("submit→start p50", hist.value_at_quantile(0.5) as f64, "ms"),
            (
                "submit→start p99",
                hist.value_at_quantile(0.99) as f64,
                "ms",
            ),
            ("submit→start max", hist.max() as f64, "ms"),
        ],
    })
}
