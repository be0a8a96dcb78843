//! The client side: an agent that delegates calls Baton's MCP endpoint, naming the task
//! it runs for in `_meta["baton/parentTask"]`, so that the new task is its child.

use anyhow::Context;
use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, CallToolResult, RequestMetaObject},
    transport::StreamableHttpClientTransport,
};
use serde_json::Value;

use crate::work::PARENT_TASK;

/// Calls `tool` through Baton (a durable task of its own) and waits for its result.
pub async fn call_tool(
    base_url: &str,
    tool: &str,
    arguments: Value,
    parent_task: Option<&str>,
) -> anyhow::Result<CallToolResult> {
    let Value::Object(arguments) = arguments else {
        anyhow::bail!("the arguments of {tool} must be an object");
    };
    let transport = StreamableHttpClientTransport::from_uri(format!("{base_url}/mcp"));
    let client = ()
        .serve(transport)
        .await
        .with_context(|| format!("cannot connect to Baton at {base_url}/mcp"))?;
    let mut params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
    if let Some(parent) = parent_task {
        let mut meta = RequestMetaObject::new();
        meta.0
            .0
            .insert(PARENT_TASK.to_owned(), Value::String(parent.to_owned()));
        params.meta = Some(meta);
    }
    let outcome = client.call_tool(params).await;
    if let Err(error) = client.cancel().await {
        tracing::debug!(%error, "closing the session with Baton");
    }
    outcome.with_context(|| format!("calling {tool} through Baton"))
}
