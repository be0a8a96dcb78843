//! The MCP service's state: its engine, upstream servers, sessions and settings. Every
//! handler takes it; it calls none of them.

use std::sync::Arc;
use std::time::Duration;

use baton_engine::Engine;
use baton_upstream::Upstreams;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::protocol;
use crate::session::Sessions;

#[derive(Debug, Clone)]
pub struct McpSettings {
    /// How often a waiting plain call sends keep-alive progress (clients that reset their
    /// timeout on progress then never give up).
    pub keepalive: Duration,
    /// The poll interval Baton suggests for its tasks.
    pub poll_interval_ms: u64,
    /// How long finished tasks stay readable (the retention), reported as their TTL.
    pub task_ttl_ms: u64,
    /// Largest accepted message, in bytes.
    pub max_message_bytes: usize,
}

impl Default for McpSettings {
    fn default() -> Self {
        McpSettings {
            keepalive: Duration::from_secs(15),
            poll_interval_ms: 1000,
            task_ttl_ms: 24 * 3600 * 1000,
            max_message_bytes: 4 * 1024 * 1024,
        }
    }
}

pub struct McpService {
    pub engine: Engine,
    pub upstreams: Option<Arc<Upstreams>>,
    pub sessions: Sessions,
    pub settings: McpSettings,
    /// Ticks when the tool catalog changes.
    pub catalog_changed: broadcast::Sender<()>,
}

pub(crate) const INSTRUCTIONS: &str = "Baton runs every tool call as a durable task: stored before it \
is acknowledged, retried on failure, kept across restarts, cancellable. Clients with task \
support get a task id at once; others wait for the result while progress is reported. The \
task_* tools let a model submit, follow, fetch and cancel tasks itself.";

pub fn server_info() -> Value {
    json!({"name": "baton", "title": "Baton", "version": env!("CARGO_PKG_VERSION")})
}

impl McpService {
    pub fn new(
        engine: Engine,
        upstreams: Option<Arc<Upstreams>>,
        settings: McpSettings,
    ) -> Arc<McpService> {
        let (catalog_changed, _) = broadcast::channel(16);
        let service = Arc::new(McpService {
            engine,
            upstreams,
            sessions: Sessions::default(),
            settings,
            catalog_changed,
        });
        // Tool list changes: sessions with an open notification stream hear of them.
        let mut changes = service.engine.tools().changes();
        let weak = Arc::downgrade(&service);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(s) = weak.upgrade() else { break };
                let _ = s.catalog_changed.send(());
                for session in s.sessions.all() {
                    session.notify(protocol::notification(
                        "notifications/tools/list_changed",
                        json!({}),
                    ));
                }
            }
        });
        service
    }
}
