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
/// series, grouped by a column, over the tasks finished in the window (and open ones
/// created in it) and of the owner asked for only; the same read from the tasks and,
/// once folded, from the per-minute rollup.
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

    // Created in the window after the claims: still pending, counted by its status.
    create(store, vec![new_task("s__free", 50, start)]).await;

    let hour = AnalyticsQuery {
        since: start,
        until: start.saturating_add(3600 * SEC),
        key: AnalyticsKey::Tool,
        owner: Some("alice".into()),
        bucket_ms: 1000,
    };
    // From the tasks (seconds), from the tasks again (minutes, nothing folded yet), then
    // from the rollup once the hour is folded: the same figures.
    for (step, bucket_ms) in [(0, 1000), (1, 60_000), (2, 60_000), (3, 1000)] {
        if step == 2 {
            let upto = start.saturating_add(7200 * SEC);
            let folded = store.fold_analytics(upto, 10_000).await.unwrap();
            assert_eq!(folded, upto);
            // Folding again changes nothing.
            assert_eq!(store.fold_analytics(upto, 10_000).await.unwrap(), upto);
        }
        let q = AnalyticsQuery {
            bucket_ms,
            ..hour.clone()
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
        assert_eq!(count("s__free", "pending"), 1);
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
            rows.counts.iter().map(|c| c.run[i]).sum::<u64>()
        };
        assert_eq!(run(2000), 3);
        assert_eq!(run(30), 1);
        // Waits: due at `start`, started a second later.
        let i = DURATION_BOUNDS_MS.iter().position(|b| *b > 1000).unwrap();
        assert!(
            rows.counts
                .iter()
                .all(|c| c.wait.iter().enumerate().all(|(j, n)| *n == 0 || j == i)),
            "{:?}",
            rows.counts
        );
        assert_eq!(rows.counts.iter().map(|c| c.wait[i]).sum::<u64>(), 4);
        // Series: finishes 3 s after `start` (bucket 3), one at 1.03 s (bucket 1).
        let at = |b: i64| {
            rows.series
                .iter()
                .filter(|p| p.bucket == b)
                .map(|p| p.n)
                .sum::<u64>()
        };
        if bucket_ms == 1000 {
            assert_eq!((at(1), at(3)), (1, 3), "step {step}");
        } else {
            // Finishes in a minute count in the bucket of its start.
            assert_eq!(at(0), 4, "step {step}");
        }
    }

    // A window starting within a minute: its first seconds come from the tasks.
    let late = AnalyticsQuery {
        since: start.saturating_add(2 * SEC),
        bucket_ms: 60_000,
        ..hour.clone()
    };
    let rows = store.analytics(&late).await.unwrap();
    let completed: u64 = rows
        .counts
        .iter()
        .filter(|c| c.status == "completed")
        .map(|c| c.n)
        .sum();
    assert_eq!(completed, 2, "the finish at 1.03 s is before the window");

    // Grouped by queue, every owner.
    let rows = store
        .analytics(&AnalyticsQuery {
            key: AnalyticsKey::Queue,
            owner: None,
            bucket_ms: 60_000,
            ..hour.clone()
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
    assert_eq!((in_queue("default"), in_queue("other")), (5, 1));
    // Workflows: none of these is a step.
    let rows = store
        .analytics(&AnalyticsQuery {
            key: AnalyticsKey::Workflow,
            ..hour
        })
        .await
        .unwrap();
    assert!(rows.counts.is_empty());
}
