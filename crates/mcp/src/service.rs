//! The transport-independent MCP service: one request in, one answer out (plus whatever
//! notifications the request sends on its way).

use std::sync::Arc;
use std::time::Duration;

use baton_engine::Engine;
use baton_upstream::Upstreams;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::protocol::{self, RpcError, TASKS_EXTENSION};
use crate::session::{Ctx, Era, Session, Sessions};
use crate::{calls, orchestration, tasks};

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

const INSTRUCTIONS: &str = "Baton runs every tool call as a durable task: stored before it \
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

    /// Handles one request. `Ok(None)`: send nothing (the client cancelled it).
    pub async fn handle_request(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        ctx: &Ctx,
    ) -> Result<Option<Value>, RpcError> {
        let result = match method {
            "initialize" => Ok(Some(self.initialize(&params))),
            "ping" if !ctx.era.is_modern() => Ok(Some(json!({}))),
            "server/discover" => Ok(Some(self.discover())),
            "tools/list" => Ok(Some(self.list_tools(&ctx.era))),
            "tools/call" => calls::call(self, params, ctx).await,
            "tasks/get" | "tasks/result" | "tasks/list" | "tasks/cancel" | "tasks/update" => {
                tasks::handle(self, method, params, ctx).await
            }
            "subscriptions/listen" if ctx.era.is_modern() => tasks::listen(self, params, ctx).await,
            "logging/setLevel" if !ctx.era.is_modern() => {
                let level = params
                    .get("level")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !calls::LEVELS.contains(&level) {
                    return Err(RpcError::invalid_params(format!(
                        "invalid log level `{level}`; one of {}",
                        calls::LEVELS.join(", ")
                    )));
                }
                *ctx.session
                    .log_level
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(level.to_string());
                Ok(Some(json!({})))
            }
            other => Err(RpcError::method_not_found(other)),
        }?;
        Ok(result.map(|r| finish_result(r, &ctx.era)))
    }

    /// A notification from the client.
    pub fn handle_notification(&self, method: &str, params: &Value, session: &Session) {
        if method == "notifications/cancelled"
            && let Some(id) = params.get("requestId")
        {
            session.cancel(id);
        }
    }

    fn initialize(&self, params: &Value) -> Value {
        let asked = params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let version = negotiate(asked);
        let mut capabilities = json!({"tools": {"listChanged": true}, "logging": {}});
        if version == protocol::V_2025_11 {
            capabilities["tasks"] =
                json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}});
        }
        json!({
            "protocolVersion": version,
            "capabilities": capabilities,
            "serverInfo": server_info(),
            "instructions": INSTRUCTIONS,
        })
    }

    fn discover(&self) -> Value {
        json!({
            "resultType": "complete",
            "supportedVersions": [protocol::V_2026],
            "capabilities": {
                "tools": {"listChanged": true},
                "extensions": {TASKS_EXTENSION: {}}
            },
            "instructions": INSTRUCTIONS,
            "ttlMs": 60_000,
            "cacheScope": "public",
            "_meta": {protocol::META_SERVER_INFO: server_info()}
        })
    }

    /// Every tool: the catalog under qualified names, then the orchestration tools.
    pub fn list_tools(&self, era: &Era) -> Value {
        let legacy_tasks = era.legacy_tasks();
        let mut tools: Vec<Value> = self
            .engine
            .tools()
            .catalog()
            .into_iter()
            .map(|entry| {
                let mut def = (*entry.info.definition).clone();
                if !def.is_object() {
                    def = json!({});
                }
                def["name"] = json!(entry.qualified_name);
                if def.get("inputSchema").is_none() {
                    def["inputSchema"] = (*entry.info.input_schema).clone();
                }
                if let Some(o) = def.as_object_mut() {
                    o.remove("execution");
                }
                if legacy_tasks {
                    // Baton can run any tool as a task, whatever the server offers.
                    def["execution"] = json!({"taskSupport": "optional"});
                }
                def
            })
            .collect();
        for mut def in orchestration::definitions() {
            if legacy_tasks {
                def["execution"] = json!({"taskSupport": "forbidden"});
            }
            tools.push(def);
        }
        let mut result = json!({"tools": tools});
        if era.is_modern() {
            result["ttlMs"] = json!(0);
            result["cacheScope"] = json!("private");
        }
        result
    }
}

/// The version to answer `initialize` with: the client's if Baton speaks it with a
/// handshake, else the newest handshake version.
pub fn negotiate(asked: &str) -> &'static str {
    protocol::LEGACY
        .iter()
        .find(|v| **v == asked)
        .copied()
        .unwrap_or(protocol::V_2025_11)
}

/// 2026-07-28 results say what they are; older ones must not.
fn finish_result(mut result: Value, era: &Era) -> Value {
    if era.is_modern()
        && let Some(o) = result.as_object_mut()
    {
        o.entry("resultType").or_insert(json!("complete"));
    }
    result
}
