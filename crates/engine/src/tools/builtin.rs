//! The built-in tools, served under the server name `baton`. They exist for tests, demos
//! and benchmarks: `sleep` is a slow tool with progress that honours cancellation, `echo`
//! returns its arguments, `fail` fails as asked.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{ToolCallError, ToolContext, ToolInfo, ToolOutput, ToolProvider};

pub struct Builtins;

fn tool(name: &str, description: &str, input_schema: Value, annotations: Value) -> ToolInfo {
    let input_schema = Arc::new(input_schema);
    let definition = json!({
        "name": name,
        "description": description,
        "inputSchema": *input_schema,
        "annotations": annotations,
    });
    ToolInfo {
        name: name.to_string(),
        description: Some(description.to_string()),
        input_schema,
        definition: Arc::new(definition),
    }
}

static TOOLS: LazyLock<Vec<ToolInfo>> = LazyLock::new(|| {
    vec![
        tool(
            "sleep",
            "Waits `ms` milliseconds in `steps` equal steps, reporting progress after each; stops early when cancelled.",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "ms": {"type": "integer", "minimum": 0, "maximum": 86_400_000, "description": "Total time to wait, in milliseconds (at most one day)."},
                    "steps": {"type": "integer", "minimum": 1, "maximum": 10_000, "description": "How many progress reports to make (default 1)."}
                },
                "required": ["ms"],
                "additionalProperties": false
            }),
            json!({"readOnlyHint": true, "idempotentHint": true}),
        ),
        tool(
            "echo",
            "Returns its arguments, as text and as structured content.",
            json!({"type": "object"}),
            json!({"readOnlyHint": true, "idempotentHint": true}),
        ),
        tool(
            "fail",
            "Fails with `message`; `retryable` says whether Baton should try again.",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "message": {"type": "string", "maxLength": 10_000},
                    "retryable": {"type": "boolean"}
                },
                "additionalProperties": false
            }),
            json!({"readOnlyHint": true}),
        ),
    ]
});

#[async_trait]
impl ToolProvider for Builtins {
    fn tools(&self) -> Vec<ToolInfo> {
        TOOLS.clone()
    }

    fn tool(&self, name: &str) -> Option<ToolInfo> {
        TOOLS.iter().find(|t| t.name == name).cloned()
    }

    async fn call(
        &self,
        tool: &str,
        args: Value,
        ctx: ToolContext,
    ) -> Result<ToolOutput, ToolCallError> {
        match tool {
            "sleep" => sleep(args, ctx).await,
            "echo" => Ok(ToolOutput::structured(args.to_string(), args)),
            "fail" => {
                let message = args
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("failed as requested")
                    .to_string();
                let retryable = args
                    .get("retryable")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                ctx.task.log(
                    "error",
                    Some("baton__fail".into()),
                    json!({"message": message, "retryable": retryable}),
                );
                Err(ToolCallError::new("tool_error", message, retryable))
            }
            other => Err(ToolCallError::new(
                "unknown_tool",
                format!("baton has no tool `{other}`"),
                false,
            )),
        }
    }
}

async fn sleep(args: Value, ctx: ToolContext) -> Result<ToolOutput, ToolCallError> {
    let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(0);
    let steps = args
        .get("steps")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    ctx.task.log(
        "info",
        Some("baton__sleep".into()),
        json!(format!("sleeping {ms} ms in {steps} steps")),
    );
    let started = tokio::time::Instant::now();
    for i in 1..=steps {
        // Aim each step at its share of the total, so rounding does not accumulate.
        let target = started + Duration::from_millis(ms * i / steps);
        tokio::select! {
            _ = tokio::time::sleep_until(target) => {}
            _ = ctx.cancel.cancelled() => return Err(ToolCallError::cancelled()),
        }
        ctx.progress.report(
            Some(i as f64 / steps as f64),
            Some(format!("step {i} of {steps}")),
        );
    }
    ctx.task
        .log("info", Some("baton__sleep".into()), json!("awake"));
    Ok(ToolOutput::structured(
        format!("slept {ms} ms in {steps} steps"),
        json!({"slept_ms": ms, "steps": steps}),
    ))
}
