//! Analytics: the aggregates a store computes over a window of tasks.

use baton_core::policy::Transition;
use baton_core::{TaskError, Timestamp};
use serde_json::json;

use super::support::{SEC, claim, create, new_task, t0};
use crate::{AnalyticsKey, AnalyticsQuery, DURATION_BOUNDS_MS, Finish, Store};

fn finish(id: baton_core::TaskId, at: Timestamp, result: serde_json::Value) -> Finish {
    Finish {
        id,
        token: 1,
        transition: Transition::Complete { result },
        at,
    }
}

/// Counts by status, retries, reported costs and tokens, duration histograms and a
/// series, grouped by a column, over the tasks created in the window and of the owner
/// asked for only.
pub async fn analytics_aggregate_a_window_of_tasks(store: &dyn Store) {
    let start = t0().saturating_add(60 * SEC);
    // Before the window: never counted.
    create(store, vec![new_task("early__tool", 50, t0())]).await;
    let mut tasks = vec![
        new_task("s__paid", 50, start),
        new_task("s__paid", 50, start),
        new_task("s__free", 50, start),
        new_task("s__free", 50, start),
    ];
    tasks[3].queue = "other".into();
    let mut foreign = new_task("s__paid", 50, start);
    foreign.owner = "bob".into();
    tasks.push(foreign);
    let ids = create(store, tasks).await;
    // The early task is claimed first (oldest); finish it too, outside the window.
    let early = claim(store, "w", 1, start, 1).await;
    let running = claim(store, "w", 5, start.saturating_add(SEC), 1).await;
    assert_eq!((early.len(), running.len()), (1, 5));
    let paid = json!({"content": [], "_meta": {"baton/cost": {"usd": 0.25, "input_tokens": 100, "output_tokens": 7}}});
    let odd = json!({"content": [], "_meta": {"baton/cost": {"usd": "lots"}}});
    let done = start.saturating_add(3 * SEC);
    store
        .finish(vec![
            finish(ids[0], done, paid.clone()),
            finish(
                ids[1],
                start.saturating_add(SEC + std::time::Duration::from_millis(30)),
                odd,
            ),
            finish(ids[2], done, json!({"content": []})),
            Finish {
                id: ids[3],
                token: 1,
                transition: Transition::Fail {
                    error: TaskError::new("boom", "failed", false),
                },
                at: done,
            },
            finish(ids[4], done, paid),
        ])
        .await
        .unwrap();

    let q = AnalyticsQuery {
        since: start,
        until: start.saturating_add(3600 * SEC),
        key: AnalyticsKey::Tool,
        owner: Some("alice".into()),
        bucket_ms: 1000,
    };
    let rows = store.analytics(&q).await.unwrap();
    let count = |tool: &str, status: &str| {
        rows.counts
            .iter()
            .filter(|c| c.tool == tool && c.status == status)
            .map(|c| c.n)
            .sum::<u64>()
    };
    assert_eq!(count("s__paid", "completed"), 2);
    assert_eq!(count("s__free", "completed"), 1);
    assert_eq!(count("s__free", "failed"), 1);
    assert_eq!(count("early__tool", "running"), 0, "outside the window");
    let paid = rows
        .counts
        .iter()
        .find(|c| c.tool == "s__paid" && c.status == "completed")
        .unwrap();
    assert_eq!(paid.group.as_deref(), Some("s__paid"));
    // Bob's task is not alice's; a cost that is not a number is not a cost.
    assert_eq!((paid.cost_usd, paid.costed), (0.25, 1));
    assert_eq!((paid.input_tokens, paid.output_tokens), (100.0, 7.0));
    // Runs: 2 s for three tasks (bucket [2000, 5000)), 30 ms for one ([20, 50)).
    let run = |lo: i64| {
        let i = DURATION_BOUNDS_MS.iter().position(|b| *b > lo).unwrap();
        rows.histograms
            .iter()
            .filter(|h| h.run_bucket == Some(i))
            .map(|h| h.n)
            .sum::<u64>()
    };
    assert_eq!(run(2000), 3);
    assert_eq!(run(30), 1);
    // Waits: due at `start`, started a second later.
    let i = DURATION_BOUNDS_MS.iter().position(|b| *b > 1000).unwrap();
    assert!(
        rows.histograms.iter().all(|h| h.wait_bucket == i),
        "{:?}",
        rows.histograms
    );
    // Series: finishes 3 s after `start` (bucket 3), one at 1.03 s (bucket 1).
    let at = |b: i64| {
        rows.series
            .iter()
            .filter(|p| p.bucket == b)
            .map(|p| p.n)
            .sum::<u64>()
    };
    assert_eq!((at(1), at(3)), (1, 3));

    // Grouped by queue, every owner.
    let rows = store
        .analytics(&AnalyticsQuery {
            key: AnalyticsKey::Queue,
            owner: None,
            ..q.clone()
        })
        .await
        .unwrap();
    let in_queue = |queue: &str| {
        rows.counts
            .iter()
            .filter(|c| c.group.as_deref() == Some(queue))
            .map(|c| c.n)
            .sum::<u64>()
    };
    assert_eq!((in_queue("default"), in_queue("other")), (4, 1));
    // Workflows: none of these is a step.
    let rows = store
        .analytics(&AnalyticsQuery {
            key: AnalyticsKey::Workflow,
            ..q
        })
        .await
        .unwrap();
    assert!(rows.counts.is_empty());
}
