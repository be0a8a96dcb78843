//! `startup-agent ROLE`: one agent of the virtual startup demo, an MCP server on stdio.
//!
//! Roles: `cto` (`design_architecture`, which delegates `devops__provision` through
//! Baton), `devops` (`provision`, `deploy`) and `qa` (`run_test_plan`, whose first attempt
//! of a run fails with a transient error that Baton retries). Baton spawns one process per
//! role (see `examples/startup/baton.toml`).
//!
//! Environment:
//! - `BATON_URL`: the node to delegate to (its `/mcp` endpoint is used), for the CTO.
//! - `STARTUP_STATE_DIR`: where agents remember things across retries and restarts
//!   (default `.state`).
//! - `STARTUP_PACE`: multiplies every simulated duration (default 1; the tests use less).
//!
//! stdout belongs to the protocol, so diagnostics go to stderr.

mod agent;
mod baton;
mod roles;
mod work;

use anyhow::Context;
use clap::Parser;
use rmcp::ServiceExt;

use crate::agent::{Agent, Role};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "An agent of the virtual startup demo (an MCP server on stdio)."
)]
struct Cli {
    /// Which agent to be.
    #[arg(value_enum)]
    role: Role,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let agent = Agent::from_env(cli.role)?;
    tracing::info!(role = ?cli.role, pid = std::process::id(), "serving MCP on stdio");
    let running = agent
        .serve(rmcp::transport::stdio())
        .await
        .context("the stdio session failed to start")?;
    let reason = running.waiting().await?;
    tracing::info!(?reason, "stdio session ended");
    Ok(())
}
