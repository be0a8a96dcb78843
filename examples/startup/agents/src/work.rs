//! What a tool call does besides its work: progress, log messages, simulated effort,
//! memory across attempts, and deterministic "data".

use std::{path::PathBuf, sync::Arc, time::Duration};

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        CallToolResult, ContentBlock, JsonObject, ProgressNotificationParam, ProgressToken,
        ProtocolVersion,
    },
    service::RequestContext,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::agent::Settings;

/// The `_meta` key in which Baton names the task a call runs for.
pub const PARENT_TASK: &str = "baton/parentTask";

/// One tool call in progress.
pub struct Call<'a> {
    pub settings: &'a Settings,
    ctx: &'a RequestContext<RoleServer>,
    token: Option<ProgressToken>,
    logs: bool,
}

impl<'a> Call<'a> {
    #[expect(
        deprecated,
        reason = "logging is deprecated by SEP-2577 but still served"
    )]
    pub fn new(settings: &'a Arc<Settings>, ctx: &'a RequestContext<RoleServer>) -> Call<'a> {
        use rmcp::model::LoggingLevel;
        // On 2026-07-28 a request opts in to log messages with its `_meta` log level (Baton
        // asks for info); older protocols use the session's level, all by default.
        let modern = ctx
            .meta
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        let logs = !modern
            || ctx
                .meta
                .log_level()
                .is_some_and(|level| level as u8 <= LoggingLevel::Info as u8);
        Call {
            settings,
            ctx,
            token: ctx.meta.get_progress_token(),
            logs,
        }
    }

    /// The Baton task this call runs for, if Baton made it.
    pub fn task_id(&self) -> Option<String> {
        self.ctx
            .meta
            .get(PARENT_TASK)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Sends a log message (MCP logging); Baton keeps it as the task's log.
    #[expect(
        deprecated,
        reason = "logging is deprecated by SEP-2577 but still served"
    )]
    pub async fn log(&self, level: rmcp::model::LoggingLevel, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(%message, "log");
        if !self.logs {
            return;
        }
        let param =
            rmcp::model::LoggingMessageNotificationParam::new(level, Value::String(message))
                .with_logger(self.logger());
        if let Err(error) = self.ctx.peer.notify_logging_message(param).await {
            tracing::warn!(%error, "cannot send a log message");
        }
    }

    #[expect(
        deprecated,
        reason = "logging is deprecated by SEP-2577 but still served"
    )]
    pub async fn info(&self, message: impl Into<String>) {
        self.log(rmcp::model::LoggingLevel::Info, message).await;
    }

    #[expect(
        deprecated,
        reason = "logging is deprecated by SEP-2577 but still served"
    )]
    pub async fn warn(&self, message: impl Into<String>) {
        self.log(rmcp::model::LoggingLevel::Warning, message).await;
    }

    fn logger(&self) -> &'static str {
        match self.settings.role {
            crate::agent::Role::Cto => "cto",
            crate::agent::Role::Devops => "devops",
            crate::agent::Role::Qa => "qa",
        }
    }

    /// Reports progress `done` of `total` with a readable message (when the caller gave a
    /// progress token), and logs the message too.
    pub async fn progress(&self, done: u32, total: u32, message: impl Into<String>) {
        let message = message.into();
        if let Some(token) = &self.token {
            let param = ProgressNotificationParam::new(token.clone(), f64::from(done))
                .with_total(f64::from(total))
                .with_message(message.clone());
            if let Err(error) = self.ctx.peer.notify_progress(param).await {
                tracing::warn!(%error, "cannot send progress");
            }
        }
        self.info(message).await;
    }

    /// Simulated effort: `ms` milliseconds times the pace, ended early by cancellation.
    pub async fn work(&self, ms: u64) -> Result<(), McpError> {
        let scaled = Duration::from_secs_f64(ms as f64 * self.settings.pace / 1000.0);
        tokio::select! {
            () = self.ctx.ct.cancelled() => Err(McpError::internal_error("cancelled", None)),
            () = tokio::time::sleep(scaled) => Ok(()),
        }
    }

    /// A file of the state directory, for something this agent must remember across
    /// attempts (named by the task it belongs to).
    pub fn state_file(&self, name: &str) -> PathBuf {
        self.settings.state_dir.join(name)
    }
}

/// Parses a tool's arguments.
pub fn args<T: DeserializeOwned>(args: JsonObject) -> Result<T, McpError> {
    serde_json::from_value(Value::Object(args))
        .map_err(|e| McpError::invalid_params(format!("invalid arguments: {e}"), None))
}

/// A tool's input or output schema, from JSON.
pub fn schema(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("schemas are JSON objects"),
    }
}

/// A result with text for people and models, and the same facts as structured content.
pub fn result(text: impl Into<String>, structured: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

/// A stable number from a text (FNV-1a): the same product always gets the same "data".
pub fn seed(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Picks one of `options` by a seed and a salt.
pub fn pick<'s>(options: &[&'s str], seed: u64, salt: u64) -> &'s str {
    let i = (seed.rotate_left((salt * 7) as u32) ^ salt) % options.len() as u64;
    options[i as usize]
}

/// A task id or other key made safe as a file name.
pub fn file_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
