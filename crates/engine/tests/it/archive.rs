//! The archive, in process, on both backends with a local directory as the object store:
//! retention archives then deletes, reads answer from the archive, an export lists each
//! item once, and a crash between the object's write and the store's commit loses and
//! repeats nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{TaskStatus, Timestamp};
use baton_engine::archive::export;
use baton_engine::clock::Clock;
use baton_engine::objects::{Objects, ObjectsConfig};
use baton_engine::tools::ToolRegistry;
use baton_engine::{Engine, EngineConfig, EngineError};
use baton_store::{ArchiveKind, StoreError};
use serde_json::{Value, json};

use crate::common::*;

fn archive_config(dir: &std::path::Path) -> (EngineConfig, Objects) {
    let objects = Objects::open(&ObjectsConfig {
        url: format!("file://{}", dir.join("archive").display()),
        ..Default::default()
    })
    .unwrap();
    let config = EngineConfig {
        retention: Duration::from_millis(200),
        // Retention is run by hand below.
        retention_interval: Duration::from_secs(3600),
        archive: Some(objects.clone()),
        ..fast_config()
    };
    (config, objects)
}

async fn start(config: EngineConfig, store: Arc<dyn baton_store::Store>) -> Engine {
    Engine::start(
        config,
        store,
        Arc::new(ToolRegistry::with_builtins("__")),
        Clock::system(),
    )
    .await
    .unwrap()
}

/// Every line of the archive of `kind`, as JSON.
async fn exported(objects: &Objects, kind: ArchiveKind) -> Vec<Value> {
    let mut out = Vec::new();
    let since = Timestamp::from_millis(0);
    let until = Timestamp::now().saturating_add(Duration::from_secs(3600));
    export(objects, kind, since, until, &mut out, &mut |_, _, _| {})
        .await
        .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_archives_then_reads_come_from_the_archive() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let (config, objects) = archive_config(dir.path());
        let (store, _guard) = baton_store::fixtures::fresh(backend).await;
        let engine = start(config, store).await;
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(submit(&engine, req("baton__echo", json!({"i": i}))).await);
        }
        let definition = baton_engine::workflow::definition_from_value(json!({
            "name": "two",
            "steps": [
                {"id": "a", "tool": "baton__echo", "arguments": {"x": 1}},
                {"id": "b", "tool": "baton__echo", "arguments": {"y": "${steps.a.result}"},
                 "depends_on": ["a"]},
            ],
        }))
        .unwrap();
        let wf = engine.submit_workflow(OWNER, definition).await.unwrap();
        for id in &ids {
            assert_eq!(wait_final(&engine, *id).await.status, TaskStatus::Completed);
        }
        let wf_id = wf.workflow_id.clone();
        eventually("the workflow ends", Duration::from_secs(20), async || {
            engine
                .get_workflow(OWNER, &wf_id)
                .await
                .unwrap()
                .status
                .is_final()
        })
        .await;
        let before = engine.get_workflow(OWNER, &wf_id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;

        assert_eq!(
            engine.purge_expired().await,
            5,
            "{backend:?}: 3 tasks, 2 steps"
        );
        assert_eq!(engine.purge_expired().await, 0, "{backend:?}: once");
        for (i, id) in ids.iter().enumerate() {
            assert!(matches!(
                engine.get(OWNER, *id).await,
                Err(EngineError::TaskNotFound(_))
            ));
            let view = engine.describe(OWNER, *id).await.unwrap();
            assert!(view.archived, "{backend:?}");
            assert_eq!(view.status, TaskStatus::Completed);
            assert_eq!(view.arguments, json!({"i": i}));
            assert_eq!(view.result.unwrap()["structuredContent"], json!({"i": i}));
            // Another principal sees nothing, archived or not.
            assert!(matches!(
                engine.describe("mallory", *id).await,
                Err(EngineError::TaskNotFound(_))
            ));
        }
        let view = engine.get_workflow(OWNER, &wf_id).await.unwrap();
        assert!(view.archived);
        assert_eq!(view.status, before.status);
        assert_eq!(view.steps.len(), 2);
        assert!(matches!(
            engine.get_workflow("mallory", &wf_id).await,
            Err(EngineError::WorkflowNotFound(_))
        ));
        // A step reads back as a task too.
        let step = before.steps[0].task_id.clone().unwrap();
        let step_view = engine.describe(OWNER, step.parse().unwrap()).await.unwrap();
        assert!(step_view.archived);
        assert_eq!(step_view.workflow_id.as_deref(), Some(wf_id.as_str()));

        let tasks = exported(&objects, ArchiveKind::Task).await;
        assert_eq!(tasks.len(), 3, "{backend:?}");
        assert!(tasks.iter().all(|l| l["kind"] == "task"));
        assert!(
            tasks
                .iter()
                .all(|l| !l["events"].as_array().unwrap().is_empty())
        );
        let workflows = exported(&objects, ArchiveKind::Workflow).await;
        assert_eq!(workflows.len(), 1);
        assert_eq!(workflows[0]["workflow"]["id"], json!(wf_id));
        assert_eq!(workflows[0]["steps"].as_array().unwrap().len(), 2);
        engine.shutdown().await;
    }
}

/// The store's commit after the object's write fails (as if the process died between
/// them): nothing is deleted; the next round writes the same object again and
/// completes, and every task is in the archive exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_write_and_the_commit_loses_and_repeats_nothing() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let (config, objects) = archive_config(dir.path());
        let (store, _guard) = baton_store::fixtures::fresh(backend).await;
        let faulty = baton_store::fixtures::FaultyStore::new(store);
        let engine = start(config, faulty.clone()).await;
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(submit(&engine, req("baton__echo", json!({"i": i}))).await);
        }
        for id in &ids {
            wait_final(&engine, *id).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        faulty.set_fault(|call| {
            (call.method == "complete_archive")
                .then(|| StoreError::Unavailable("injected: the process died".into()))
        });
        assert_eq!(engine.purge_expired().await, 0, "{backend:?}");
        let written = objects.list("tasks/").await.unwrap();
        assert_eq!(written.len(), 1, "the object was written: {written:?}");
        for id in &ids {
            assert!(engine.get(OWNER, *id).await.is_ok(), "nothing deleted");
        }

        // The next round resumes the batch (a new process would too: the batch is in
        // the store; the black-box tests of the binary kill one).
        faulty.clear_fault();
        assert_eq!(engine.purge_expired().await, 20, "{backend:?}");
        let paths = |l: Vec<baton_engine::objects::ObjectInfo>| -> Vec<String> {
            l.into_iter().map(|o| o.path).collect()
        };
        assert_eq!(
            paths(objects.list("tasks/").await.unwrap()),
            paths(written),
            "the same object, written again in place"
        );
        let lines = exported(&objects, ArchiveKind::Task).await;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for l in &lines {
            *seen
                .entry(l["task"]["id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        assert_eq!(seen.len(), 20, "{backend:?}: none lost");
        assert!(seen.values().all(|n| *n == 1), "none twice: {seen:?}");
        for id in &ids {
            assert!(engine.describe(OWNER, *id).await.unwrap().archived);
        }
        engine.shutdown().await;
    }
}
