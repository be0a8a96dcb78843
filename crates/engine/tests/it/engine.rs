//! The engine end to end, in process, on a real SQLite file.

use std::time::Duration;

use baton_core::{EventKind, TaskStatus};
use baton_engine::engine::Cancelled;
use baton_engine::{EngineConfig, EngineError};
use baton_store::{ClaimRequest, ConcurrencyLimit, ToolSelector};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn echo_completes_with_its_arguments() {
    let t = TestEngine::start(fast_config()).await;
    let id = submit(&t.engine, req("baton__echo", json!({"hello": "world"}))).await;
    let task = wait_final(&t.engine, id).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(
        task.result.as_ref().unwrap()["structuredContent"],
        json!({"hello": "world"})
    );
    assert_eq!(task.attempt, 1);
    assert_eq!(
        kinds(&t.engine, id).await,
        vec![EventKind::Created, EventKind::Started, EventKind::Completed]
    );
    t.engine.shutdown().await;
}

#[tokio::test]
async fn sleep_reports_progress_and_history_gives_estimates() {
    let t = TestEngine::start(fast_config()).await;
    let id = submit(
        &t.engine,
        req("baton__sleep", json!({"ms": 300, "steps": 3})),
    )
    .await;
    let task = wait_final(&t.engine, id).await;
    assert_eq!(task.status, TaskStatus::Completed);
    let events = t.engine.events(OWNER, id, 0, 100).await.unwrap();
    let progress: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == EventKind::Progress)
        .filter_map(|e| e.progress)
        .collect();
    assert!(!progress.is_empty(), "progress events recorded: {events:?}");
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {progress:?}"
    );
    assert!(task.duration_ms().unwrap() >= 300);
    // The tool now has history, so a new pending task gets an estimate.
    let next = t
        .engine
        .prepare(OWNER, req("baton__sleep", json!({"ms": 1})))
        .unwrap();
    assert!(
        t.engine.estimate_completion(&task).await.is_none(),
        "finished tasks have no estimate"
    );
    let paused = {
        t.engine
            .set_queue_paused(OWNER, "default", true)
            .await
            .unwrap();
        t.engine
            .submit_prepared(vec![next])
            .await
            .unwrap()
            .remove(0)
            .task
    };
    let est = t
        .engine
        .estimate_completion(&paused)
        .await
        .expect("estimate from history");
    assert!(
        est.millis_since(t.engine.now()) >= 250,
        "about one median run ahead"
    );
    t.engine.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_pending_task_is_immediate_and_it_never_starts() {
    let t = TestEngine::start(fast_config()).await;
    let mut r = req("baton__echo", json!({}));
    r.delay_ms = Some(60_000);
    let id = submit(&t.engine, r).await;
    let c = t.engine.cancel(OWNER, id).await.unwrap();
    assert!(matches!(c, Cancelled::Now(ref task) if task.status == TaskStatus::Cancelled));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        kinds(&t.engine, id).await,
        vec![EventKind::Created, EventKind::Cancelled]
    );
    let again = t.engine.cancel(OWNER, id).await.unwrap_err();
    assert!(matches!(again, EngineError::Conflict(_)), "{again}");
    t.engine.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_running_task_reaches_its_handler() {
    let t = TestEngine::start(fast_config()).await;
    let id = submit(
        &t.engine,
        req("baton__sleep", json!({"ms": 30_000, "steps": 300})),
    )
    .await;
    loop {
        if t.engine.get(OWNER, id).await.unwrap().status == TaskStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    assert!(matches!(
        t.engine.cancel(OWNER, id).await.unwrap(),
        Cancelled::Requested(_)
    ));
    let task = wait_final(&t.engine, id).await;
    assert_eq!(task.status, TaskStatus::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the handler stopped at once"
    );
    let k = kinds(&t.engine, id).await;
    assert!(
        k.contains(&EventKind::CancelRequested) && k.last() == Some(&EventKind::Cancelled),
        "{k:?}"
    );
    t.engine.shutdown().await;
}

#[tokio::test]
async fn retryable_failures_back_off_then_dead_letter() {
    let t = TestEngine::start(fast_config()).await;
    let mut r = req(
        "baton__fail",
        json!({"message": "flaky", "retryable": true}),
    );
    r.max_attempts = Some(3);
    let id = submit(&t.engine, r).await;
    let task = wait_final(&t.engine, id).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(task.attempt, 3);
    let err = task.error.unwrap();
    assert_eq!(err.code, "tool_error");
    assert!(
        err.message.contains("gave up after 3 of 3 attempts"),
        "{}",
        err.message
    );
    let k = kinds(&t.engine, id).await;
    assert_eq!(
        k.iter()
            .filter(|k| **k == EventKind::RetryScheduled)
            .count(),
        2,
        "{k:?}"
    );
    assert_eq!(k.iter().filter(|k| **k == EventKind::Started).count(), 3);
    // Dead letter: retry by hand runs it again from attempt 1.
    let again = t.engine.retry(OWNER, id).await.unwrap();
    assert_eq!((again.status, again.attempt), (TaskStatus::Pending, 0));
    let task = wait_final(&t.engine, id).await;
    assert_eq!(task.attempt, 3);
    t.engine.shutdown().await;
}

#[tokio::test]
async fn non_retryable_failures_fail_at_once() {
    let t = TestEngine::start(fast_config()).await;
    let id = submit(
        &t.engine,
        req("baton__fail", json!({"message": "bad input"})),
    )
    .await;
    let task = wait_final(&t.engine, id).await;
    assert_eq!((task.status, task.attempt), (TaskStatus::Failed, 1));
    assert_eq!(task.error.unwrap().message, "bad input");
    let done = t
        .engine
        .retry(
            OWNER,
            submit(&t.engine, req("baton__echo", json!({}))).await,
        )
        .await;
    // A pending or completed task cannot be retried by hand.
    assert!(matches!(done, Err(EngineError::Conflict(_))), "{done:?}");
    t.engine.shutdown().await;
}

#[tokio::test]
async fn timeouts_stop_the_tool_and_fail_the_task() {
    let t = TestEngine::start(fast_config()).await;
    let mut r = req("baton__sleep", json!({"ms": 60_000, "steps": 600}));
    r.timeout_ms = Some(150);
    r.max_attempts = Some(1);
    let id = submit(&t.engine, r).await;
    let task = wait_final(&t.engine, id).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(task.error.as_ref().unwrap().code, "timeout");
    assert!(task.duration_ms().unwrap() < 5_000);
    t.engine.shutdown().await;
}

#[tokio::test]
async fn per_tool_concurrency_limit_holds() {
    let mut cfg = fast_config();
    cfg.concurrency_limits = vec![ConcurrencyLimit {
        selector: ToolSelector::Tool("baton__sleep".into()),
        max: 2,
    }];
    let t = TestEngine::start(cfg).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(submit(&t.engine, req("baton__sleep", json!({"ms": 100}))).await);
    }
    let echo = submit(&t.engine, req("baton__echo", json!({}))).await;
    // The unlimited tool is not held up behind the limited one.
    assert_eq!(
        wait_final(&t.engine, echo).await.status,
        TaskStatus::Completed
    );
    let mut spans = Vec::new();
    for id in &ids {
        let task = wait_final(&t.engine, *id).await;
        spans.push((task.started_at.unwrap(), task.completed_at.unwrap()));
    }
    // At no instant were more than two sleeps running.
    for (start, _) in &spans {
        let overlapping = spans
            .iter()
            .filter(|(s, e)| s <= start && start < e)
            .count();
        assert!(overlapping <= 2, "{overlapping} ran at once");
    }
    t.engine.shutdown().await;
}

#[tokio::test]
async fn priority_decides_the_order() {
    let mut cfg = fast_config();
    cfg.workers = 1;
    let t = TestEngine::start(cfg).await;
    t.engine
        .set_queue_paused(OWNER, "default", true)
        .await
        .unwrap();
    let mut low = req("baton__echo", json!({"n": "low"}));
    low.priority = Some(baton_core::submit::Priority(10));
    let mut high = req("baton__echo", json!({"n": "high"}));
    high.priority = Some(baton_core::submit::Priority(90));
    let low = submit(&t.engine, low).await;
    let high = submit(&t.engine, high).await;
    t.engine
        .set_queue_paused(OWNER, "default", false)
        .await
        .unwrap();
    let l = wait_final(&t.engine, low).await;
    let h = wait_final(&t.engine, high).await;
    assert!(h.started_at.unwrap() <= l.started_at.unwrap());
    let hs = t.engine.events(OWNER, high, 0, 10).await.unwrap();
    let ls = t.engine.events(OWNER, low, 0, 10).await.unwrap();
    let started = |ev: &[baton_core::TaskEvent]| {
        ev.iter()
            .find(|e| e.kind == EventKind::Started)
            .unwrap()
            .seq
    };
    assert!(started(&hs) < started(&ls), "high priority claimed first");
    t.engine.shutdown().await;
}

#[tokio::test]
async fn idempotency_keys_return_the_same_task() {
    let t = TestEngine::start(fast_config()).await;
    let mut r = req("baton__echo", json!({"x": 1}));
    r.idempotency_key = Some("order-42".into());
    let a = t.engine.submit(OWNER, r.clone()).await.unwrap();
    let b = t.engine.submit(OWNER, r.clone()).await.unwrap();
    assert!(a.created && !b.created);
    assert_eq!(a.task.id, b.task.id);
    let mut different = r;
    different.arguments = Some(json!({"x": 2}));
    let err = t.engine.submit(OWNER, different).await.unwrap_err();
    assert!(
        matches!(err, EngineError::Conflict(ref m) if m.contains("order-42")),
        "{err}"
    );
    wait_final(&t.engine, a.task.id).await;
    assert_eq!(
        kinds(&t.engine, a.task.id)
            .await
            .iter()
            .filter(|k| **k == EventKind::Started)
            .count(),
        1
    );
    t.engine.shutdown().await;
}

#[tokio::test]
async fn active_cap_refuses_with_retry_after() {
    let mut cfg = fast_config();
    cfg.max_active_tasks = 3;
    let t = TestEngine::start(cfg).await;
    t.engine
        .set_queue_paused(OWNER, "default", true)
        .await
        .unwrap();
    for _ in 0..3 {
        submit(&t.engine, req("baton__echo", json!({}))).await;
    }
    let err = t
        .engine
        .submit(OWNER, req("baton__echo", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::TooManyActive {
                active: 3,
                limit: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.retry_after().is_some());
    t.engine.shutdown().await;
}

#[tokio::test]
async fn bad_submissions_store_nothing() {
    let t = TestEngine::start(fast_config()).await;
    let unknown = t
        .engine
        .submit(OWNER, req("baton__nope", json!({})))
        .await
        .unwrap_err();
    assert!(
        unknown.to_string().contains("baton__sleep"),
        "suggests real tools: {unknown}"
    );
    let unqualified = t
        .engine
        .submit(OWNER, req("sleep", json!({})))
        .await
        .unwrap_err();
    assert!(
        unqualified.to_string().contains("server__tool"),
        "{unqualified}"
    );
    let bad = t
        .engine
        .submit(OWNER, req("baton__sleep", json!({"ms": -5})))
        .await
        .unwrap_err();
    assert!(matches!(bad, EngineError::InvalidArguments { .. }));
    assert!(bad.to_string().contains("/ms"), "names the path: {bad}");
    let extra = t
        .engine
        .submit(OWNER, req("baton__sleep", json!({"ms": 1, "nope": 1})))
        .await
        .unwrap_err();
    assert!(extra.to_string().contains("nope"), "{extra}");
    let batch = t
        .engine
        .submit_many(
            OWNER,
            vec![
                req("baton__echo", json!({})),
                req("baton__sleep", json!({"ms": "x"})),
            ],
        )
        .await
        .unwrap_err();
    assert!(batch.to_string().contains("tasks[1]"), "{batch}");
    let all = t
        .engine
        .list(
            OWNER,
            baton_store::TaskQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(all.is_empty(), "nothing stored: {all:?}");
    t.engine.shutdown().await;
}

#[tokio::test]
async fn other_principals_see_nothing() {
    let t = TestEngine::start(fast_config()).await;
    let id = submit(&t.engine, req("baton__echo", json!({}))).await;
    assert!(matches!(
        t.engine.get("mallory", id).await,
        Err(EngineError::TaskNotFound(_))
    ));
    assert!(matches!(
        t.engine.cancel("mallory", id).await,
        Err(EngineError::TaskNotFound(_))
    ));
    assert!(matches!(
        t.engine.events("mallory", id, 0, 10).await,
        Err(EngineError::TaskNotFound(_))
    ));
    t.engine.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_hands_unfinished_tasks_back() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_in(dir.path(), fast_config()).await;
    let slow = submit(
        &engine,
        req("baton__sleep", json!({"ms": 60_000, "steps": 60})),
    )
    .await;
    let quick = submit(&engine, req("baton__sleep", json!({"ms": 50}))).await;
    while engine.get(OWNER, slow).await.unwrap().status != TaskStatus::Running {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.shutdown().await;
    let store = open_store(dir.path()).await;
    let q = store.get_task(quick).await.unwrap().unwrap();
    assert_eq!(
        q.status,
        TaskStatus::Completed,
        "finished within the grace period"
    );
    let s = store.get_task(slow).await.unwrap().unwrap();
    assert_eq!(s.status, TaskStatus::Pending, "handed back, not lost");
    assert_eq!(s.attempt, 0, "a hand-back does not count as an attempt");
    assert!(s.lease.is_none());
    store.close().await;
    // The next run of the node picks it up.
    let mut cfg = fast_config();
    cfg.shutdown_grace = Duration::from_millis(10);
    let engine = start_in(dir.path(), cfg).await;
    engine.cancel(OWNER, slow).await.unwrap();
    assert_eq!(
        wait_final(&engine, slow).await.status,
        TaskStatus::Cancelled
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_restarted_node_requeues_its_previous_leases_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let engine_less = start_in(
        dir.path(),
        EngineConfig {
            run_workers: false,
            ..fast_config()
        },
    )
    .await;
    let id = submit(&engine_less, req("baton__echo", json!({"left": "behind"}))).await;
    engine_less.shutdown().await;
    // What a crashed run of "test-node" left: a long lease it will never heartbeat.
    let now = baton_core::Timestamp::now();
    let claimed = store
        .claim(&ClaimRequest {
            owner: "test-node",
            limit: 1,
            now,
            lease_until: now.saturating_add(Duration::from_secs(3600)),
            token: 1,
            limits: &[],
            rates: &[],
            group_max: None,
        })
        .await
        .unwrap()
        .0;
    assert_eq!(claimed.len(), 1);
    store.close().await;
    let engine = start_in(dir.path(), fast_config()).await;
    let task = wait_final(&engine, id).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.attempt, 2, "the crashed run counted");
    assert!(kinds(&engine, id).await.contains(&EventKind::Released));
    engine.shutdown().await;
}

#[tokio::test]
async fn expired_leases_of_dead_workers_are_rescued() {
    let mut cfg = fast_config();
    cfg.rescue_interval = Duration::from_millis(50);
    // A worker of another process claims the task through the same store, then dies.
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let engine = baton_engine::Engine::start(
        EngineConfig {
            run_workers: false,
            ..cfg.clone()
        },
        store.clone(),
        std::sync::Arc::new(baton_engine::tools::ToolRegistry::with_builtins("__")),
        baton_engine::clock::Clock::system(),
    )
    .await
    .unwrap();
    let id = submit(&engine, req("baton__echo", json!({}))).await;
    let now = baton_core::Timestamp::now();
    store
        .claim(&ClaimRequest {
            owner: "dead-worker",
            limit: 1,
            now,
            lease_until: now.saturating_add(Duration::from_millis(200)),
            token: 9,
            limits: &[],
            rates: &[],
            group_max: None,
        })
        .await
        .unwrap();
    engine.shutdown().await;
    let engine = start_in(dir.path(), cfg).await;
    let task = wait_final(&engine, id).await;
    assert_eq!(task.status, TaskStatus::Completed);
    let k = kinds(&engine, id).await;
    assert!(k.contains(&EventKind::LeaseExpired), "{k:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn retention_deletes_old_finished_tasks_only() {
    let mut cfg = fast_config();
    cfg.retention = Duration::from_millis(200);
    cfg.retention_interval = Duration::from_secs(3600);
    let t = TestEngine::start(cfg).await;
    let done = submit(&t.engine, req("baton__echo", json!({}))).await;
    wait_final(&t.engine, done).await;
    let mut later = req("baton__echo", json!({}));
    later.delay_ms = Some(60_000);
    let pending = submit(&t.engine, later).await;
    assert_eq!(t.engine.purge_expired().await, 0, "not old enough yet");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(t.engine.purge_expired().await, 1);
    assert!(matches!(
        t.engine.get(OWNER, done).await,
        Err(EngineError::TaskNotFound(_))
    ));
    assert_eq!(
        t.engine.get(OWNER, pending).await.unwrap().status,
        TaskStatus::Pending
    );
    t.engine.shutdown().await;
}

/// A task's own time to live deletes it once finished, long before the retention period;
/// one longer than the retention changes nothing, and one too short is refused.
#[tokio::test]
async fn a_task_may_ask_to_be_kept_less_than_the_retention() {
    let mut cfg = fast_config();
    cfg.retention = Duration::from_secs(3600);
    cfg.retention_interval = Duration::from_secs(3600);
    let t = TestEngine::start(cfg).await;
    let mut short = req("baton__echo", json!({}));
    short.ttl_ms = Some(1000);
    let short = t.engine.submit(OWNER, short).await.unwrap().task;
    assert_eq!(
        short.expires_at.map(|e| e.millis_since(short.created_at)),
        Some(1000)
    );
    let mut long = req("baton__echo", json!({}));
    long.ttl_ms = Some(2 * 3600 * 1000);
    let long = t.engine.submit(OWNER, long).await.unwrap().task;
    assert_eq!(
        long.expires_at, None,
        "capped: the retention keeps it anyway"
    );
    wait_final(&t.engine, short.id).await;
    wait_final(&t.engine, long.id).await;
    assert_eq!(t.engine.purge_expired().await, 0, "its time is not up yet");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(t.engine.purge_expired().await, 1);
    assert!(matches!(
        t.engine.get(OWNER, short.id).await,
        Err(EngineError::TaskNotFound(_))
    ));
    assert!(t.engine.get(OWNER, long.id).await.is_ok());

    let mut tiny = req("baton__echo", json!({}));
    tiny.ttl_ms = Some(10);
    let err = t.engine.submit(OWNER, tiny).await.unwrap_err();
    assert!(err.to_string().contains("ttl_ms"), "{err}");
    t.engine.shutdown().await;
}

#[tokio::test]
async fn live_subscribers_see_every_state_change() {
    let t = TestEngine::start(fast_config()).await;
    t.engine
        .set_queue_paused(OWNER, "default", true)
        .await
        .unwrap();
    let id = submit(
        &t.engine,
        req("baton__sleep", json!({"ms": 100, "steps": 2})),
    )
    .await;
    let mut sub = t.engine.subscribe(id);
    t.engine
        .set_queue_paused(OWNER, "default", false)
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .unwrap()
            .unwrap();
        seen.push(ev.kind);
        if ev.status.is_final() {
            break;
        }
    }
    assert_eq!(seen.first(), Some(&EventKind::Started));
    assert!(seen.contains(&EventKind::Progress));
    assert_eq!(seen.last(), Some(&EventKind::Completed));
    t.engine.shutdown().await;
}
