//! The CTO: `design_architecture`. Picks a stack for the product from the market brief,
//! then delegates: it calls `devops__provision` through Baton, as a child of its own task,
//! and waits for it. The provisioned environment is remembered per task, so a retried
//! design (after a crash) does not provision twice.

use rmcp::{
    ErrorData as McpError,
    model::{CallToolResult, ContentBlock, JsonObject, Tool},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    baton,
    work::{self, Call, schema},
};

pub fn design_architecture_tool() -> Tool {
    Tool::new(
        "design_architecture",
        "Designs the product's architecture from the market brief and has DevOps provision \
         a staging environment for it (delegated through Baton). Reports progress per stage.",
        schema(json!({
            "type": "object",
            "properties": {
                "product": {"type": "string", "minLength": 1, "maxLength": 80},
                "market_brief": {"type": "string", "description": "The data scientist's analysis."}
            },
            "required": ["product"],
            "additionalProperties": false
        })),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    product: String,
    #[serde(default)]
    market_brief: Option<String>,
}

pub async fn design_architecture(
    call: &Call<'_>,
    args: JsonObject,
) -> Result<CallToolResult, McpError> {
    let a: Args = work::args(args)?;
    let seed = work::seed(&a.product);
    let total = 5;
    call.progress(
        0,
        total,
        format!("Reading the market brief for {}", a.product),
    )
    .await;
    if let Some(brief) = &a.market_brief {
        let first = brief.lines().next().unwrap_or_default();
        call.info(format!("Brief says: {first}")).await;
    }
    call.work(800).await?;

    let language = work::pick(&["Rust", "Go", "TypeScript", "Kotlin"], seed, 1);
    let store = work::pick(
        &["PostgreSQL", "PostgreSQL + Redis", "SQLite at the edge"],
        seed,
        2,
    );
    let queue = work::pick(&["Baton tasks", "Baton workflows"], seed, 3);
    let services = ["api", "web", "worker", "billing"];
    call.progress(
        1,
        total,
        format!("Stack chosen: {language} services, {store}, background jobs as {queue}"),
    )
    .await;
    call.work(800).await?;

    call.progress(
        2,
        total,
        "Delegating to DevOps: provision staging (a child task in Baton)",
    )
    .await;
    let environment = provision_staging(call, &services).await?;
    call.progress(
        3,
        total,
        "Staging is up: writing the architecture decision record",
    )
    .await;
    call.work(800).await?;

    let endpoints = environment
        .get("endpoints")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let text = format!(
        "Architecture for {}: {} services ({}) in {language}, data in {store}, background \
         jobs as {queue}; staging provisioned by DevOps ({} endpoints).",
        a.product,
        services.len(),
        services.join(", "),
        endpoints.as_object().map_or(0, |m| m.len()),
    );
    call.progress(total, total, "Architecture decision record written")
        .await;
    Ok(work::result(
        text,
        json!({"product": a.product, "language": language, "store": store, "jobs": queue,
               "services": services, "staging": environment}),
    ))
}

/// Calls `devops__provision` through Baton, once per CTO task: the result is kept in the
/// state directory under the task's id and reused by a later attempt of the same task.
async fn provision_staging(call: &Call<'_>, services: &[&str]) -> Result<Value, McpError> {
    let task = call.task_id();
    let memo = task
        .as_deref()
        .map(|t| call.state_file(&format!("cto-provision-{}.json", work::file_key(t))));
    if let Some(saved) = memo
        .as_ref()
        .and_then(|m| std::fs::read_to_string(m).ok())
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
    {
        call.info("Staging was already provisioned for this task: reusing it")
            .await;
        return Ok(saved);
    }
    let Some(base) = call.settings.baton_url.as_deref() else {
        return Err(McpError::internal_error(
            "BATON_URL is not set: the CTO cannot delegate to DevOps",
            None,
        ));
    };
    let result = baton::call_tool(
        base,
        "devops__provision",
        json!({"environment": "staging", "services": services}),
        task.as_deref(),
    )
    .await
    .map_err(|e| McpError::internal_error(format!("{e:#}"), None))?;
    if result.is_error == Some(true) {
        let why = result
            .content
            .iter()
            .find_map(|c| match c {
                ContentBlock::Text(t) => Some(t.text.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "provisioning failed".into());
        call.warn(format!("DevOps could not provision staging: {why}"))
            .await;
        return Err(McpError::internal_error(
            format!("DevOps could not provision staging: {why}"),
            None,
        ));
    }
    let environment = result.structured_content.unwrap_or_else(|| json!({}));
    if let Some(memo) = memo
        && let Err(e) = std::fs::write(&memo, environment.to_string())
    {
        tracing::warn!(error = %e, "cannot remember the staging environment");
    }
    call.info(format!("DevOps provisioned staging: {environment}"))
        .await;
    Ok(environment)
}
