//! `baton bench analytics`: how long `GET /v1/analytics` takes over a large store.
//!
//! Fills a fresh store (SQLite, or `--store` PostgreSQL) directly with `--tasks` tasks
//! spread over the last 24 hours (20 tools on 4 servers, 5 queues, 10 principals, a
//! tenth of them workflow steps; most completed, some failed with costs reported, a few
//! still pending), folds the day into the per-minute rollup as the maintenance holder
//! would, then starts a node on it and times the analytics request for every grouping
//! over the whole day, and for one hour, over HTTP.

use std::time::{Duration, Instant};

use baton_core::policy::Transition;
use baton_core::task::{NewTask, StepRef};
use baton_core::{TaskError, TaskId, Timestamp};
use baton_store::{ClaimRequest, Finish, Store};
use serde_json::json;

use super::*;

/// Tasks per batch: a batch every 86 s for a million, so the day has finishes in most
/// of its minutes, as a steady load would.
const BATCH: usize = 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Writes `n` tasks created over the day before `end`, batch by batch: each batch is
/// created, claimed and finished at its own time.
async fn fill(store: &dyn Store, n: usize, end: Timestamp) -> anyhow::Result<()> {
    let batches = n.div_ceil(BATCH).max(1);
    let step = DAY_MS / batches as i64;
    let later = end.saturating_add(Duration::from_secs(365 * 24 * 3600));
    let mut made = 0;
    for b in 0..batches {
        let t = Timestamp::from_millis(end.as_millis() - DAY_MS + b as i64 * step);
        let size = BATCH.min(n - made);
        let tasks: Vec<NewTask> = (0..size)
            .map(|i| {
                let k = made + i;
                // One in fifty stays pending (due next year), so not every task is over.
                let pending = k % 50 == 49;
                NewTask {
                    id: TaskId::generate(t),
                    tool: format!("srv{}__tool{}", k % 4, k % 20),
                    arguments: json!({"i": k}),
                    queue: format!("q{}", k % 5),
                    priority: 50,
                    max_attempts: 3,
                    run_at: if pending { later } else { t },
                    timeout_ms: None,
                    idempotency_key: None,
                    owner: format!("tenant{}", k % 10),
                    parent_id: None,
                    step: (k % 10 == 0).then(|| StepRef {
                        workflow_id: format!("wf-{}", k / 100),
                        step_id: format!("s{k}"),
                    }),
                    metadata: None,
                    created_at: t,
                    expires_at: None,
                    trace_parent: None,
                    group_key: None,
                    callback_url: None,
                    cache: None,
                }
            })
            .collect();
        store.create_tasks(tasks).await?;
        let started = t.saturating_add(Duration::from_millis(50));
        let (claimed, _) = store
            .claim(&ClaimRequest {
                owner: "bench",
                limit: size,
                now: started,
                lease_until: started.saturating_add(Duration::from_secs(60)),
                token: 1,
                limits: &[],
                rates: &[],
                group_max: None,
            })
            .await?;
        let finishes = claimed
            .iter()
            .enumerate()
            .map(|(i, task)| {
                let at = started.saturating_add(Duration::from_millis((i as u64 * 37) % 2000));
                let transition = if i % 12 == 0 {
                    Transition::Fail {
                        error: TaskError::new("tool_error", "failed", false),
                    }
                } else if i % 3 == 0 {
                    Transition::Complete {
                        result: json!({"content": [], "_meta": {"baton/cost": {
                            "usd": 0.001 * (i % 7) as f64, "input_tokens": 100, "output_tokens": 20
                        }}}),
                    }
                } else {
                    Transition::Complete {
                        result: json!({"content": [{"type": "text", "text": "ok"}]}),
                    }
                };
                Finish {
                    id: task.id,
                    token: 1,
                    transition,
                    at,
                }
            })
            .collect();
        store.finish(finishes).await?;
        made += size;
        if b % 100 == 99 {
            eprintln!("  filled {made} of {n} tasks");
        }
    }
    Ok(())
}

pub(crate) async fn analytics(
    args: &BenchArgs,
    tasks: usize,
    runs: usize,
) -> anyhow::Result<Report> {
    let (config, schema, dir) = Node::config(args, Vec::new(), args.workers)?;
    std::fs::create_dir_all(&config.data_dir)?;
    let now = Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64,
    );
    let store = baton_server::app::open_store(&config).await?;
    eprintln!("filling the store with {tasks} tasks");
    let t = Instant::now();
    fill(&*store, tasks, now).await?;
    let fill_s = t.elapsed().as_secs_f64();
    eprintln!("folding the day into the analytics rollup");
    let t = Instant::now();
    let upto = now.saturating_sub(Duration::from_secs(120));
    let mut folded = Timestamp::from_millis(0);
    while upto.millis_since(folded) >= 60_000 {
        let at = store.fold_analytics(upto, 10).await?;
        anyhow::ensure!(at > folded, "the rollup did not move past {folded}");
        folded = at;
    }
    let fold_s = t.elapsed().as_secs_f64();
    store.close().await;
    drop(store);

    let node = Node::serve(config, schema, dir).await?;
    let url = node.url.clone();
    let http = http_client();
    let mut figures = vec![
        ("tasks", tasks as f64, ""),
        ("fill", fill_s, "s"),
        ("fold a day into the rollup", fold_s, "s"),
    ];
    let cases: [(&'static str, &str); 6] = [
        ("group_by=tool, 24 h, p50", "since=25h&group_by=tool"),
        ("group_by=server, 24 h, p50", "since=25h&group_by=server"),
        ("group_by=queue, 24 h, p50", "since=25h&group_by=queue"),
        (
            "group_by=principal, 24 h, p50",
            "since=25h&group_by=principal",
        ),
        (
            "group_by=workflow, 24 h, p50",
            "since=25h&group_by=workflow",
        ),
        ("group_by=tool, 1 h, p50", "since=1h&group_by=tool"),
    ];
    for (name, query) in cases {
        let mut ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let r = http
                .get(format!("{url}/v1/analytics?{query}"))
                .send()
                .await?;
            let status = r.status();
            let body: serde_json::Value = r.json().await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(status.is_success(), "{query}: {status} {body}");
        }
        ms.sort_by(f64::total_cmp);
        figures.push((name, ms[ms.len() / 2], "ms"));
    }
    node.stop().await;
    Ok(Report {
        scenario: "analytics",
        figures,
    })
}
