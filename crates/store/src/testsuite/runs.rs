//! Writes of a run under its lease: finishing and progress, fenced by the lease token.

use baton_core::policy::Transition;
use baton_core::{EventKind, TaskError, TaskStatus};
use serde_json::json;

use super::support::{SEC, claim, complete, create, get, new_task, t0};
use crate::{Finish, FinishOutcome, LeaseSelector, ProgressUpdate, Requeue, Store};

pub async fn finish_is_fenced(store: &dyn Store) {
    let ids = create(
        store,
        vec![new_task("t", 50, t0()), new_task("t", 50, t0())],
    )
    .await;
    claim(store, "w1", 2, t0(), 21).await;
    let at = t0().saturating_add(SEC);
    let out = store
        .finish(vec![complete(ids[0], 21, at), complete(ids[1], 999, at)])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], FinishOutcome::Applied(e) if e.kind == EventKind::Completed && e.task_id == ids[0])
    );
    assert_eq!(
        out[1],
        FinishOutcome::LeaseLost,
        "wrong token must not write"
    );
    let done = get(store, ids[0]).await;
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.completed_at, Some(at));
    assert_eq!(done.progress, Some(1.0));
    assert!(done.lease.is_none());
    assert_eq!(
        done.result,
        Some(json!({"content": [{"type": "text", "text": "ok"}]}))
    );
    assert_eq!(done.duration_ms(), Some(1000));
    assert_eq!(get(store, ids[1]).await.status, TaskStatus::Running);
    // A second completion of a finished task is rejected too.
    let again = store.finish(vec![complete(ids[0], 21, at)]).await.unwrap();
    assert_eq!(again[0], FinishOutcome::LeaseLost);
}

pub async fn retry_transition(store: &dyn Store) {
    let id = create(store, vec![new_task("t", 50, t0())]).await[0];
    claim(store, "w", 1, t0(), 5).await;
    let err = TaskError::new("upstream_unavailable", "connection reset", true);
    let retry_at = t0().saturating_add(10 * SEC);
    let out = store
        .finish(vec![Finish {
            id,
            token: 5,
            transition: Transition::Retry {
                run_at: retry_at,
                error: err.clone(),
            },
            at: t0(),
        }])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], FinishOutcome::Applied(e) if e.kind == EventKind::RetryScheduled && e.status == TaskStatus::Pending)
    );
    let t = get(store, id).await;
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(t.run_at, retry_at);
    assert_eq!(t.error, Some(err));
    assert!(t.lease.is_none());
    assert!(t.completed_at.is_none());
    assert!(
        claim(store, "w", 1, t0().saturating_add(9 * SEC), 6)
            .await
            .is_empty()
    );
    let again = claim(store, "w", 1, retry_at, 6).await;
    assert_eq!(again[0].attempt, 2);
}

pub async fn final_failure(store: &dyn Store) {
    let id = create(store, vec![new_task("t", 50, t0())]).await[0];
    claim(store, "w", 1, t0(), 5).await;
    let err = TaskError::new("tool_error", "bad input", false);
    store
        .finish(vec![Finish {
            id,
            token: 5,
            transition: Transition::Fail { error: err.clone() },
            at: t0(),
        }])
        .await
        .unwrap();
    let t = get(store, id).await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error, Some(err));
    assert_eq!(t.completed_at, Some(t0()));
    let events = store.task_events(id, 0, 10).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventKind::Failed);
    assert_eq!(last.message.as_deref(), Some("bad input"));
}

pub async fn progress_is_fenced(store: &dyn Store) {
    let ids = create(
        store,
        vec![new_task("t", 50, t0()), new_task("t", 50, t0())],
    )
    .await;
    claim(store, "w", 2, t0(), 3).await;
    let upd = |id, token, p: f64, m: &str| ProgressUpdate {
        id,
        token,
        progress: Some(p),
        message: Some(m.to_string()),
        at: t0(),
    };
    let events = store
        .record_progress(vec![
            upd(ids[0], 3, 0.25, "a quarter"),
            upd(ids[1], 4, 0.5, "stale"),
        ])
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Progress);
    assert_eq!(events[0].progress, Some(0.25));
    let t = get(store, ids[0]).await;
    assert_eq!(
        (t.progress, t.progress_message.as_deref()),
        (Some(0.25), Some("a quarter"))
    );
    assert_eq!(get(store, ids[1]).await.progress, None);
    // A message-only update keeps the fraction.
    store
        .record_progress(vec![ProgressUpdate {
            id: ids[0],
            token: 3,
            progress: None,
            message: Some("still going".into()),
            at: t0(),
        }])
        .await
        .unwrap();
    let t = get(store, ids[0]).await;
    assert_eq!(
        (t.progress, t.progress_message.as_deref()),
        (Some(0.25), Some("still going"))
    );
    // No progress after the task finished.
    store.finish(vec![complete(ids[0], 3, t0())]).await.unwrap();
    assert!(
        store
            .record_progress(vec![upd(ids[0], 3, 0.9, "late")])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(get(store, ids[0]).await.progress, Some(1.0));
}

pub async fn stale_worker_cannot_finish(store: &dyn Store) {
    let id = create(store, vec![new_task("t", 50, t0())]).await[0];
    claim(store, "slow-worker", 1, t0(), 100).await;
    let later = t0().saturating_add(40 * SEC);
    store
        .requeue_leases(&Requeue {
            selector: LeaseSelector::ExpiredBefore(later),
            now: later,
            count_attempt: true,
            kind: EventKind::LeaseExpired,
            message: "lease expired",
        })
        .await
        .unwrap();
    claim(store, "new-worker", 1, later, 200).await;
    // The old worker wakes up and tries every kind of write.
    let stale = store.finish(vec![complete(id, 100, later)]).await.unwrap();
    assert_eq!(stale[0], FinishOutcome::LeaseLost);
    let p = store
        .record_progress(vec![ProgressUpdate {
            id,
            token: 100,
            progress: Some(0.9),
            message: None,
            at: later,
        }])
        .await
        .unwrap();
    assert!(p.is_empty());
    let t = get(store, id).await;
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!(t.lease.as_ref().unwrap().owner, "new-worker");
    assert_eq!(t.progress, None);
    let ok = store.finish(vec![complete(id, 200, later)]).await.unwrap();
    assert!(matches!(ok[0], FinishOutcome::Applied(_)));
}

/// The same worker may hold a task twice in a row: its first run lost the lease (stalled),
/// the task was rescued and claimed again by the same worker. The runs differ by lease
/// token: the heartbeat names the current one, and a batch holding both runs' writes
/// applies the current run's and refuses the stale one's, whatever their order.
pub async fn runs_are_told_apart_by_lease_token(store: &dyn Store) {
    let ids = create(store, vec![new_task("t", 50, t0())]).await;
    let id = ids[0];
    assert_eq!(claim(store, "w", 1, t0(), 1).await.len(), 1);
    let later = t0().saturating_add(60 * SEC);
    let rescued = store
        .requeue_leases(&Requeue {
            selector: LeaseSelector::ExpiredBefore(later),
            now: later,
            count_attempt: true,
            kind: EventKind::LeaseExpired,
            message: "expired",
        })
        .await
        .unwrap();
    assert_eq!(rescued.len(), 1);
    assert_eq!(claim(store, "w", 1, later, 2).await.len(), 1);
    let hb = store
        .heartbeat("w", later, later.saturating_add(30 * SEC))
        .await
        .unwrap();
    assert_eq!(hb.held, vec![(id, 2)], "the second run holds the lease");
    // Progress of both runs in one batch: the current run's is kept.
    let progress = |token, p| ProgressUpdate {
        id,
        token,
        progress: Some(p),
        message: None,
        at: later,
    };
    let events = store
        .record_progress(vec![progress(2, 0.5), progress(1, 0.9)])
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].progress, Some(0.5));
    // The stale run's outcome first, the current run's second: only the second applies.
    let out = store
        .finish(vec![complete(id, 1, later), complete(id, 2, later)])
        .await
        .unwrap();
    assert_eq!(out[0], FinishOutcome::LeaseLost);
    assert!(matches!(out[1], FinishOutcome::Applied(_)), "{out:?}");
    let done = get(store, id).await;
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.attempt, 2);
}
