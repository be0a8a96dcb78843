//! A node in process: the router over a real engine on a fresh SQLite store.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use baton_engine::clock::Clock;
use baton_engine::tools::ToolRegistry;
use baton_engine::{Engine, EngineConfig};
use baton_server::auth::{Auth, AuthSettings};
use baton_server::rest::AppState;
pub use baton_store::fixtures::Backend;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Node names, unique per process (two nodes may share a store).
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub struct Node {
    pub router: Router,
    pub engine: Engine,
    pub store: Arc<dyn baton_store::Store>,
    _dir: Option<baton_store::fixtures::Guard>,
}

impl Node {
    /// A node that asks for no credentials, on SQLite (the laptop default).
    pub async fn start() -> Node {
        Node::start_with(Backend::Sqlite, AuthSettings::default()).await
    }

    /// A node with these authentication settings on a fresh store of `backend`.
    pub async fn start_with(backend: Backend, auth: AuthSettings) -> Node {
        let (store, dir) = baton_store::fixtures::fresh(backend).await;
        Node::on_store(store, Some(dir), auth).await
    }

    /// A node on `store` (another node may share it).
    pub async fn on_store(
        store: Arc<dyn baton_store::Store>,
        dir: Option<baton_store::fixtures::Guard>,
        auth: AuthSettings,
    ) -> Node {
        Node::on_store_with(store, dir, auth, None).await
    }

    /// A node that also accepts the JWTs `jwt` verifies.
    pub async fn on_store_with(
        store: Arc<dyn baton_store::Store>,
        dir: Option<baton_store::fixtures::Guard>,
        auth: AuthSettings,
        jwt: Option<Arc<baton_server::auth::jwt::JwtVerifier>>,
    ) -> Node {
        let tools = Arc::new(ToolRegistry::with_builtins("__"));
        // Unique across test processes too: starting upstreams reaps the server processes
        // a previous run of the same node id left behind.
        let node_id = format!(
            "node-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let config = EngineConfig {
            node_id: node_id.clone(),
            workers: 4,
            poll_interval: Duration::from_millis(50),
            ..Default::default()
        };
        let engine = Engine::start(config, store.clone(), tools.clone(), Clock::system())
            .await
            .unwrap();
        let upstreams =
            baton_upstream::Upstreams::new(tools, store.clone(), &node_id, Default::default());
        let mcp =
            baton_mcp::McpService::new(engine.clone(), Some(upstreams.clone()), Default::default());
        let router = baton_server::routes::router(
            AppState {
                engine: engine.clone(),
                shutdown: CancellationToken::new(),
                upstreams,
                mcp,
                allow_runtime_commands: !auth.required,
            },
            1 << 20,
            Duration::from_secs(10),
            baton_server::guard::BrowserGuard {
                loopback_only: true,
                ..Default::default()
            },
            Arc::new(Auth::new(
                engine.clone(),
                AuthSettings {
                    max_body_bytes: 1 << 20,
                    ..auth
                },
                jwt,
            )),
        );
        Node {
            router,
            engine,
            store,
            _dir: dir,
        }
    }

    /// Sends a request; the answer's status and JSON body (`Null` when empty or not JSON).
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(
            Request::get(path)
                .header("host", "127.0.0.1:7420")
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            Request::post(path)
                .header("host", "127.0.0.1:7420")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(
            Request::delete(path)
                .header("host", "127.0.0.1:7420")
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Waits for the task to finish (through the API).
    pub async fn finished(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/tasks/{id}/result?wait=30")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        self.get(&format!("/v1/tasks/{id}")).await.1
    }
}
