//! The conformance suite: behaviour every [`Store`] implementation must show.
//!
//! Each test is an `async fn(&dyn Store)` taking a fresh, empty store. An implementation
//! instantiates all of them with [`store_test_suite!`](crate::store_test_suite):
//!
//! ```text
//! baton_store::store_test_suite!(crate::fresh_sqlite_store);
//! ```
//! where the factory is `async fn() -> (Box<dyn Store>, impl Drop-guard)`.

use std::time::Duration;

use baton_core::policy::Transition;
use baton_core::task::{NewTask, StepRef};
use baton_core::{EventKind, TaskError, TaskId, TaskStatus, Timestamp};
use serde_json::json;

use crate::{
    CancelOutcome, ClaimRequest, ConcurrencyLimit, CreateOutcome, Finish, FinishOutcome,
    InputOutcome, LeaseSelector, NewWorkflow, ProgressUpdate, Requeue, RetryOutcome, Store,
    TaskQuery, ToolSelector, WorkflowQuery, WorkflowStatus, WorkflowUpdate, WorkflowUpdated,
};

/// Generates one `#[tokio::test]` per conformance test, each with a fresh store from
/// `$factory`.
#[macro_export]
macro_rules! store_test_suite {
    ($factory:path) => {
        $crate::store_test_suite!(@tests $factory;
            create_and_get, idempotency_keys, claim_order, claim_leases_once,
            delayed_tasks_wait, paused_queues_are_skipped, concurrency_limits,
            finish_is_fenced, retry_transition, final_failure, progress_is_fenced,
            cancel_pending_and_running, manual_retry, expired_leases_are_rescued,
            release_by_owner_does_not_count, stale_worker_cannot_finish,
            expired_lease_cannot_write_before_rescue, purge_oldest_first,
            event_log_order, list_filters_and_cursor, queue_stats_and_active_count,
            recent_durations, heartbeat_extends_own_leases, checkpoints_are_fenced,
            input_round_trip, servers_crud, create_and_claim_in_order, peers_lifecycle,
            singleton_is_held, workflows_lifecycle, workflow_updates_are_conditional,
            running_workflows_keep_their_steps, children_of_a_task,
            hostile_text_is_stored_escaped, runs_are_told_apart_by_lease_token,
            idempotency_conflicts_refuse_the_whole_write,
            retention_keeps_what_a_retry_or_a_parent_needs);
    };
    (@tests $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, _guard) = $factory().await;
                $crate::testsuite::$name(&*store).await;
            }
        )*
    };
}

const SEC: Duration = Duration::from_secs(1);

fn t0() -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000)
}

fn new_task(tool: &str, priority: i32, at: Timestamp) -> NewTask {
    NewTask {
        id: TaskId::generate(at),
        tool: tool.to_string(),
        arguments: json!({"n": 1}),
        queue: "default".into(),
        priority,
        max_attempts: 3,
        run_at: at,
        timeout_ms: None,
        idempotency_key: None,
        owner: "alice".into(),
        parent_id: None,
        step: None,
        metadata: None,
        created_at: at,
    }
}

async fn create(store: &dyn Store, tasks: Vec<NewTask>) -> Vec<TaskId> {
    let (outcomes, _) = store.create_tasks(tasks).await.unwrap();
    outcomes.iter().map(|o| o.task().id).collect()
}

async fn claim(
    store: &dyn Store,
    owner: &str,
    n: usize,
    now: Timestamp,
    token: i64,
) -> Vec<baton_core::Task> {
    claim_limited(store, owner, n, now, token, &[]).await
}

async fn claim_limited(
    store: &dyn Store,
    owner: &str,
    n: usize,
    now: Timestamp,
    token: i64,
    limits: &[ConcurrencyLimit],
) -> Vec<baton_core::Task> {
    store
        .claim(&ClaimRequest {
            owner,
            limit: n,
            now,
            lease_until: now.saturating_add(30 * SEC),
            token,
            limits,
        })
        .await
        .unwrap()
        .0
}

fn complete(id: TaskId, token: i64, at: Timestamp) -> Finish {
    Finish {
        id,
        token,
        transition: Transition::Complete {
            result: json!({"content": [{"type": "text", "text": "ok"}]}),
        },
        at,
    }
}

async fn get(store: &dyn Store, id: TaskId) -> baton_core::Task {
    store.get_task(id).await.unwrap().expect("task exists")
}

pub async fn create_and_get(store: &dyn Store) {
    let mut t = new_task("baton__echo", 50, t0());
    t.metadata = Some(json!({"team": "data"}));
    t.timeout_ms = Some(1234);
    let (outcomes, events) = store.create_tasks(vec![t.clone()]).await.unwrap();
    let CreateOutcome::Created(created) = &outcomes[0] else {
        panic!("expected Created, got {outcomes:?}")
    };
    let stored = get(store, t.id).await;
    assert_eq!(&stored, created);
    assert_eq!(stored.status, TaskStatus::Pending);
    assert_eq!(stored.arguments, json!({"n": 1}));
    assert_eq!(stored.metadata, Some(json!({"team": "data"})));
    assert_eq!(stored.timeout_ms, Some(1234));
    assert_eq!(stored.attempt, 0);
    assert!(stored.lease.is_none());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Created);
    assert_eq!(events[0].task_id, t.id);
    assert!(
        store
            .get_task(TaskId::generate(t0()))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.create_tasks(Vec::new()).await.unwrap().0.len(), 0);
}

pub async fn idempotency_keys(store: &dyn Store) {
    let mut a = new_task("baton__echo", 50, t0());
    a.idempotency_key = Some("k1".into());
    let first = create(store, vec![a.clone()]).await[0];
    // The same key again, in a later batch and twice within one batch.
    let mut again = new_task("baton__echo", 50, t0());
    again.idempotency_key = Some("k1".into());
    let mut b1 = new_task("baton__echo", 50, t0());
    b1.idempotency_key = Some("k2".into());
    let mut b2 = new_task("baton__echo", 50, t0());
    b2.idempotency_key = Some("k2".into());
    let mut other_owner = new_task("baton__echo", 50, t0());
    other_owner.idempotency_key = Some("k1".into());
    other_owner.owner = "bob".into();
    let (outcomes, events) = store
        .create_tasks(vec![again, b1.clone(), b2, other_owner.clone()])
        .await
        .unwrap();
    assert!(matches!(&outcomes[0], CreateOutcome::Existing(t) if t.id == first));
    assert!(matches!(&outcomes[1], CreateOutcome::Created(t) if t.id == b1.id));
    assert!(matches!(&outcomes[2], CreateOutcome::Existing(t) if t.id == b1.id));
    assert!(matches!(&outcomes[3], CreateOutcome::Created(t) if t.id == other_owner.id));
    assert_eq!(events.len(), 2, "only new tasks get a created event");
    let all = store
        .list_tasks(&TaskQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
}

pub async fn claim_order(store: &dyn Store) {
    let low = new_task("t", 10, t0());
    let high_late = new_task("t", 90, t0().saturating_add(SEC));
    let high_early = new_task("t", 90, t0());
    let normal_a = new_task("t", 50, t0());
    let normal_b = new_task("t", 50, t0());
    create(
        store,
        vec![
            low.clone(),
            high_late.clone(),
            high_early.clone(),
            normal_a.clone(),
            normal_b.clone(),
        ],
    )
    .await;
    let now = t0().saturating_add(2 * SEC);
    let order: Vec<TaskId> = claim(store, "w1", 10, now, 7)
        .await
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        order,
        vec![
            high_early.id,
            high_late.id,
            normal_a.id,
            normal_b.id,
            low.id
        ]
    );
}

pub async fn claim_leases_once(store: &dyn Store) {
    let ids = create(store, (0..5).map(|_| new_task("t", 50, t0())).collect()).await;
    let first = claim(store, "w1", 3, t0(), 11).await;
    assert_eq!(first.len(), 3);
    for t in &first {
        assert_eq!(t.status, TaskStatus::Running);
        assert_eq!(t.attempt, 1);
        let lease = t.lease.as_ref().unwrap();
        assert_eq!((lease.owner.as_str(), lease.token), ("w1", 11));
        assert_eq!(lease.expires_at, t0().saturating_add(30 * SEC));
        assert_eq!(t.started_at, Some(t0()));
    }
    let second = claim(store, "w2", 10, t0(), 12).await;
    assert_eq!(second.len(), 2);
    assert!(claim(store, "w3", 10, t0(), 13).await.is_empty());
    let mut all: Vec<TaskId> = first.iter().chain(&second).map(|t| t.id).collect();
    all.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(all, expected, "every task claimed exactly once");
    let events = store.task_events(ids[0], 0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::Created, EventKind::Started]
    );
    assert_eq!(events[1].attempt, Some(1));
}

pub async fn delayed_tasks_wait(store: &dyn Store) {
    let later = new_task("t", 90, t0().saturating_add(60 * SEC));
    create(store, vec![later.clone()]).await;
    assert!(claim(store, "w", 10, t0(), 1).await.is_empty());
    assert!(
        claim(store, "w", 10, t0().saturating_add(59 * SEC), 1)
            .await
            .is_empty()
    );
    let got = claim(store, "w", 10, t0().saturating_add(60 * SEC), 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, later.id);
}

pub async fn paused_queues_are_skipped(store: &dyn Store) {
    let mut a = new_task("t", 50, t0());
    a.queue = "reports".into();
    let b = new_task("t", 10, t0());
    create(store, vec![a.clone(), b.clone()]).await;
    store.set_queue_paused("reports", true, t0()).await.unwrap();
    let got = claim(store, "w", 10, t0(), 1).await;
    assert_eq!(got.iter().map(|t| t.id).collect::<Vec<_>>(), vec![b.id]);
    assert!(claim(store, "w", 10, t0(), 1).await.is_empty());
    let stats = store.queue_stats(t0()).await.unwrap();
    assert!(stats.iter().any(|q| q.name == "reports" && q.paused));
    store
        .set_queue_paused("reports", false, t0())
        .await
        .unwrap();
    let got = claim(store, "w", 10, t0(), 1).await;
    assert_eq!(got.iter().map(|t| t.id).collect::<Vec<_>>(), vec![a.id]);
}

pub async fn concurrency_limits(store: &dyn Store) {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(new_task("slow__a", 90, t0()));
    }
    for _ in 0..4 {
        tasks.push(new_task("slow__b", 80, t0()));
    }
    for _ in 0..2 {
        tasks.push(new_task("fast__x", 10, t0()));
    }
    create(store, tasks).await;
    let limits = vec![
        ConcurrencyLimit {
            selector: ToolSelector::Tool("slow__a".into()),
            max: 2,
        },
        ConcurrencyLimit {
            selector: ToolSelector::Prefix("slow__".into()),
            max: 3,
        },
    ];
    let got = claim_limited(store, "w", 100, t0(), 1, &limits).await;
    let count = |tool: &str| got.iter().filter(|t| t.tool == tool).count();
    assert_eq!(count("slow__a"), 2, "tool limit");
    assert_eq!(count("slow__b"), 1, "prefix limit counts both tools");
    assert_eq!(count("fast__x"), 2, "unlimited tools are not starved");
    // Nothing more while those run; once one finishes, exactly one more slot opens.
    assert!(
        claim_limited(store, "w", 100, t0(), 2, &limits)
            .await
            .is_empty()
    );
    let a = got.iter().find(|t| t.tool == "slow__a").unwrap();
    store.finish(vec![complete(a.id, 1, t0())]).await.unwrap();
    let more = claim_limited(store, "w", 100, t0(), 3, &limits).await;
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].tool, "slow__a");
}

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

pub async fn cancel_pending_and_running(store: &dyn Store) {
    let ids = create(
        store,
        vec![new_task("t", 90, t0()), new_task("t", 10, t0())],
    )
    .await;
    // Claim only the first (higher priority); the second stays pending.
    claim(store, "w", 1, t0(), 8).await;
    match store.request_cancel(ids[1], t0()).await.unwrap() {
        CancelOutcome::Cancelled(t, e) => {
            assert_eq!(t.status, TaskStatus::Cancelled);
            assert_eq!(e.kind, EventKind::Cancelled);
        }
        other => panic!("pending task should cancel at once: {other:?}"),
    }
    assert!(
        claim(store, "w", 10, t0(), 9).await.is_empty(),
        "a cancelled task never starts"
    );
    match store.request_cancel(ids[0], t0()).await.unwrap() {
        CancelOutcome::Requested(t, e) => {
            assert!(t.cancel_requested);
            assert_eq!(t.status, TaskStatus::Running);
            assert_eq!(e.kind, EventKind::CancelRequested);
        }
        other => panic!("running task: {other:?}"),
    }
    assert!(matches!(
        store.request_cancel(ids[0], t0()).await.unwrap(),
        CancelOutcome::AlreadyRequested(_)
    ));
    let hb = store
        .heartbeat("w", t0(), t0().saturating_add(30 * SEC))
        .await
        .unwrap();
    assert_eq!(hb.cancel_requested, vec![ids[0]]);
    store
        .finish(vec![Finish {
            id: ids[0],
            token: 8,
            transition: Transition::Cancel,
            at: t0(),
        }])
        .await
        .unwrap();
    assert_eq!(get(store, ids[0]).await.status, TaskStatus::Cancelled);
    assert!(matches!(
        store.request_cancel(ids[0], t0()).await.unwrap(),
        CancelOutcome::AlreadyFinal(_)
    ));
    assert!(matches!(
        store
            .request_cancel(TaskId::generate(t0()), t0())
            .await
            .unwrap(),
        CancelOutcome::NotFound
    ));
}

pub async fn manual_retry(store: &dyn Store) {
    let ids = create(
        store,
        vec![new_task("t", 50, t0()), new_task("t", 50, t0())],
    )
    .await;
    claim(store, "w", 2, t0(), 1).await;
    store
        .finish(vec![
            Finish {
                id: ids[0],
                token: 1,
                transition: Transition::Fail {
                    error: TaskError::new("x", "boom", false),
                },
                at: t0(),
            },
            complete(ids[1], 1, t0()),
        ])
        .await
        .unwrap();
    let later = t0().saturating_add(5 * SEC);
    match store.retry_task(ids[0], later).await.unwrap() {
        RetryOutcome::Retried(t, e) => {
            assert_eq!(t.status, TaskStatus::Pending);
            assert_eq!(t.attempt, 0);
            assert!(t.error.is_none());
            assert_eq!(e.kind, EventKind::Retried);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(store.retry_task(ids[1], later).await.unwrap(), RetryOutcome::NotRetryable(t) if t.status == TaskStatus::Completed)
    );
    assert!(matches!(
        store
            .retry_task(TaskId::generate(later), later)
            .await
            .unwrap(),
        RetryOutcome::NotFound
    ));
    let again = claim(store, "w", 10, later, 2).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 1);
}

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

pub async fn purge_oldest_first(store: &dyn Store) {
    let ids = create(store, (0..4).map(|_| new_task("t", 50, t0())).collect()).await;
    let running = claim(store, "w", 3, t0(), 1).await;
    // Finish three at different times, newest first, so completion order differs from
    // creation order.
    let finished: Vec<TaskId> = running.iter().map(|t| t.id).collect();
    for (i, id) in finished.iter().enumerate() {
        let at = t0().saturating_add(Duration::from_secs(10 - i as u64));
        store.finish(vec![complete(*id, 1, at)]).await.unwrap();
    }
    let pending = ids.iter().find(|i| !finished.contains(i)).unwrap();
    let purged = store
        .purge_finished(t0().saturating_add(100 * SEC), 1)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert!(
        store.get_task(finished[2]).await.unwrap().is_none(),
        "earliest completion goes first"
    );
    assert!(
        store
            .task_events(finished[2], 0, 10)
            .await
            .unwrap()
            .is_empty(),
        "its events go too"
    );
    assert!(store.get_task(finished[0]).await.unwrap().is_some());
    // Only tasks finished before the cut-off; active tasks are never purged.
    let purged = store
        .purge_finished(
            t0().saturating_add(9 * SEC + Duration::from_millis(500)),
            100,
        )
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert!(store.get_task(finished[0]).await.unwrap().is_some());
    assert_eq!(
        store
            .purge_finished(t0().saturating_add(1000 * SEC), 100)
            .await
            .unwrap(),
        1
    );
    assert!(store.get_task(*pending).await.unwrap().is_some());
}

pub async fn event_log_order(store: &dyn Store) {
    let ids = create(
        store,
        vec![new_task("t", 50, t0()), new_task("t", 50, t0())],
    )
    .await;
    claim(store, "w", 2, t0(), 1).await;
    store
        .record_progress(vec![ProgressUpdate {
            id: ids[0],
            token: 1,
            progress: Some(0.5),
            message: None,
            at: t0(),
        }])
        .await
        .unwrap();
    store
        .finish(vec![complete(ids[0], 1, t0()), complete(ids[1], 1, t0())])
        .await
        .unwrap();
    let events = store.task_events(ids[0], 0, 100).await.unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Created,
            EventKind::Started,
            EventKind::Progress,
            EventKind::Completed
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    // Resuming after an event returns only what follows it.
    let after = store.task_events(ids[0], events[1].seq, 100).await.unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].seq, events[2].seq);
    // Sequence numbers are unique across tasks and never reused after a purge.
    let other = store.task_events(ids[1], 0, 100).await.unwrap();
    let max_before = events.iter().chain(&other).map(|e| e.seq).max().unwrap();
    store
        .purge_finished(t0().saturating_add(SEC), 100)
        .await
        .unwrap();
    let id = create(store, vec![new_task("t", 50, t0())]).await[0];
    let fresh = store.task_events(id, 0, 10).await.unwrap();
    assert!(fresh[0].seq > max_before);
}

pub async fn list_filters_and_cursor(store: &dyn Store) {
    let mut tasks = Vec::new();
    for i in 0..7 {
        let mut t = new_task(if i % 2 == 0 { "a__x" } else { "b__y" }, 50, t0());
        if i == 6 {
            t.owner = "bob".into();
            t.queue = "other".into();
        }
        tasks.push(t);
    }
    let ids = create(store, tasks).await;
    let page = |before, limit| TaskQuery {
        owner: Some("alice".into()),
        before_seq: before,
        limit,
        ..Default::default()
    };
    let first = store.list_tasks(&page(None, 4)).await.unwrap();
    assert_eq!(
        first.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[5], ids[4], ids[3], ids[2]],
        "newest first"
    );
    let second = store
        .list_tasks(&page(Some(first[3].seq), 4))
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]]
    );
    let by_tool = store
        .list_tasks(&TaskQuery {
            tool: Some("b__y".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_tool.len(), 3);
    let by_queue = store
        .list_tasks(&TaskQuery {
            queue: Some("other".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_queue.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[6]]
    );
    claim(store, "w", 1, t0(), 1).await;
    let running = store
        .list_tasks(&TaskQuery {
            status: Some(TaskStatus::Running),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
}

pub async fn queue_stats_and_active_count(store: &dyn Store) {
    let mut tasks: Vec<NewTask> = (0..3).map(|_| new_task("t", 50, t0())).collect();
    tasks[2].queue = "batch".into();
    let ids = create(store, tasks).await;
    claim(store, "w", 1, t0(), 1).await;
    store.finish(vec![complete(ids[0], 1, t0())]).await.unwrap();
    assert_eq!(store.count_active().await.unwrap(), 2);
    let stats = store.queue_stats(t0().saturating_add(SEC)).await.unwrap();
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

pub async fn checkpoints_are_fenced(store: &dyn Store) {
    let id = create(store, vec![new_task("t", 50, t0())]).await[0];
    claim(store, "w", 1, t0(), 4).await;
    let cp = json!({"upstream_task": "u-1"});
    assert!(
        store
            .save_checkpoint(id, 4, cp.clone(), t0())
            .await
            .unwrap()
    );
    assert!(
        !store
            .save_checkpoint(id, 5, json!({"x": 1}), t0())
            .await
            .unwrap(),
        "wrong token"
    );
    assert_eq!(get(store, id).await.checkpoint, Some(cp.clone()));
    // The checkpoint survives the lease being lost and the task being claimed again.
    let later = t0().saturating_add(31 * SEC);
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
    let again = claim(store, "w2", 1, later, 6).await;
    assert_eq!(again[0].checkpoint, Some(cp.clone()));
    // A run that ends with an outcome (here a failure to be retried, e.g. a timeout) ends
    // its attempt: the next attempt starts afresh, not from the old upstream task.
    let retry_at = later.saturating_add(SEC);
    store
        .finish(vec![Finish {
            id,
            token: 6,
            transition: Transition::Retry {
                run_at: retry_at,
                error: TaskError::new("timeout", "too slow", true),
            },
            at: later,
        }])
        .await
        .unwrap();
    assert_eq!(
        get(store, id).await.checkpoint,
        None,
        "cleared by an outcome"
    );
    let third = claim(store, "w2", 1, retry_at, 7).await;
    assert_eq!(third[0].checkpoint, None);
    assert!(
        store
            .save_checkpoint(id, 7, cp.clone(), retry_at)
            .await
            .unwrap()
    );
    store
        .finish(vec![Finish {
            id,
            token: 7,
            transition: Transition::Fail {
                error: TaskError::new("timeout", "too slow", true),
            },
            at: retry_at,
        }])
        .await
        .unwrap();
    assert!(
        !store.save_checkpoint(id, 7, cp, retry_at).await.unwrap(),
        "a finished run saves nothing"
    );
    // A retry by hand starts afresh too.
    store.retry_task(id, retry_at).await.unwrap();
    assert_eq!(
        get(store, id).await.checkpoint,
        None,
        "cleared by a hand retry"
    );
}

pub async fn input_round_trip(store: &dyn Store) {
    let id = create(store, vec![new_task("t", 50, t0())]).await[0];
    claim(store, "w", 1, t0(), 4).await;
    let requests = json!({"q1": {"method": "elicitation/create", "params": {"message": "which?"}}});
    // Nothing to answer yet.
    assert!(matches!(
        store
            .provide_input(id, json!({"q1": {}}), t0())
            .await
            .unwrap(),
        InputOutcome::NotWaiting(_)
    ));
    assert!(
        store
            .set_input_required(id, 99, requests.clone(), t0())
            .await
            .unwrap()
            .is_none(),
        "fenced"
    );
    let ev = store
        .set_input_required(id, 4, requests.clone(), t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.kind, ev.status),
        (EventKind::InputRequired, TaskStatus::InputRequired)
    );
    assert_eq!(ev.data, Some(requests.clone()));
    let waiting = get(store, id).await;
    assert_eq!(waiting.status, TaskStatus::InputRequired);
    assert_eq!(waiting.input_requests, Some(requests));
    assert!(
        store.take_input(id, 4).await.unwrap().is_none(),
        "no answer yet"
    );
    let answer = json!({"q1": {"action": "accept", "content": {"choice": "b"}}});
    match store.provide_input(id, answer.clone(), t0()).await.unwrap() {
        InputOutcome::Accepted(t, ev) => {
            assert_eq!(t.status, TaskStatus::Running);
            assert!(t.input_requests.is_none());
            assert_eq!(ev.kind, EventKind::InputReceived);
        }
        other => panic!("{other:?}"),
    }
    assert!(store.take_input(id, 99).await.unwrap().is_none(), "fenced");
    assert_eq!(store.take_input(id, 4).await.unwrap(), Some(answer));
    assert!(
        store.take_input(id, 4).await.unwrap().is_none(),
        "taken once"
    );
    assert!(matches!(
        store
            .provide_input(TaskId::generate(t0()), json!({}), t0())
            .await
            .unwrap(),
        InputOutcome::NotFound
    ));
    // Input-required tasks keep their lease alive through heartbeats.
    store
        .set_input_required(id, 4, json!({"q2": {}}), t0())
        .await
        .unwrap()
        .unwrap();
    let hb = store
        .heartbeat("w", t0(), t0().saturating_add(60 * SEC))
        .await
        .unwrap();
    assert_eq!(hb.held, vec![(id, 4)]);
    store.finish(vec![complete(id, 4, t0())]).await.unwrap();
    let done = get(store, id).await;
    assert_eq!(done.status, TaskStatus::Completed);
    assert!(done.input_requests.is_none());
}

pub async fn servers_crud(store: &dyn Store) {
    assert!(store.list_servers().await.unwrap().is_empty());
    store
        .put_server("b", json!({"url": "http://b"}), t0())
        .await
        .unwrap();
    store
        .put_server("a", json!({"command": "x"}), t0())
        .await
        .unwrap();
    store
        .put_server("a", json!({"command": "y"}), t0().saturating_add(SEC))
        .await
        .unwrap();
    let all = store.list_servers().await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert_eq!(all[0].config, json!({"command": "y"}));
    assert_eq!(
        (all[0].created_at, all[0].updated_at),
        (t0(), t0().saturating_add(SEC))
    );
    assert!(store.delete_server("a").await.unwrap());
    assert!(!store.delete_server("a").await.unwrap());
    assert_eq!(store.list_servers().await.unwrap().len(), 1);
}

pub async fn create_and_claim_in_order(store: &dyn Store) {
    // A backlog with a high-priority task, then a submission with a claim for two slots.
    let old = create(
        store,
        vec![new_task("t", 90, t0()), new_task("t", 10, t0())],
    )
    .await;
    let fresh = new_task("t", 50, t0());
    let claim = ClaimRequest {
        owner: "w",
        limit: 2,
        now: t0(),
        lease_until: t0().saturating_add(30 * SEC),
        token: 3,
        limits: &[],
    };
    let r = store
        .create_and_claim(vec![fresh.clone()], Some(claim))
        .await
        .unwrap();
    assert!(matches!(&r.outcomes[0], CreateOutcome::Created(t) if t.id == fresh.id));
    let claimed: Vec<TaskId> = r.claimed.iter().map(|t| t.id).collect();
    assert_eq!(
        claimed,
        vec![old[0], fresh.id],
        "the usual order: the new task jumps no queue"
    );
    let kinds: Vec<EventKind> = r.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::Created, EventKind::Started, EventKind::Started]
    );
    let fresh_events = store.task_events(fresh.id, 0, 10).await.unwrap();
    assert_eq!(
        fresh_events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::Created, EventKind::Started]
    );
    assert_eq!(get(store, old[1]).await.status, TaskStatus::Pending);
    // Without a claim it only stores.
    let later = new_task("t", 99, t0());
    let r = store
        .create_and_claim(vec![later.clone()], None)
        .await
        .unwrap();
    assert!(r.claimed.is_empty());
    assert_eq!(get(store, later.id).await.status, TaskStatus::Pending);
}

fn peer_report(id: &str, at: Timestamp) -> crate::PeerReport {
    crate::PeerReport {
        id: id.to_string(),
        role: "worker".into(),
        address: None,
        version: "1.2.3".into(),
        started_at: t0(),
        now: at,
        running: 3,
        finished: 10,
        throughput: 2.5,
    }
}

pub async fn peers_lifecycle(store: &dyn Store) {
    use crate::PeerState;
    store.report_peer(&peer_report("b", t0())).await.unwrap();
    let mut a = peer_report("a", t0());
    a.role = "node".into();
    a.address = Some("http://127.0.0.1:1".into());
    store.report_peer(&a).await.unwrap();
    // A later heartbeat replaces the figures.
    a.now = t0().saturating_add(5 * SEC);
    a.running = 7;
    store.report_peer(&a).await.unwrap();
    let peers = store.list_peers().await.unwrap();
    assert_eq!(
        peers.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert_eq!(peers[0].role, "node");
    assert_eq!(peers[0].address.as_deref(), Some("http://127.0.0.1:1"));
    assert_eq!(peers[0].running, 7);
    assert_eq!(peers[0].last_heartbeat, t0().saturating_add(5 * SEC));
    assert_eq!(peers[0].state, PeerState::Live);
    assert_eq!((peers[1].finished, peers[1].throughput), (10, 2.5));

    // The caller is never lost, however stale its own last heartbeat: it is asking.
    assert!(
        store
            .mark_lost_peers(t0().saturating_add(SEC), Timestamp::ZERO, "b")
            .await
            .unwrap()
            .is_empty()
    );
    // b stops heartbeating: only b is lost, once.
    let lost = store
        .mark_lost_peers(t0().saturating_add(SEC), Timestamp::ZERO, "c")
        .await
        .unwrap();
    assert_eq!(
        lost.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec!["b"]
    );
    assert_eq!(lost[0].state, PeerState::Lost);
    assert!(
        store
            .mark_lost_peers(t0().saturating_add(SEC), Timestamp::ZERO, "c")
            .await
            .unwrap()
            .is_empty()
    );
    // a stops cleanly; a heartbeat makes a peer live again.
    assert!(
        store
            .peer_stopped("a", t0().saturating_add(6 * SEC))
            .await
            .unwrap()
    );
    assert!(!store.peer_stopped("zz", t0()).await.unwrap());
    store
        .report_peer(&peer_report("b", t0().saturating_add(7 * SEC)))
        .await
        .unwrap();
    let peers = store.list_peers().await.unwrap();
    assert_eq!(
        peers.iter().map(|p| p.state).collect::<Vec<_>>(),
        vec![PeerState::Stopped, PeerState::Live]
    );
    assert_eq!(peers[0].running, 0);
    // Peers gone for long are forgotten; live ones never are.
    store
        .mark_lost_peers(Timestamp::ZERO, t0().saturating_add(60 * SEC), "c")
        .await
        .unwrap();
    let peers = store.list_peers().await.unwrap();
    assert_eq!(
        peers.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec!["b"]
    );
}

pub async fn singleton_is_held(store: &dyn Store) {
    let guard = store
        .try_singleton("maintenance")
        .await
        .unwrap()
        .expect("the first taker gets the role");
    assert!(guard.held().await);
}

fn step_task(workflow: &str, step: &str, at: Timestamp) -> NewTask {
    let mut t = new_task("s__tool", 50, at);
    t.step = Some(StepRef {
        workflow_id: workflow.into(),
        step_id: step.into(),
    });
    t.idempotency_key = Some(format!("workflow/{workflow}/{step}"));
    t
}

fn new_workflow(id: &str, at: Timestamp) -> NewWorkflow {
    NewWorkflow {
        id: id.into(),
        name: "report".into(),
        owner: "alice".into(),
        definition: json!({"name": "report", "steps": [{"id": "a", "tool": "s__tool"}]}),
        created_at: at,
    }
}

fn update(id: &str, at: Timestamp) -> WorkflowUpdate {
    WorkflowUpdate {
        id: id.into(),
        expect: vec![WorkflowStatus::Running],
        now: at,
        status: None,
        steps: None,
        tasks: Vec::new(),
    }
}

pub async fn workflows_lifecycle(store: &dyn Store) {
    let (wf, outcomes, events) = store
        .create_workflow(
            new_workflow("wf-1", t0()),
            vec![step_task("wf-1", "a", t0())],
        )
        .await
        .unwrap();
    assert_eq!(wf.status, WorkflowStatus::Running);
    assert_eq!(outcomes.len(), 1);
    // The step's task names its workflow and step, and so does its `created` event.
    let task = get(store, outcomes[0].task().id).await;
    assert_eq!(
        task.step,
        Some(StepRef {
            workflow_id: "wf-1".into(),
            step_id: "a".into()
        })
    );
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].data,
        Some(json!({"workflow_id": "wf-1", "step_id": "a"}))
    );
    let got = store.get_workflow("wf-1").await.unwrap().unwrap();
    assert_eq!(got.definition, wf.definition);
    assert_eq!(got.name, "report");
    assert!(store.get_workflow("wf-404").await.unwrap().is_none());

    // A step added later lands with the update; step states are kept.
    let mut u = update("wf-1", t0().saturating_add(SEC));
    u.tasks = vec![step_task("wf-1", "b", t0())];
    let mut steps = serde_json::Map::new();
    steps.insert("c".into(), json!({"state": "skipped"}));
    u.steps = Some(steps.clone());
    let WorkflowUpdated::Applied { outcomes, .. } = store.update_workflow(u).await.unwrap() else {
        panic!("a running workflow takes updates");
    };
    assert!(matches!(outcomes[0], CreateOutcome::Created(_)));
    let steps_tasks = store
        .list_tasks(&TaskQuery {
            workflow_id: Some("wf-1".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut names: Vec<String> = steps_tasks
        .iter()
        .map(|t| t.step.as_ref().unwrap().step_id.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    // The same step submitted twice is one task.
    let mut u = update("wf-1", t0().saturating_add(SEC));
    u.tasks = vec![step_task("wf-1", "b", t0())];
    let WorkflowUpdated::Applied { outcomes, .. } = store.update_workflow(u).await.unwrap() else {
        panic!("still running");
    };
    assert!(matches!(outcomes[0], CreateOutcome::Existing(_)));

    // Finishing sets completed_at; listing filters by owner and status.
    let mut u = update("wf-1", t0().saturating_add(2 * SEC));
    u.status = Some(WorkflowStatus::Completed);
    store.update_workflow(u).await.unwrap();
    let got = store.get_workflow("wf-1").await.unwrap().unwrap();
    assert_eq!(got.status, WorkflowStatus::Completed);
    assert_eq!(got.steps, steps);
    assert_eq!(got.completed_at, Some(t0().saturating_add(2 * SEC)));
    store
        .create_workflow(new_workflow("wf-2", t0()), Vec::new())
        .await
        .unwrap();
    let all = store
        .list_workflows(&WorkflowQuery {
            owner: Some("alice".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["wf-2", "wf-1"],
        "newest first"
    );
    let running = store
        .list_workflows(&WorkflowQuery {
            status: Some(WorkflowStatus::Running),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].id, "wf-2");
    let page = store
        .list_workflows(&WorkflowQuery {
            before_seq: Some(all[0].seq),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, "wf-1");
    assert!(
        store
            .list_workflows(&WorkflowQuery {
                owner: Some("bob".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn workflow_updates_are_conditional(store: &dyn Store) {
    store
        .create_workflow(new_workflow("wf-1", t0()), Vec::new())
        .await
        .unwrap();
    let mut cancel = update("wf-1", t0());
    cancel.status = Some(WorkflowStatus::Cancelled);
    assert!(matches!(
        store.update_workflow(cancel).await.unwrap(),
        WorkflowUpdated::Applied { .. }
    ));
    // A coordinator that still thinks it runs adds nothing to a cancelled workflow.
    let mut late = update("wf-1", t0().saturating_add(SEC));
    late.tasks = vec![step_task("wf-1", "a", t0())];
    match store.update_workflow(late).await.unwrap() {
        WorkflowUpdated::Refused(wf) => assert_eq!(wf.status, WorkflowStatus::Cancelled),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        store
            .list_tasks(&TaskQuery {
                workflow_id: Some("wf-1".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty(),
        "nothing was stored"
    );
    // A retry reopens it; completed_at is cleared.
    let mut reopen = update("wf-1", t0().saturating_add(2 * SEC));
    reopen.expect = vec![WorkflowStatus::Failed, WorkflowStatus::Cancelled];
    reopen.status = Some(WorkflowStatus::Running);
    let WorkflowUpdated::Applied { workflow, .. } = store.update_workflow(reopen).await.unwrap()
    else {
        panic!("a cancelled workflow can be reopened");
    };
    assert_eq!(workflow.status, WorkflowStatus::Running);
    assert_eq!(workflow.completed_at, None);
    let stored = store.get_workflow("wf-1").await.unwrap().unwrap();
    assert_eq!(stored.completed_at, None);
    assert!(matches!(
        store.update_workflow(update("wf-404", t0())).await.unwrap(),
        WorkflowUpdated::NotFound
    ));
}

pub async fn running_workflows_keep_their_steps(store: &dyn Store) {
    let (_, outcomes, _) = store
        .create_workflow(
            new_workflow("wf-1", t0()),
            vec![step_task("wf-1", "a", t0())],
        )
        .await
        .unwrap();
    let step = outcomes[0].task().id;
    let plain = create(store, vec![new_task("t", 50, t0())]).await[0];
    let running = claim(store, "w", 2, t0(), 1).await;
    assert_eq!(running.len(), 2);
    for id in [step, plain] {
        store.finish(vec![complete(id, 1, t0())]).await.unwrap();
    }
    let later = t0().saturating_add(100 * SEC);
    // Retention takes the plain task, not the step of a workflow still running (its
    // result may still be referenced, and the step must not run again).
    assert_eq!(store.purge_finished(later, 100).await.unwrap(), 1);
    assert!(store.get_task(plain).await.unwrap().is_none());
    assert!(store.get_task(step).await.unwrap().is_some());
    // Once the workflow is over, both go.
    let mut done = update("wf-1", t0().saturating_add(SEC));
    done.status = Some(WorkflowStatus::Completed);
    store.update_workflow(done).await.unwrap();
    assert_eq!(store.purge_finished(later, 100).await.unwrap(), 1);
    assert!(store.get_task(step).await.unwrap().is_none());
    assert!(store.get_workflow("wf-1").await.unwrap().is_none());
}

pub async fn children_of_a_task(store: &dyn Store) {
    let parent = create(store, vec![new_task("t", 50, t0())]).await[0];
    let mut children = Vec::new();
    for _ in 0..2 {
        let mut c = new_task("t", 50, t0());
        c.parent_id = Some(parent);
        c.owner = "agent".into();
        children.push(c.id);
        create(store, vec![c]).await;
    }
    create(store, vec![new_task("t", 50, t0())]).await;
    let mut found: Vec<TaskId> = store
        .list_tasks(&TaskQuery {
            parent_id: Some(parent),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    found.sort();
    children.sort();
    assert_eq!(found, children);
    assert_eq!(get(store, children[0]).await.parent_id, Some(parent));
}

/// Text a tool sends (an error or progress message) holding NUL, which PostgreSQL `text`
/// cannot store, is stored with U+FFFD instead: the write succeeds, and so do the writes
/// batched with it. JSON values keep their NUL escapes exactly.
pub async fn hostile_text_is_stored_escaped(store: &dyn Store) {
    let mut bad = new_task("baton__fail", 50, t0());
    bad.arguments = json!({"message": "x\u{0}y", "odd": "\u{202e}é\u{1F600}\u{FEFF}"});
    let good = new_task("baton__echo", 50, t0());
    let ids = create(store, vec![bad.clone(), good.clone()]).await;
    assert_eq!(get(store, ids[0]).await.arguments, bad.arguments);
    let claimed = claim(store, "w", 2, t0(), 7).await;
    assert_eq!(claimed.len(), 2);
    let events = store
        .record_progress(vec![ProgressUpdate {
            id: bad.id,
            token: 7,
            progress: Some(0.5),
            message: Some("half\u{0}way".into()),
            at: t0(),
        }])
        .await
        .unwrap();
    assert_eq!(events[0].message.as_deref(), Some("half\u{FFFD}way"));
    assert_eq!(
        get(store, bad.id).await.progress_message.as_deref(),
        Some("half\u{FFFD}way")
    );
    let error = TaskError::new("tool_error", "x\u{0}y", false);
    let out = store
        .finish(vec![
            Finish {
                id: bad.id,
                token: 7,
                transition: Transition::Fail {
                    error: error.clone(),
                },
                at: t0(),
            },
            complete(good.id, 7, t0()),
        ])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], FinishOutcome::Applied(e) if e.message.as_deref() == Some("x\u{FFFD}y"))
    );
    assert!(matches!(out[1], FinishOutcome::Applied(_)));
    let failed = get(store, bad.id).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    // The error itself is JSON: its message keeps the NUL.
    assert_eq!(failed.error.unwrap().message, "x\u{0}y");
    let logged = store.task_events(bad.id, 0, 100).await.unwrap();
    assert_eq!(
        logged.last().unwrap().message.as_deref(),
        Some("x\u{FFFD}y")
    );
    assert_eq!(get(store, good.id).await.status, TaskStatus::Completed);
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

/// A key reused for a different call (another tool or other arguments) refuses the whole
/// write: none of the call's tasks is stored, not even those without a key.
pub async fn idempotency_conflicts_refuse_the_whole_write(store: &dyn Store) {
    let mut first = new_task("t", 50, t0());
    first.idempotency_key = Some("k1".into());
    create(store, vec![first.clone()]).await;
    let bystander = new_task("t", 50, t0());
    let mut reused = new_task("t", 50, t0());
    reused.idempotency_key = Some("k1".into());
    reused.arguments = json!({"n": 2});
    let err = store
        .create_tasks(vec![bystander.clone(), reused])
        .await
        .unwrap_err();
    assert_eq!(err.code(), baton_core::ErrorCode::Conflict, "{err}");
    assert!(err.to_string().contains("`k1`"), "{err}");
    assert!(store.get_task(bystander.id).await.unwrap().is_none());
    // Two items of one call with one key and different arguments: refused as well.
    let mut a = new_task("t", 50, t0());
    a.idempotency_key = Some("k2".into());
    let mut b = a.clone();
    b.id = TaskId::generate(t0());
    b.tool = "other".into();
    assert!(store.create_tasks(vec![a.clone(), b]).await.is_err());
    assert!(store.get_task(a.id).await.unwrap().is_none());
    // The same call again is fine: it names the stored task.
    let mut again = first.clone();
    again.id = TaskId::generate(t0());
    let (outcomes, _) = store.create_tasks(vec![again]).await.unwrap();
    assert_eq!(
        outcomes[0],
        CreateOutcome::Existing(get(store, first.id).await)
    );
}

/// Retention and workflows are one decision: a failed workflow (which can be retried)
/// keeps its completed steps however old they are, so a retry never runs them again;
/// the workflow goes with all its steps once it has been over for the retention period.
/// Children of a task still running stay too.
pub async fn retention_keeps_what_a_retry_or_a_parent_needs(store: &dyn Store) {
    let (_, outcomes, _) = store
        .create_workflow(
            new_workflow("wf-r", t0()),
            vec![step_task("wf-r", "a", t0()), step_task("wf-r", "b", t0())],
        )
        .await
        .unwrap();
    let (a, b) = (outcomes[0].task().id, outcomes[1].task().id);
    claim(store, "w", 2, t0(), 1).await;
    // a completed long ago; b failed later, failing the workflow.
    store.finish(vec![complete(a, 1, t0())]).await.unwrap();
    let failed_at = t0().saturating_add(20 * SEC);
    store
        .finish(vec![Finish {
            id: b,
            token: 1,
            transition: Transition::Fail {
                error: TaskError::new("boom", "boom", false),
            },
            at: failed_at,
        }])
        .await
        .unwrap();
    let mut fail = update("wf-r", failed_at);
    fail.status = Some(WorkflowStatus::Failed);
    store.update_workflow(fail).await.unwrap();
    // A parent still running, with a child that completed long ago.
    let mut parent = new_task("t", 50, t0());
    parent.run_at = failed_at;
    let mut child = new_task("t", 50, t0());
    child.parent_id = Some(parent.id);
    create(store, vec![parent.clone(), child.clone()]).await;
    let claimed = claim(store, "w", 1, t0(), 2).await;
    assert_eq!(claimed[0].id, child.id);
    store
        .finish(vec![complete(child.id, 2, t0())])
        .await
        .unwrap();
    assert_eq!(claim(store, "w", 1, failed_at, 3).await[0].id, parent.id);

    // Retention of 15 s, 5 s after the workflow failed: a is 25 s old but stays.
    let cut = failed_at.saturating_add(5 * SEC).saturating_sub(15 * SEC);
    assert_eq!(store.purge_finished(cut, 100).await.unwrap(), 0);
    assert!(
        store.get_task(a).await.unwrap().is_some(),
        "a completed step of a retryable workflow"
    );
    assert!(
        store.get_task(child.id).await.unwrap().is_some(),
        "a child of a running task"
    );
    // Past retention of the workflow: it goes with both its steps. The parent finished:
    // its child goes too.
    store
        .finish(vec![complete(
            parent.id,
            3,
            failed_at.saturating_add(5 * SEC),
        )])
        .await
        .unwrap();
    let cut = failed_at.saturating_add(SEC);
    assert_eq!(store.purge_finished(cut, 100).await.unwrap(), 3);
    assert!(store.get_workflow("wf-r").await.unwrap().is_none());
    for id in [a, b, child.id] {
        assert!(store.get_task(id).await.unwrap().is_none());
    }
    assert!(
        store.get_task(parent.id).await.unwrap().is_some(),
        "finished after the cut"
    );
}
