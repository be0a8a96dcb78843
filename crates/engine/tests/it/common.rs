//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use baton_core::policy::RetryPolicy;
use baton_core::submit::SubmitRequest;
use baton_core::{EventKind, TaskId};
use baton_engine::clock::Clock;
use baton_engine::tools::ToolRegistry;
use baton_engine::{Engine, EngineConfig};
use baton_store::Store;
use baton_store::fixtures::{Backend, Guard};
use baton_store::sqlite::{SqliteOptions, SqliteStore};

pub const OWNER: &str = "anonymous";

/// Both backends, for tests that must hold on each.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

pub struct TestEngine {
    pub engine: Engine,
    pub dir: tempfile::TempDir,
}

pub fn fast_config() -> EngineConfig {
    EngineConfig {
        node_id: "test-node".into(),
        workers: 8,
        poll_interval: Duration::from_millis(50),
        progress_flush: Duration::from_millis(20),
        retry: RetryPolicy {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
            jitter: 0.0,
        },
        shutdown_grace: Duration::from_millis(200),
        cancel_grace: Duration::from_millis(500),
        ..Default::default()
    }
}

pub async fn open_store(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(&SqliteOptions::new(dir.join("baton.db")))
            .await
            .unwrap(),
    )
}

impl TestEngine {
    pub async fn start(config: EngineConfig) -> TestEngine {
        let dir = tempfile::tempdir().unwrap();
        let engine = start_in(dir.path(), config).await;
        TestEngine { engine, dir }
    }
}

pub async fn start_in(dir: &std::path::Path, config: EngineConfig) -> Engine {
    let store = open_store(dir).await;
    let tools = Arc::new(ToolRegistry::with_builtins("__"));
    Engine::start(config, store, tools, Clock::system())
        .await
        .unwrap()
}

/// An engine on a fresh store of `backend`, with the given tools and clock. Keep the
/// guard as long as the engine.
pub async fn start_on(
    backend: Backend,
    config: EngineConfig,
    tools: Arc<ToolRegistry>,
    clock: Clock,
) -> (Engine, Guard) {
    let (store, guard) = baton_store::fixtures::fresh(backend).await;
    let engine = Engine::start(config, store, tools, clock).await.unwrap();
    (engine, guard)
}

pub fn req(tool: &str, args: serde_json::Value) -> SubmitRequest {
    SubmitRequest::new(tool, args)
}

pub async fn submit(e: &Engine, r: SubmitRequest) -> TaskId {
    e.submit(OWNER, r).await.unwrap().task.id
}

pub async fn wait_final(e: &Engine, id: TaskId) -> baton_core::Task {
    let t = e.wait(OWNER, id, Duration::from_secs(20)).await.unwrap();
    assert!(t.status.is_final(), "task {id} did not finish: {t:?}");
    t
}

pub async fn kinds(e: &Engine, id: TaskId) -> Vec<EventKind> {
    e.events(OWNER, id, 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect()
}

/// Polls `check` until it holds, failing with `what` after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
