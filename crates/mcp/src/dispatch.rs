//! Transport-independent dispatch: one request in, one answer out (plus whatever
//! notifications the request sends on its way). `initialize`, `server/discover` and
//! `tools/list` are answered here; the rest goes to the handlers.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::protocol::{self, RpcError, TASKS_EXTENSION, negotiate};
use crate::session::{Ctx, Era, Session};
use crate::state::{INSTRUCTIONS, McpService, server_info};
use crate::{calls, orchestration, tasks};

impl McpService {
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

/// 2026-07-28 results say what they are; older ones must not.
fn finish_result(mut result: Value, era: &Era) -> Value {
    if era.is_modern()
        && let Some(o) = result.as_object_mut()
    {
        o.entry("resultType").or_insert(json!("complete"));
    }
    result
}
