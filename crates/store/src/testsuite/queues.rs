//! Queue statistics and the figures estimates are made from.

use std::time::Duration;

use baton_core::task::NewTask;

use super::support::{SEC, claim, complete, create, new_task, t0};
use crate::Store;

pub async fn queue_stats_and_active_count(store: &dyn Store) {
    let mut tasks: Vec<NewTask> = (0..3).map(|_| new_task("t", 50, t0())).collect();
    tasks[2].queue = "batch".into();
    let ids = create(store, tasks).await;
    claim(store, "w", 1, t0(), 1).await;
    store.finish(vec![complete(ids[0], 1, t0())]).await.unwrap();
    assert_eq!(store.count_active().await.unwrap(), 2);
    let stats = store
        .queue_stats(t0().saturating_add(SEC), None)
        .await
        .unwrap();
    let default = stats.iter().find(|q| q.name == "default").unwrap();
    assert_eq!(default.counts["completed"], 1);
    assert_eq!(default.counts["pending"], 1);
    assert_eq!(default.counts["running"], 0);
    assert_eq!(default.completed_last_minute, 1);
    assert!(!default.paused);
    let batch = stats.iter().find(|q| q.name == "batch").unwrap();
    assert_eq!(batch.counts["pending"], 1);
    assert_eq!(batch.oldest_pending_run_at, Some(t0()));
}

pub async fn recent_durations(store: &dyn Store) {
    let ids = create(store, (0..3).map(|_| new_task("t", 50, t0())).collect()).await;
    claim(store, "w", 3, t0(), 1).await;
    for (i, id) in ids.iter().enumerate() {
        store
            .finish(vec![complete(
                *id,
                1,
                t0().saturating_add(Duration::from_millis(100 * (i as u64 + 1))),
            )])
            .await
            .unwrap();
    }
    assert_eq!(
        store.recent_durations("t", 2).await.unwrap(),
        vec![300, 200]
    );
    assert!(store.recent_durations("other", 5).await.unwrap().is_empty());
}
