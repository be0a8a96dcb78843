//! Leases: heartbeats, rescue of expired leases, hand-back by owner.

use baton_core::{EventKind, TaskStatus, Timestamp};

use super::support::{SEC, claim, complete, create, get, new_task, t0};
use crate::{FinishOutcome, LeaseSelector, ProgressUpdate, Requeue, Store};

pub async fn expired_leases_are_rescued(store: &dyn Store) {
    let mut last_try = new_task("t", 50, t0());
    last_try.max_attempts = 1;
    let ids = create(store, vec![new_task("t", 50, t0()), last_try.clone()]).await;
    claim(store, "dead-worker", 2, t0(), 4).await;
    let requeue = |at| Requeue {
        selector: LeaseSelector::ExpiredBefore(at),
        now: at,
        count_attempt: true,
        kind: EventKind::LeaseExpired,
        message: "lease expired",
    };
    // Not yet expired (leases run 30 s from t0).
    assert!(
        store
            .requeue_leases(&requeue(t0().saturating_add(29 * SEC)))
            .await
            .unwrap()
            .is_empty()
    );
    let events = store
        .requeue_leases(&requeue(t0().saturating_add(31 * SEC)))
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    let t = get(store, ids[0]).await;
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(t.attempt, 1, "the lost run counted");
    assert!(t.lease.is_none());
    let dead = get(store, last_try.id).await;
    assert_eq!(
        dead.status,
        TaskStatus::Failed,
        "no attempts left: dead-lettered"
    );
    assert_eq!(dead.error.as_ref().unwrap().code, "lease_expired");
    let again = claim(store, "w2", 10, t0().saturating_add(31 * SEC), 5).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
}

pub async fn release_by_owner_does_not_count(store: &dyn Store) {
    let ids = create(
        store,
        vec![new_task("t", 50, t0()), new_task("t", 50, t0())],
    )
    .await;
    claim(store, "node-a", 1, t0(), 1).await;
    claim(store, "node-b", 1, t0(), 2).await;
    let events = store
        .requeue_leases(&Requeue {
            selector: LeaseSelector::Owner("node-a"),
            now: t0(),
            count_attempt: false,
            kind: EventKind::Released,
            message: "shutting down",
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Released);
    let released = get(store, events[0].task_id).await;
    assert_eq!(released.status, TaskStatus::Pending);
    assert_eq!(released.attempt, 0);
    let other = ids.iter().find(|i| **i != events[0].task_id).unwrap();
    assert_eq!(get(store, *other).await.status, TaskStatus::Running);
}

pub async fn expired_lease_cannot_write_before_rescue(store: &dyn Store) {
    let id = create(store, vec![new_task("t", 50, t0())]).await[0];
    claim(store, "paused-worker", 1, t0(), 100).await;
    // The lease ran to t0 + 30 s; nobody has rescued the task yet.
    let late = t0().saturating_add(31 * SEC);
    let p = store
        .record_progress(vec![ProgressUpdate {
            id,
            token: 100,
            progress: Some(0.5),
            message: None,
            at: late,
        }])
        .await
        .unwrap();
    assert!(p.is_empty(), "no progress under an expired lease");
    let out = store.finish(vec![complete(id, 100, late)]).await.unwrap();
    assert_eq!(
        out[0],
        FinishOutcome::LeaseLost,
        "no completion under an expired lease"
    );
    let t = get(store, id).await;
    assert_eq!(t.status, TaskStatus::Running, "left for the rescuer");
    let rescued = store
        .requeue_leases(&Requeue {
            selector: LeaseSelector::ExpiredBefore(late),
            now: late,
            count_attempt: true,
            kind: EventKind::LeaseExpired,
            message: "lease expired",
        })
        .await
        .unwrap();
    assert_eq!(rescued.len(), 1);
    // A write just inside the lease still counts.
    let id2 = create(store, vec![new_task("t", 50, t0())]).await[0];
    claim(store, "w", 1, t0(), 7).await;
    let edge = t0().saturating_add(30 * SEC);
    assert!(matches!(
        store.finish(vec![complete(id2, 7, edge)]).await.unwrap()[0],
        FinishOutcome::Applied(_)
    ));
}

pub async fn heartbeat_extends_own_leases(store: &dyn Store) {
    let ids = create(
        store,
        vec![new_task("t", 50, t0()), new_task("t", 50, t0())],
    )
    .await;
    claim(store, "a", 1, t0(), 1).await;
    claim(store, "b", 1, t0(), 2).await;
    let until = t0().saturating_add(90 * SEC);
    let hb = store.heartbeat("a", t0(), until).await.unwrap();
    assert_eq!(hb.held.len(), 1);
    assert_eq!(hb.held[0].1, 1, "the lease token of the run held");
    assert!(hb.cancel_requested.is_empty());
    let mut leases: Vec<(String, Timestamp)> = Vec::new();
    for id in ids {
        let l = get(store, id).await.lease.unwrap();
        leases.push((l.owner, l.expires_at));
    }
    leases.sort();
    assert_eq!(
        leases,
        vec![
            ("a".into(), until),
            ("b".into(), t0().saturating_add(30 * SEC))
        ]
    );
}
