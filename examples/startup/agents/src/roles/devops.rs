//! DevOps: `provision` (an environment for a set of services) and `deploy` (a release).

use rmcp::{
    ErrorData as McpError,
    model::{CallToolResult, JsonObject, Tool},
};
use serde::Deserialize;
use serde_json::json;

use crate::work::{self, Call, schema};

pub fn provision_tool() -> Tool {
    Tool::new(
        "provision",
        "Provisions an environment (network, database, one service each) and returns its \
         endpoints. Reports progress per resource.",
        schema(json!({
            "type": "object",
            "properties": {
                "environment": {"type": "string", "description": "staging, production…",
                                "pattern": "^[a-z][a-z0-9-]{0,30}$"},
                "services": {"type": "array", "items": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,30}$"},
                             "minItems": 1, "maxItems": 12}
            },
            "required": ["environment", "services"],
            "additionalProperties": false
        })),
    )
}

pub fn deploy_tool() -> Tool {
    Tool::new(
        "deploy",
        "Builds, ships and rolls out a release of the product (canary, then everyone), once \
         QA signed it off. Reports progress per stage.",
        schema(json!({
            "type": "object",
            "properties": {
                "product": {"type": "string", "minLength": 1, "maxLength": 80},
                "environment": {"type": "string", "default": "production"},
                "test_report": {"type": "string", "description": "QA's sign-off."},
                "forecast": {"type": "string", "description": "The revenue forecast, for the release notes."}
            },
            "required": ["product"],
            "additionalProperties": false
        })),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionArgs {
    environment: String,
    services: Vec<String>,
}

pub async fn provision(call: &Call<'_>, args: JsonObject) -> Result<CallToolResult, McpError> {
    let a: ProvisionArgs = work::args(args)?;
    let total = a.services.len() as u32 + 2;
    call.progress(
        0,
        total,
        format!(
            "Provisioning {} for {} services",
            a.environment,
            a.services.len()
        ),
    )
    .await;
    call.work(500).await?;
    call.progress(1, total, format!("Network {}-vpc ready", a.environment))
        .await;
    call.work(700).await?;
    call.progress(
        2,
        total,
        format!(
            "Database {}-db ready (PostgreSQL, 2 replicas)",
            a.environment
        ),
    )
    .await;
    let mut endpoints = serde_json::Map::new();
    for (i, service) in a.services.iter().enumerate() {
        call.work(400).await?;
        let url = format!("http://{service}.{}.internal:8080", a.environment);
        call.progress(
            3 + i as u32,
            total,
            format!("Service {service} up at {url}"),
        )
        .await;
        endpoints.insert(service.clone(), json!(url));
    }
    Ok(work::result(
        format!(
            "Environment {} provisioned: {} services, database {}-db.",
            a.environment,
            a.services.len(),
            a.environment
        ),
        json!({"environment": a.environment, "endpoints": endpoints,
               "database": format!("{}-db", a.environment)}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployArgs {
    product: String,
    #[serde(default = "production")]
    environment: String,
    #[serde(default)]
    test_report: Option<String>,
    #[serde(default)]
    forecast: Option<String>,
}

fn production() -> String {
    "production".into()
}

pub async fn deploy(call: &Call<'_>, args: JsonObject) -> Result<CallToolResult, McpError> {
    let a: DeployArgs = work::args(args)?;
    let slug: String = a
        .product
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let version = format!("1.0.{}", work::seed(&a.product) % 50);
    let stages = [
        format!("Building image {slug}:{version}"),
        format!("Pushing {slug}:{version} to the registry"),
        "Migrating the database".to_owned(),
        "Canary: 10% of traffic".to_owned(),
        "Canary healthy: error rate 0.0%, p95 180 ms".to_owned(),
        "Rolling out to 100%".to_owned(),
    ];
    let total = stages.len() as u32;
    if a.test_report.is_some() {
        call.info("QA sign-off received: deploying").await;
    }
    for (i, stage) in stages.iter().enumerate() {
        call.progress(i as u32, total, stage.clone()).await;
        call.work(600).await?;
    }
    let url = format!("https://{slug}.example.com");
    call.progress(total, total, format!("Live at {url}")).await;
    let notes = a
        .forecast
        .map(|f| format!(" Forecast: {f}"))
        .unwrap_or_default();
    Ok(work::result(
        format!(
            "{} {version} is live in {} at {url}.{notes}",
            a.product, a.environment
        ),
        json!({"product": a.product, "version": version, "environment": a.environment, "url": url}),
    ))
}
