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
    /// How long `tools/list` waits for servers still on their first connection attempt.
    pub startup_wait: Duration,
}

impl Default for McpSettings {
    fn default() -> Self {
        McpSettings {
            keepalive: Duration::from_secs(15),
            poll_interval_ms: 1000,
            task_ttl_ms: 24 * 3600 * 1000,
            max_message_bytes: 4 * 1024 * 1024,
            startup_wait: Duration::from_secs(10),
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
    /// How many sessions of this node watch each resource (the server is asked to
    /// watch it once).
    subscriptions: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// Signs legacy session ids (see [`McpService::share_state`]).
    session_key: std::sync::OnceLock<crate::session::SessionKey>,
}

use crate::session::ENDED_KEPT;

pub(crate) const INSTRUCTIONS: &str = "Baton runs every tool call as a durable task: stored before it \
is acknowledged, retried on failure, kept across restarts, cancellable. Clients with task \
support get a task id at once; others wait for the result while progress is reported. The \
task_* tools let a model submit, follow, fetch and cancel tasks itself.";

pub fn server_info() -> Value {
    json!({"name": "baton", "title": "Baton", "version": env!("CARGO_PKG_VERSION")})
}

impl McpService {
    /// Counts a session starting (`true`) or ending its watch of `uri`; `true` when it is
    /// the first or the last (the server must be told).
    pub(crate) fn count_subscription(&self, uri: &str, subscribe: bool) -> bool {
        let mut counts = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
        if subscribe {
            let n = counts.entry(uri.to_string()).or_insert(0);
            *n += 1;
            *n == 1
        } else {
            match counts.get_mut(uri) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    counts.remove(uri);
                    true
                }
                None => false,
            }
        }
    }

    /// The key that signs session ids: the deployment's, once [`McpService::share_state`]
    /// loaded it; else one of this process only.
    pub fn session_key(&self) -> &crate::session::SessionKey {
        self.session_key
            .get_or_init(crate::session::SessionKey::random)
    }

    /// Joins the deployment's shared session state, before serving: the key that signs
    /// session ids (so any node serves any session), and the sessions clients ended on
    /// any node (followed every second from now on, so an ended session is refused
    /// everywhere).
    pub async fn share_state(self: &Arc<Self>) -> Result<(), baton_engine::EngineError> {
        let key = self.engine.shared_secret("mcp.session-key").await?;
        if self
            .session_key
            .set(crate::session::SessionKey::new(key))
            .is_err()
        {
            tracing::warn!(
                "session ids were issued before the deployment's key was loaded; they stop working"
            );
        }
        let weak = Arc::downgrade(self);
        let mut since = self.engine.now().saturating_sub(ENDED_KEPT);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut sweeps = 0u32;
            loop {
                tick.tick().await;
                let Some(service) = weak.upgrade() else { break };
                match service.engine.client_sessions_ended_since(since).await {
                    Ok(ended) => {
                        for (hash, at) in ended {
                            service.sessions.mark_ended(&hash);
                            // Look a little behind the newest: clocks of nodes differ.
                            since = since.max(at.saturating_sub(Duration::from_secs(5)));
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "could not read ended sessions"),
                }
                sweeps += 1;
                if sweeps.is_multiple_of(3600) {
                    let before = service.engine.now().saturating_sub(ENDED_KEPT);
                    let _ = service
                        .engine
                        .forget_client_sessions_ended_before(before)
                        .await;
                }
            }
        });
        Ok(())
    }

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
            subscriptions: Default::default(),
            session_key: std::sync::OnceLock::new(),
        });
        // Servers' resource and prompt changes reach the sessions that should hear them.
        if let Some(upstreams) = &service.upstreams {
            let mut notices = upstreams.notices();
            let weak = Arc::downgrade(&service);
            tokio::spawn(async move {
                loop {
                    match notices.recv().await {
                        Ok(n) => match weak.upgrade() {
                            Some(s) => crate::relay::relay_notice(&s, &n),
                            None => break,
                        },
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
        }
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
