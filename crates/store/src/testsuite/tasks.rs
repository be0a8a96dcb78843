//! Tasks: storing, reading and listing them, cancelling and retrying them, their event
//! log, retention.

use std::time::Duration;

use baton_core::policy::Transition;
use baton_core::{EventKind, TaskError, TaskId, TaskStatus};
use serde_json::json;

use super::support::{SEC, claim, complete, create, get, new_task, t0};
use crate::{
    CancelOutcome, CreateOutcome, Finish, FinishOutcome, ProgressUpdate, RescheduleOutcome,
    RetryOutcome, Store, TaskQuery,
};

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

/// A pending task's priority and due time change (with an event saying how), and the
/// claim order follows; a task that started cannot be changed.
pub async fn reschedule_pending_only(store: &dyn Store) {
    let ids = create(
        store,
        vec![
            new_task("t", 50, t0()),
            new_task("t", 50, t0()),
            new_task("t", 50, t0()),
        ],
    )
    .await;
    let later = t0().saturating_add(3600 * SEC);
    match store
        .reschedule(ids[0], None, Some(later), t0())
        .await
        .unwrap()
    {
        RescheduleOutcome::Rescheduled(t, e) => {
            assert_eq!((t.priority, t.run_at), (50, later));
            assert_eq!(e.kind, EventKind::Reprioritized);
            assert!(e.message.unwrap().contains("due"));
        }
        other => panic!("{other:?}"),
    }
    match store
        .reschedule(ids[2], Some(90), None, t0())
        .await
        .unwrap()
    {
        RescheduleOutcome::Rescheduled(t, e) => {
            assert_eq!(t.priority, 90);
            assert_eq!(e.message.as_deref(), Some("priority 50 to 90"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(get(store, ids[2]).await.priority, 90);
    // The raised one first, the delayed one not yet.
    let claimed = claim(store, "w", 3, t0(), 1).await;
    let order: Vec<TaskId> = claimed.iter().map(|t| t.id).collect();
    assert_eq!(order, vec![ids[2], ids[1]]);
    match store
        .reschedule(ids[2], Some(10), None, t0())
        .await
        .unwrap()
    {
        RescheduleOutcome::NotPending(t) => assert_eq!(t.status, TaskStatus::Running),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        get(store, ids[2]).await.priority,
        90,
        "a running task is left alone"
    );
    assert!(matches!(
        store
            .reschedule(TaskId::generate(t0()), Some(1), None, t0())
            .await
            .unwrap(),
        RescheduleOutcome::NotFound
    ));
    // Brought forward, it runs.
    store
        .reschedule(ids[0], None, Some(t0()), t0())
        .await
        .unwrap();
    assert_eq!(claim(store, "w", 1, t0(), 2).await[0].id, ids[0]);
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
        .purge_finished(t0().saturating_add(100 * SEC), t0(), 1)
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
            t0(),
            100,
        )
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert!(store.get_task(finished[0]).await.unwrap().is_some());
    assert_eq!(
        store
            .purge_finished(t0().saturating_add(1000 * SEC), t0(), 100)
            .await
            .unwrap(),
        1
    );
    assert!(store.get_task(*pending).await.unwrap().is_some());
}

/// A task's own time to live deletes it once finished and past `expires_at`, before the
/// retention period; an unfinished one stays, and so does one without a time to live.
pub async fn finished_tasks_expire_after_their_own_ttl(store: &dyn Store) {
    let mut short = new_task("t", 60, t0());
    short.expires_at = Some(t0().saturating_add(5 * SEC));
    let plain = new_task("t", 60, t0());
    let ids = create(store, vec![short, plain]).await;
    assert_eq!(
        get(store, ids[0]).await.expires_at,
        Some(t0().saturating_add(5 * SEC)),
        "the expiry is stored"
    );
    let running = claim(store, "w", 2, t0(), 1).await;
    assert_eq!(running.len(), 2);
    let done = t0().saturating_add(SEC);
    store
        .finish(vec![complete(ids[0], 1, done), complete(ids[1], 1, done)])
        .await
        .unwrap();
    let mut waiting = new_task("t", 10, t0());
    waiting.expires_at = Some(t0().saturating_add(2 * SEC));
    let waiting = create(store, vec![waiting]).await[0];
    // Nothing is past the retention cut (`t0`), and at 4 s no time to live is up but the
    // pending task's, which is not finished.
    assert_eq!(
        store
            .purge_finished(t0(), t0().saturating_add(4 * SEC), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .purge_finished(t0(), t0().saturating_add(6 * SEC), 100)
            .await
            .unwrap(),
        1
    );
    assert!(store.get_task(ids[0]).await.unwrap().is_none());
    assert!(
        store.task_events(ids[0], 0, 10).await.unwrap().is_empty(),
        "its events go too"
    );
    assert!(store.get_task(ids[1]).await.unwrap().is_some());
    assert!(store.get_task(waiting).await.unwrap().is_some());
}

/// A task's log: lines in order, the newest kept by count and by bytes, hostile text
/// stored as given, everything gone with the task.
pub async fn logs_are_ordered_trimmed_and_purged(store: &dyn Store) {
    use baton_core::log::{LogKeep, NewLogLine};
    let ids = create(
        store,
        vec![new_task("t", 50, t0()), new_task("t", 50, t0())],
    )
    .await;
    let keep = LogKeep {
        lines: 3,
        bytes: 1 << 20,
    };
    let line = |id: TaskId, i: u64, data: serde_json::Value| {
        NewLogLine::new(
            id,
            1,
            t0().saturating_add(SEC * i as u32),
            "info",
            Some("lg"),
            &data,
            keep,
        )
    };
    let lines: Vec<NewLogLine> = (0..5).map(|i| line(ids[0], i, json!({"i": i}))).collect();
    let stored = store.append_logs(lines, keep).await.unwrap();
    assert_eq!(stored.len(), 5);
    assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq));
    // The other task's log is its own.
    store
        .append_logs(vec![line(ids[1], 0, json!("other"))], keep)
        .await
        .unwrap();
    let kept = store.task_logs(ids[0], 0, 100).await.unwrap();
    let is: Vec<i64> = kept.iter().map(|l| l.data["i"].as_i64().unwrap()).collect();
    assert_eq!(is, vec![2, 3, 4], "the newest three, oldest first");
    assert_eq!(kept[0].logger.as_deref(), Some("lg"));
    assert_eq!(kept[0].at, t0().saturating_add(2 * SEC));
    let after = store.task_logs(ids[0], kept[0].seq, 1).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, kept[1].seq);
    // By bytes: three lines of ~100 bytes each in 250 bytes keep the newest two.
    let small = LogKeep {
        lines: 100,
        bytes: 250,
    };
    let big: Vec<NewLogLine> = (0..3)
        .map(|i| line(ids[0], 10 + i, json!("x".repeat(98))))
        .collect();
    store.append_logs(big, small).await.unwrap();
    assert_eq!(store.task_logs(ids[0], 0, 100).await.unwrap().len(), 2);
    // Hostile text: a NUL in the data (escaped JSON) and odd Unicode round-trip.
    let odd = json!({"nul": "a\u{0}b", "rtl": "\u{202e}abc", "emoji": "🦀"});
    let mut hostile = line(ids[1], 1, odd.clone());
    hostile.logger = Some("\u{FFFD}ok".into());
    store.append_logs(vec![hostile], keep).await.unwrap();
    let back = store.task_logs(ids[1], 0, 100).await.unwrap();
    assert_eq!(back.last().unwrap().data, odd);
    // Purged with the task.
    let running = claim(store, "w", 2, t0(), 1).await;
    assert_eq!(running.len(), 2);
    store
        .finish(vec![complete(ids[0], 1, t0()), complete(ids[1], 1, t0())])
        .await
        .unwrap();
    store
        .purge_finished(t0().saturating_add(SEC), t0(), 100)
        .await
        .unwrap();
    assert!(store.task_logs(ids[0], 0, 100).await.unwrap().is_empty());
    assert!(store.task_logs(ids[1], 0, 100).await.unwrap().is_empty());
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
        .purge_finished(t0().saturating_add(SEC), t0(), 100)
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
