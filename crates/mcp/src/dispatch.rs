//! Transport-independent dispatch: one request in, one answer out (plus whatever
//! notifications the request sends on its way). `initialize`, `server/discover` and
//! `tools/list` are answered here; the rest goes to the handlers.

use std::sync::Arc;

use baton_core::auth::Scope;
use serde_json::{Value, json};

use crate::protocol::{self, RpcError, TASKS_EXTENSION, negotiate};
use crate::session::{Ctx, Era, Session};
use crate::state::{INSTRUCTIONS, McpService, server_info};
use crate::{calls, orchestration, relay, tasks};

impl McpService {
    /// Handles one request. `Ok(None)`: send nothing (the client cancelled it).
    pub async fn handle_request(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        ctx: &Ctx,
    ) -> Result<Option<Value>, RpcError> {
        let audited = audited(method, &params);
        if let Some(scope) = scope_for(method, &params)
            && let Err(e) = ctx.require(scope)
        {
            if let Some((action, target)) = &audited {
                self.audit(ctx, action, target.clone(), "denied");
            }
            return Err(e);
        }
        if submits(method, &params)
            && let Err(e) = self.check_quota(ctx).await
        {
            if let Some((action, target)) = &audited {
                self.audit(ctx, action, target.clone(), "rate_limited");
            }
            return Err(e);
        }
        let result = self.dispatch(method, params, ctx).await;
        if let Some((action, target)) = audited {
            let outcome = if result.is_ok() { "ok" } else { "failed" };
            self.audit(ctx, &action, target, outcome);
        }
        result
    }

    async fn dispatch(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        ctx: &Ctx,
    ) -> Result<Option<Value>, RpcError> {
        let result = match method {
            "initialize" if ctx.era.is_modern() => Err(RpcError::method_not_found(method)),
            "initialize" => Ok(Some(self.initialize(&params))),
            "ping" if !ctx.era.is_modern() => Ok(Some(json!({}))),
            "server/discover" => Ok(Some(self.discover())),
            "tools/list" => {
                // Right after start, configured servers may still be connecting: the
                // first list a client sees should hold their tools.
                self.engine
                    .tools()
                    .wait_settled(self.settings.startup_wait)
                    .await;
                Ok(Some(self.list_tools(&ctx.era)))
            }
            "tools/call" => calls::call(self, params, ctx).await,
            // 2026-07-28 watches resources through subscriptions/listen instead.
            "resources/subscribe" | "resources/unsubscribe" if ctx.era.is_modern() => {
                Err(RpcError::method_not_found(method))
            }
            m if relay::METHODS.contains(&m) => {
                relay::handle(self, method, params, ctx).await.map(Some)
            }
            "tasks/get" | "tasks/result" | "tasks/list" | "tasks/cancel" | "tasks/update" => {
                tasks::handle(self, method, params, ctx).await
            }
            "subscriptions/listen" if ctx.era.is_modern() => tasks::listen(self, params, ctx).await,
            "logging/setLevel" if !ctx.era.is_modern() => {
                let level = params
                    .get("level")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !protocol::LEVELS.contains(&level) {
                    return Err(RpcError::invalid_params(format!(
                        "invalid log level `{level}`; one of {}",
                        protocol::LEVELS.join(", ")
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

    /// Records a state-changing request in the audit log.
    fn audit(&self, ctx: &Ctx, action: &str, target: Option<String>, outcome: &str) {
        self.engine.audit(baton_store::NewAuditEntry {
            at: self.engine.now(),
            principal: ctx.principal.clone(),
            credential: ctx.identity.credential.clone(),
            action: action.to_string(),
            target,
            outcome: outcome.to_string(),
            status: None,
            remote: ctx.origin.remote.clone(),
            request_id: ctx.origin.request_id.clone(),
            detail: None,
        });
    }

    /// Refuses a submission when the credential's `max_active` is reached.
    async fn check_quota(&self, ctx: &Ctx) -> Result<(), RpcError> {
        let Some(max) = ctx.quota.max_active else {
            return Ok(());
        };
        let active = self
            .engine
            .queues_view(Some(&ctx.principal))
            .await
            .map_err(crate::errors::engine_error)?
            .active_tasks;
        if active >= max {
            return Err(RpcError::new(
                baton_core::ErrorCode::ResourceExhausted.jsonrpc_code(),
                format!(
                    "{active} tasks of yours are active, the most this credential allows (max_active {max}); retry when some have finished"
                ),
            )
            .with_data(json!({"code": "resource_exhausted", "retryAfterMs": 1000})));
        }
        Ok(())
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
        let mut capabilities = json!({
            "tools": {"listChanged": true},
            "logging": {},
            "resources": {"subscribe": true, "listChanged": true},
            "prompts": {"listChanged": true},
            "completions": {},
        });
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
                "resources": {"listChanged": true},
                "prompts": {"listChanged": true},
                "completions": {},
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
        let transparent = self.transparent_server();
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
                // The transparent server's tools go by their own names (but never
                // shadow Baton's orchestration tools).
                let bare = transparent.as_deref() == Some(entry.server.as_str())
                    && !orchestration::is_orchestration(&entry.info.name);
                def["name"] = if bare {
                    json!(entry.info.name)
                } else {
                    json!(entry.qualified_name)
                };
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

impl McpService {
    /// The server whose names MCP clients see unqualified (`qualified = false`).
    pub(crate) fn transparent_server(&self) -> Option<String> {
        self.upstreams
            .as_ref()
            .and_then(|u| u.transparent())
            .map(|s| s.name().to_string())
    }

    /// The catalog name of a tool as an MCP client names it: the transparent server's
    /// tools are called by their own names; every name works qualified too.
    pub(crate) fn catalog_name(&self, name: &str) -> String {
        let Some(server) = self.transparent_server() else {
            return name.to_string();
        };
        let tools = self.engine.tools();
        if tools.resolve(name).is_some() || tools.starting_server(name).is_some() {
            return name.to_string();
        }
        format!("{server}{}{name}", tools.separator())
    }
}

/// The scope a request needs, if any: reading tasks needs `tasks:read`, running a tool
/// or changing a task `tasks:write`; the orchestration tools need what their REST
/// counterparts need. Listing tools and the handshake need only a valid credential.
pub fn scope_for(method: &str, params: &Value) -> Option<Scope> {
    match method {
        "tasks/get" | "tasks/result" | "tasks/list" | "subscriptions/listen" => {
            Some(Scope::TasksRead)
        }
        "tasks/cancel" | "tasks/update" => Some(Scope::TasksWrite),
        // Servers' resources and prompts: reads, like a task's result.
        m if relay::METHODS.contains(&m) => Some(Scope::TasksRead),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            Some(orchestration::scope_of(name).unwrap_or(Scope::TasksWrite))
        }
        _ => None,
    }
}

/// The audit action and target of a state-changing request; `None` for reads.
fn audited(method: &str, params: &Value) -> Option<(String, Option<String>)> {
    let text = |k: &str| params.get(k).and_then(Value::as_str).map(String::from);
    match method {
        "tools/call" => {
            let name = text("name").unwrap_or_default();
            let reads = matches!(
                orchestration::scope_of(&name),
                Some(Scope::TasksRead | Scope::WorkflowsRead)
            );
            (!reads).then(|| ("mcp.tools/call".to_string(), Some(name)))
        }
        "tasks/cancel" | "tasks/update" => Some((format!("mcp.{method}"), text("taskId"))),
        _ => None,
    }
}

/// Whether a request may create tasks (and so counts against `max_active`).
fn submits(method: &str, params: &Value) -> bool {
    method == "tools/call"
        && matches!(
            params
                .get("name")
                .and_then(Value::as_str)
                .map(orchestration::scope_of),
            Some(None | Some(Scope::TasksWrite | Scope::WorkflowsWrite))
        )
        && params.get("name").and_then(Value::as_str) != Some("task_cancel")
        && params.get("name").and_then(Value::as_str) != Some("workflow_cancel")
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

/// The protocol version whose sessions may send JSON-RPC batches.
pub const BATCH_VERSION: &str = "2025-03-26";

impl McpService {
    /// A JSON-RPC batch of a 2025-03-26 session: its notifications and responses are
    /// taken, its requests run concurrently (each with the context `ctx_for` makes), and
    /// the answers come back together, in the batch's order; `None` when it held no
    /// request. Baton cannot ask the client anything while answering a batch (the answer
    /// is one JSON array), so a call that needs input waits, answerable through
    /// `tasks/update` or REST.
    pub async fn handle_batch(
        self: &Arc<Self>,
        messages: Vec<Value>,
        session: &Session,
        ctx_for: impl Fn(&Value) -> Ctx,
    ) -> Option<Vec<Value>> {
        let mut answers = Vec::new();
        for message in messages {
            match protocol::parse_value(message) {
                Ok(protocol::Incoming::Request { id, method, params }) => {
                    if method == "initialize" {
                        let e = RpcError::new(
                            protocol::INVALID_REQUEST,
                            "initialize cannot be part of a batch",
                        );
                        answers.push(futures::future::Either::Left(std::future::ready(Some(
                            protocol::error_response(Some(&id), &e),
                        ))));
                        continue;
                    }
                    let ctx = ctx_for(&id);
                    let service = self.clone();
                    answers.push(futures::future::Either::Right(async move {
                        let answer = service.handle_request(&method, params, &ctx).await;
                        ctx.session.end(&ctx.request_id);
                        match answer {
                            Ok(Some(result)) => Some(protocol::response(&id, result)),
                            Ok(None) => None,
                            Err(e) => Some(protocol::error_response(Some(&id), &e)),
                        }
                    }));
                }
                Ok(protocol::Incoming::Notification { method, params }) => {
                    self.handle_notification(&method, &params, session)
                }
                Ok(protocol::Incoming::Response { id, result }) => {
                    session.deliver(&id, result);
                }
                Err((id, e)) => answers.push(futures::future::Either::Left(std::future::ready(
                    Some(protocol::error_response(id.as_ref(), &e)),
                ))),
            }
        }
        if answers.is_empty() {
            return None;
        }
        Some(
            futures::future::join_all(answers)
                .await
                .into_iter()
                .flatten()
                .collect(),
        )
    }
}
