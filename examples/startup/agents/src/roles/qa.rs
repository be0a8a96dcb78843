//! QA: `run_test_plan`. The first attempt of each run meets a staging database that is
//! not ready yet and fails with a transient error (a tool result with `isError`); Baton
//! retries it (the server has `retry_tool_errors`), and the next attempt passes. Attempts
//! are counted per Baton task in the state directory, so this is deterministic and
//! survives restarts.

use rmcp::{
    ErrorData as McpError,
    model::{CallToolResult, ContentBlock, JsonObject, Tool},
};
use serde::Deserialize;
use serde_json::json;

use crate::work::{self, Call, schema};

pub fn run_test_plan_tool() -> Tool {
    Tool::new(
        "run_test_plan",
        "Runs the release's test plan (unit, integration, end-to-end, load) and signs it off. \
         Reports progress per suite.",
        schema(json!({
            "type": "object",
            "properties": {
                "product": {"type": "string", "minLength": 1, "maxLength": 80},
                "architecture": {"type": "string", "description": "The CTO's design, to derive test cases from."}
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
    architecture: Option<String>,
}

const SUITES: [(&str, u32); 4] = [
    ("unit", 412),
    ("integration", 96),
    ("end-to-end", 38),
    ("load", 6),
];

pub async fn run_test_plan(call: &Call<'_>, args: JsonObject) -> Result<CallToolResult, McpError> {
    let a: Args = work::args(args)?;
    let key = call.task_id().unwrap_or_else(|| a.product.clone());
    let counter = call.state_file(&format!("qa-attempts-{}", work::file_key(&key)));
    let before: u32 = std::fs::read_to_string(&counter)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    // Counted before any work, so an attempt cut short by a crash counts too.
    std::fs::write(&counter, format!("{}\n", before + 1)).map_err(|e| {
        McpError::internal_error(format!("cannot write {}: {e}", counter.display()), None)
    })?;
    let attempt = before + 1;
    let total = SUITES.len() as u32;
    let cases = match &a.architecture {
        Some(text) => format!(
            " ({} words of design read)",
            text.split_whitespace().count()
        ),
        None => String::new(),
    };
    call.progress(
        0,
        total,
        format!("Test plan for {}, attempt {attempt}{cases}", a.product),
    )
    .await;
    let mut passed = 0;
    for (i, (suite, count)) in SUITES.iter().enumerate() {
        call.work(500 + u64::from(*count)).await?;
        if attempt == 1 && *suite == "integration" {
            let message = "integration suite: the staging database refused connections \
                           (still warming up); transient, try again";
            call.warn(message).await;
            return Ok(CallToolResult::error(vec![ContentBlock::text(message)]));
        }
        passed += count;
        call.progress(i as u32 + 1, total, format!("{suite}: {count} passed"))
            .await;
    }
    Ok(work::result(
        format!(
            "QA sign-off for {}: {passed} tests passed, 0 failed (attempt {attempt}).",
            a.product
        ),
        json!({"product": a.product, "passed": passed, "failed": 0, "attempt": attempt,
               "suites": SUITES.iter().map(|(s, n)| json!({"suite": s, "passed": n})).collect::<Vec<_>>()}),
    ))
}
