//! Regressions of the engine audit: each test reproduces one way the "never twice, never
//! lost, one bad request harms no other" promise broke, on every backend it applies to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use baton_core::submit::SubmitRequest;
use baton_core::{EventKind, TaskStatus};
use baton_engine::clock::Clock;
use baton_engine::tools::{
    ToolCallError, ToolContext, ToolInfo, ToolOutput, ToolProvider, ToolRegistry,
};
use baton_engine::{EngineConfig, EngineError};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::common::*;

fn registry() -> Arc<ToolRegistry> {
    Arc::new(ToolRegistry::with_builtins("__"))
}

/// 1. A task whose failure message holds a NUL byte (which PostgreSQL `text` cannot
/// store) finishes in the same group commit as hundreds of others. It used to poison the
/// batch: every task in it lost its outcome and ran again until it failed. Each task must
/// run once, and the bad one fail with its message stored escaped. An idempotency key
/// with a NUL byte is refused at the door, and harms no concurrent submission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unstorable_message_does_not_fail_the_writes_batched_with_it() {
    for backend in BACKENDS {
        let config = EngineConfig {
            workers: 64,
            ..fast_config()
        };
        let (engine, _guard) = start_on(backend, config, registry(), Clock::system()).await;
        let mut joins = Vec::new();
        for i in 0..300 {
            let e = engine.clone();
            joins.push(tokio::spawn(async move {
                submit(&e, req("baton__echo", json!({"i": i}))).await
            }));
        }
        let bad = submit(
            &engine,
            req(
                "baton__fail",
                json!({"message": "x\u{0}y", "retryable": false}),
            ),
        )
        .await;
        let mut keyed = SubmitRequest::new("baton__echo", json!({}));
        keyed.idempotency_key = Some("k\u{0}".into());
        let refused = engine.submit(OWNER, keyed).await.unwrap_err();
        assert!(
            matches!(&refused, EngineError::Invalid(e) if e.field == "idempotency_key"),
            "{backend:?}: {refused}"
        );
        for j in joins {
            let id = j.await.unwrap();
            let t = wait_final(&engine, id).await;
            assert_eq!(t.status, TaskStatus::Completed, "{backend:?}: {t:?}");
            assert_eq!(t.attempt, 1, "{backend:?}: ran more than once: {t:?}");
            let started = kinds(&engine, id)
                .await
                .iter()
                .filter(|k| **k == EventKind::Started)
                .count();
            assert_eq!(started, 1, "{backend:?}");
        }
        let t = wait_final(&engine, bad).await;
        assert_eq!(t.status, TaskStatus::Failed);
        assert_eq!(t.error.as_ref().unwrap().message, "x\u{0}y");
        let events = engine.events(OWNER, bad, 0, 100).await.unwrap();
        assert_eq!(
            events.last().unwrap().message.as_deref(),
            Some("x\u{FFFD}y"),
            "{backend:?}"
        );
        engine.shutdown().await;
    }
}

/// A tool whose first run ignores cancellation until the test releases it, and whose
/// later runs stop when cancelled, recording that they saw it.
#[derive(Default)]
struct Stubborn {
    runs: AtomicU32,
    release_first: Notify,
    cancelled: std::sync::Mutex<Vec<u32>>,
}

#[async_trait]
impl ToolProvider for Stubborn {
    fn tools(&self) -> Vec<ToolInfo> {
        vec![ToolInfo {
            name: "work".into(),
            description: None,
            input_schema: Arc::new(json!({"type": "object"})),
            definition: Arc::new(json!({"name": "work", "inputSchema": {"type": "object"}})),
        }]
    }

    async fn call(&self, _: &str, _: Value, ctx: ToolContext) -> Result<ToolOutput, ToolCallError> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        if run == 1 {
            self.release_first.notified().await;
            return Ok(ToolOutput::text("run 1"));
        }
        ctx.cancel.cancelled().await;
        self.cancelled.lock().unwrap().push(run);
        Err(ToolCallError::cancelled())
    }
}

/// 2. A run that lost its lease (its node stalled past the lease) while its tool ignored
/// cancellation; the task was rescued and claimed again by the same node. When the stale
/// run ended it used to unregister the new run (runs were known by task id only): the new
/// run then got no heartbeat and no cancellation. Runs are known by task and lease token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_run_ending_leaves_the_current_run_of_its_task_alone() {
    for backend in BACKENDS {
        let tools = registry();
        let stubborn = Arc::new(Stubborn::default());
        tools.register("stubborn", stubborn.clone());
        let (clock, control) = Clock::adjustable();
        let config = EngineConfig {
            lease: Duration::from_secs(2),
            heartbeat: Duration::from_millis(100),
            rescue_interval: Duration::from_millis(50),
            ..fast_config()
        };
        let (engine, _guard) = start_on(backend, config, tools, clock).await;
        let id = submit(&engine, req("stubborn__work", json!({}))).await;
        eventually(
            "the first run starts",
            Duration::from_secs(10),
            async || stubborn.runs.load(Ordering::SeqCst) == 1,
        )
        .await;
        // The node "stalls" past its lease: as it resumes, its clock has jumped. Its lease
        // is rescued and it claims the task again.
        control.advance(Duration::from_secs(10));
        eventually(
            "the task is claimed again",
            Duration::from_secs(10),
            async || stubborn.runs.load(Ordering::SeqCst) == 2,
        )
        .await;
        assert_eq!(engine.running_here(), 2, "{backend:?}: both runs are here");
        // The stale run ends; its outcome is refused (its lease is gone)...
        stubborn.release_first.notify_one();
        eventually("the stale run ends", Duration::from_secs(10), async || {
            engine.running_here() == 1
        })
        .await;
        // ...and the current run is still known: heartbeats keep its lease, and a
        // cancellation reaches it.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let t = engine.get(OWNER, id).await.unwrap();
        assert_eq!(t.status, TaskStatus::Running, "{backend:?}: {t:?}");
        assert_eq!(t.attempt, 2, "{backend:?}: no third run: {t:?}");
        engine.cancel(OWNER, id).await.unwrap();
        let t = wait_final(&engine, id).await;
        assert_eq!(t.status, TaskStatus::Cancelled, "{backend:?}");
        assert_eq!(*stubborn.cancelled.lock().unwrap(), vec![2], "{backend:?}");
        assert_eq!(stubborn.runs.load(Ordering::SeqCst), 2, "{backend:?}");
        engine.shutdown().await;
    }
}

/// 7. Lease expiry and peer liveness compare times written by different processes. A
/// process whose machine clock runs an hour ahead, holding the maintenance role, used to
/// rescue every live lease of the others and mark them lost. On PostgreSQL every process
/// aligns with the database server's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_clock_does_not_rescue_live_leases() {
    let (store, guard) =
        baton_store::fixtures::fresh(baton_store::fixtures::Backend::Postgres).await;
    let baton_store::fixtures::Guard::Schema(schema) = &guard else {
        unreachable!()
    };
    // The skewed process: no workers, maintenance every 50 ms; it starts first, so it
    // takes the maintenance role.
    let (skewed_clock, skew) = Clock::adjustable();
    skew.set_offset_ms(3_600_000);
    let skewed = baton_engine::Engine::start(
        EngineConfig {
            node_id: "skewed".into(),
            run_workers: false,
            lease: Duration::from_secs(2),
            heartbeat: Duration::from_millis(200),
            rescue_interval: Duration::from_millis(50),
            ..fast_config()
        },
        store,
        registry(),
        skewed_clock,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other_store: Arc<dyn baton_store::Store> = Arc::new(schema.store(4).await);
    let worker = baton_engine::Engine::start(
        EngineConfig {
            node_id: "worker".into(),
            lease: Duration::from_secs(2),
            heartbeat: Duration::from_millis(200),
            rescue_interval: Duration::from_secs(3600),
            ..fast_config()
        },
        other_store,
        registry(),
        Clock::system(),
    )
    .await
    .unwrap();
    let id = submit(
        &skewed,
        req("baton__sleep", json!({"ms": 3000, "steps": 3})),
    )
    .await;
    let t = skewed
        .wait(OWNER, id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
    assert_eq!(t.attempt, 1, "a live lease was rescued: {t:?}");
    let events = skewed.events(OWNER, id, 0, 100).await.unwrap();
    assert!(
        !events.iter().any(|e| e.kind == EventKind::LeaseExpired),
        "{events:?}"
    );
    let peers = skewed.peers().await.unwrap();
    let health = |id: &str| peers.iter().find(|(p, _)| p.id == id).map(|(_, h)| *h);
    assert_eq!(health("worker"), Some("healthy"), "{peers:?}");
    worker.shutdown().await;
    skewed.shutdown().await;
}

/// 7. A node that stalled for longer than its lease (on SQLite, the only process) used to
/// mark itself lost when it resumed: a process that asks is alive. Its expired leases
/// are rescued as expired ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_node_does_not_declare_itself_lost() {
    let (clock, control) = Clock::adjustable();
    let config = EngineConfig {
        lease: Duration::from_secs(2),
        heartbeat: Duration::from_millis(100),
        rescue_interval: Duration::from_millis(50),
        ..fast_config()
    };
    let (engine, _guard) = start_on(
        baton_store::fixtures::Backend::Sqlite,
        config,
        registry(),
        clock,
    )
    .await;
    let id = submit(
        &engine,
        req("baton__sleep", json!({"ms": 2000, "steps": 20})),
    )
    .await;
    eventually("it runs", Duration::from_secs(10), async || {
        engine.get(OWNER, id).await.unwrap().status == TaskStatus::Running
    })
    .await;
    control.advance(Duration::from_secs(30));
    eventually(
        "its lease is rescued",
        Duration::from_secs(10),
        async || kinds(&engine, id).await.contains(&EventKind::LeaseExpired),
    )
    .await;
    let events = engine.events(OWNER, id, 0, 100).await.unwrap();
    let rescue = events
        .iter()
        .find(|e| e.kind == EventKind::LeaseExpired)
        .unwrap();
    assert!(
        rescue
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("the lease expired"),
        "rescued as a lost peer's: {rescue:?}"
    );
    for (peer, health) in engine.peers().await.unwrap() {
        assert_ne!(health, "lost", "{peer:?}");
    }
    wait_final(&engine, id).await;
    engine.shutdown().await;
}

/// 5. Cancelling a workflow used to stop at the first step whose cancel failed (a step
/// that finished meanwhile answered 409; a store error, the same): the workflow was
/// marked cancelled while its other running steps ran on, with no way to stop them.
/// Cancelling the steps may fail after the workflow is marked cancelled: the
/// coordinator finishes what failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_workflow_reaches_every_step_even_when_one_cancel_fails() {
    for backend in BACKENDS {
        let (store, _guard) = baton_store::fixtures::fresh(backend).await;
        let faulty = baton_store::fixtures::FaultyStore::new(store);
        let engine =
            baton_engine::Engine::start(fast_config(), faulty.clone(), registry(), Clock::system())
                .await
                .unwrap();
        let definition = baton_engine::workflow::definition_from_value(json!({
            "name": "three",
            "steps": [
                {"id": "a", "tool": "baton__sleep", "arguments": {"ms": 60000, "steps": 60}},
                {"id": "b", "tool": "baton__sleep", "arguments": {"ms": 60000, "steps": 60}},
                {"id": "c", "tool": "baton__sleep", "arguments": {"ms": 60000, "steps": 60}},
            ],
        }))
        .unwrap();
        let wf = engine.submit_workflow(OWNER, definition).await.unwrap();
        let id = wf.workflow_id.clone();
        eventually("all three run", Duration::from_secs(10), async || {
            let v = engine.get_workflow(OWNER, &id).await.unwrap();
            v.steps
                .iter()
                .all(|s| s.task_status == Some(TaskStatus::Running))
        })
        .await;
        // The workflow is marked cancelled (the first write); cancelling its steps (the
        // second) fails, once.
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let once = failed.clone();
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        faulty.set_fault(move |call| {
            (call.method == "update_workflow"
                && writes.fetch_add(1, Ordering::SeqCst) == 1
                && !once.swap(true, Ordering::SeqCst))
            .then(|| {
                baton_store::StoreError::Unavailable("injected: the database went away".into())
            })
        });
        let view = engine.cancel_workflow(OWNER, &id).await;
        assert!(view.is_ok(), "{backend:?}: {view:?}");
        assert!(failed.load(Ordering::SeqCst), "the fault fired");
        eventually(
            "every step is cancelled",
            Duration::from_secs(15),
            async || {
                let v = engine.get_workflow(OWNER, &id).await.unwrap();
                v.steps
                    .iter()
                    .all(|s| s.task_status == Some(TaskStatus::Cancelled))
            },
        )
        .await;
        faulty.clear_fault();
        engine.shutdown().await;
    }
}

/// 6. A batch reusing an idempotency key for a different call used to answer 409 after
/// committing: the batch's other tasks were stored and ran. The check is inside the
/// store's transaction, so a refused batch stores nothing; concurrent submissions that
/// shared its group commit are stored as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_a_conflicting_key_stores_nothing() {
    for backend in BACKENDS {
        let (engine, _guard) = start_on(backend, fast_config(), registry(), Clock::system()).await;
        let mut first = SubmitRequest::new("baton__echo", json!({"v": 1}));
        first.idempotency_key = Some("k".into());
        engine.submit(OWNER, first).await.unwrap();
        let mut reused = SubmitRequest::new("baton__echo", json!({"v": 2}));
        reused.idempotency_key = Some("k".into());
        let batch = vec![
            SubmitRequest::new("baton__echo", json!({"innocent": true})),
            reused,
        ];
        let others: Vec<_> = (0..50)
            .map(|i| {
                let e = engine.clone();
                tokio::spawn(async move { submit(&e, req("baton__echo", json!({"o": i}))).await })
            })
            .collect();
        let err = engine.submit_many(OWNER, batch).await.unwrap_err();
        assert_eq!(
            err.code(),
            baton_core::ErrorCode::Conflict,
            "{backend:?}: {err}"
        );
        assert!(err.to_string().contains("idempotency key `k`"), "{err}");
        for o in others {
            let id = o.await.unwrap();
            assert_eq!(wait_final(&engine, id).await.status, TaskStatus::Completed);
        }
        let all = engine
            .list(
                OWNER,
                baton_store::TaskQuery {
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(
            !all.iter().any(|t| t.arguments == json!({"innocent": true})),
            "{backend:?}: the refused batch stored a task"
        );
        assert_eq!(all.len(), 51, "{backend:?}");
        engine.shutdown().await;
    }
}

/// 3. Retention used to delete the completed steps of a failed workflow (which can still
/// be retried), and the retry then ran them again. A workflow and its steps are purged
/// together, once the workflow has been over for the retention period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_completed_steps_of_a_retryable_workflow() {
    for backend in BACKENDS {
        let config = EngineConfig {
            retention: Duration::from_secs(2),
            retention_interval: Duration::from_secs(3600),
            ..fast_config()
        };
        let (engine, _guard) = start_on(backend, config, registry(), Clock::system()).await;
        let definition = baton_engine::workflow::definition_from_value(json!({
            "name": "late-failure",
            "on_failure": "continue",
            "steps": [
                {"id": "early", "tool": "baton__echo", "arguments": {"done": true}},
                {"id": "wait", "tool": "baton__sleep", "arguments": {"ms": 3000}},
                {"id": "boom", "tool": "baton__fail", "depends_on": ["wait"],
                 "arguments": {"message": "late", "retryable": false}},
            ],
        }))
        .unwrap();
        let id = engine
            .submit_workflow(OWNER, definition)
            .await
            .unwrap()
            .workflow_id;
        eventually("the workflow fails", Duration::from_secs(20), async || {
            engine.get_workflow(OWNER, &id).await.unwrap().status
                == baton_workflow::WorkflowStatus::Failed
        })
        .await;
        let early = |v: &baton_engine::workflow::WorkflowView| {
            v.steps
                .iter()
                .find(|s| s.step_id == "early")
                .unwrap()
                .task_id
                .clone()
        };
        let before = early(&engine.get_workflow(OWNER, &id).await.unwrap());
        // `early` completed more than the retention ago; the workflow failed less.
        engine.purge_expired().await;
        let view = engine.retry_workflow(OWNER, &id).await.unwrap();
        assert_eq!(
            early(&view),
            before,
            "{backend:?}: the completed step is kept"
        );
        let step = view.steps.iter().find(|s| s.step_id == "early").unwrap();
        assert_eq!(step.task_status, Some(TaskStatus::Completed), "{backend:?}");
        let task: baton_core::TaskId = before.unwrap().parse().unwrap();
        assert_eq!(
            kinds(&engine, task)
                .await
                .iter()
                .filter(|k| **k == EventKind::Started)
                .count(),
            1,
            "{backend:?}: it never ran again"
        );
        engine.shutdown().await;
    }
}

/// A tool provider with one tool, `work`, that answers at once.
struct Quick;

#[async_trait]
impl ToolProvider for Quick {
    fn tools(&self) -> Vec<ToolInfo> {
        vec![ToolInfo {
            name: "work".into(),
            description: None,
            input_schema: Arc::new(json!({"type": "object"})),
            definition: Arc::new(json!({"name": "work", "inputSchema": {"type": "object"}})),
        }]
    }

    async fn call(&self, _: &str, _: Value, _: ToolContext) -> Result<ToolOutput, ToolCallError> {
        Ok(ToolOutput::text("done"))
    }
}

/// 8. The coordinator used to check tools again when it created later steps: a tool not
/// listed at that moment (its server reconnecting) failed the step for good. The step's
/// task is created and waits for its tool like any task (a retryable `unknown_tool`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_whose_tool_is_away_when_it_becomes_ready_waits_for_it() {
    for backend in BACKENDS {
        let tools = registry();
        tools.register("late", Arc::new(Quick));
        let (engine, _guard) =
            start_on(backend, fast_config(), tools.clone(), Clock::system()).await;
        let definition = baton_engine::workflow::definition_from_value(json!({
            "name": "reconnecting",
            "steps": [
                {"id": "first", "tool": "baton__sleep", "arguments": {"ms": 300}},
                {"id": "then", "tool": "late__work", "depends_on": ["first"],
                 "retry": {"max_attempts": 20}},
            ],
        }))
        .unwrap();
        let id = engine
            .submit_workflow(OWNER, definition)
            .await
            .unwrap()
            .workflow_id;
        // The server goes away (reconnecting) before `then` becomes ready.
        tools.unregister("late");
        eventually(
            "`then` fails an attempt",
            Duration::from_secs(20),
            async || {
                let v = engine.get_workflow(OWNER, &id).await.unwrap();
                v.steps
                    .iter()
                    .any(|s| s.step_id == "then" && s.attempt.unwrap_or(0) >= 1)
            },
        )
        .await;
        assert_eq!(
            engine.get_workflow(OWNER, &id).await.unwrap().status,
            baton_workflow::WorkflowStatus::Running,
            "{backend:?}"
        );
        tools.register("late", Arc::new(Quick));
        eventually(
            "the workflow completes",
            Duration::from_secs(20),
            async || {
                engine.get_workflow(OWNER, &id).await.unwrap().status
                    == baton_workflow::WorkflowStatus::Completed
            },
        )
        .await;
        engine.shutdown().await;
    }
}

/// 12. `tasks.max_active` used to be bypassed by workflows (a workflow's steps were
/// stored whatever the count: 3,050 active against a cap of 50) and by retries by hand.
/// Every way a task becomes active counts: a workflow's first steps at submit (429 when
/// they do not fit), its later steps only while there is room, and retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_task_cap_holds_for_workflows_and_retries() {
    for backend in BACKENDS {
        let config = EngineConfig {
            max_active_tasks: 10,
            workers: 4,
            ..fast_config()
        };
        let (engine, _guard) = start_on(backend, config, registry(), Clock::system()).await;
        let wide: Vec<Value> = (0..30)
            .map(
                |i| json!({"id": format!("s{i}"), "tool": "baton__sleep", "arguments": {"ms": 50}}),
            )
            .collect();
        let definition = baton_engine::workflow::definition_from_value(
            json!({"name": "too-wide", "steps": wide}),
        )
        .unwrap();
        let err = engine.submit_workflow(OWNER, definition).await.unwrap_err();
        assert!(
            matches!(err, EngineError::TooManyActive { .. }),
            "{backend:?}: {err}"
        );
        // One root fanning out to 30 steps: they start as room frees up.
        let mut steps = vec![json!({"id": "root", "tool": "baton__echo"})];
        steps.extend((0..30).map(|i| {
            json!({"id": format!("s{i}"), "tool": "baton__sleep", "arguments": {"ms": 100},
                   "depends_on": ["root"]})
        }));
        let definition = baton_engine::workflow::definition_from_value(
            json!({"name": "fan-out", "steps": steps}),
        )
        .unwrap();
        let id = engine
            .submit_workflow(OWNER, definition)
            .await
            .unwrap()
            .workflow_id;
        let mut peak = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            peak = peak.max(engine.active_tasks());
            let v = engine.get_workflow(OWNER, &id).await.unwrap();
            if v.status.is_final() {
                assert_eq!(
                    v.status,
                    baton_workflow::WorkflowStatus::Completed,
                    "{backend:?}"
                );
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{backend:?}: {v:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(peak <= 10, "{backend:?}: {peak} active against a cap of 10");
        // Retries by hand count too.
        let blockers: Vec<_> = (0..10)
            .map(|_| req("baton__sleep", json!({"ms": 60000})))
            .collect();
        let failed = submit(&engine, req("baton__fail", json!({"retryable": false}))).await;
        wait_final(&engine, failed).await;
        engine.submit_many(OWNER, blockers).await.unwrap();
        let err = engine.retry(OWNER, failed).await.unwrap_err();
        assert!(
            matches!(err, EngineError::TooManyActive { .. }),
            "{backend:?}: {err}"
        );
        engine.shutdown().await;
    }
}

/// 13. A wide DAG advanced in bursts: every advance (and every read) parsed and checked
/// the stored definition again, in O(steps x edges), and steps waited for that work. The
/// plan of a stored workflow is now built once: an all-to-all DAG of 60 steps, advanced
/// 60 times and read many more, builds it once (twice if the coordinator and a reader
/// miss the cache at the same moment), not once per advance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_dag_builds_its_plan_once() {
    for backend in BACKENDS {
        let (engine, _guard) = start_on(backend, fast_config(), registry(), Clock::system()).await;
        let steps: Vec<Value> = (0..60)
            .map(|i| {
                let deps: Vec<String> = (0..i).map(|d| format!("s{d}")).collect();
                json!({"id": format!("s{i}"), "tool": "baton__echo", "depends_on": deps,
                       "arguments": {"i": i}})
            })
            .collect();
        let definition =
            baton_engine::workflow::definition_from_value(json!({"name": "wide", "steps": steps}))
                .unwrap();
        let before = engine.workflow_plans_built();
        let id = engine
            .submit_workflow(OWNER, definition)
            .await
            .unwrap()
            .workflow_id;
        eventually("the DAG completes", Duration::from_secs(60), async || {
            engine.get_workflow(OWNER, &id).await.unwrap().status
                == baton_workflow::WorkflowStatus::Completed
        })
        .await;
        let built = engine.workflow_plans_built() - before;
        assert!(built <= 2, "{backend:?}: the plan was built {built} times");
        engine.shutdown().await;
    }
}
