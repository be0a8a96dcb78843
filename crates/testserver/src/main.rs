//! `baton-testserver`: a small, real MCP server that Baton's tests and
//! benchmarks use as an upstream.
//!
//! It serves MCP over stdio (default) or Streamable HTTP at `/mcp`
//! (`--http ADDR`), to clients speaking 2025-06-18, 2025-11-25 and
//! 2026-07-28. Its tools simulate what a gateway must survive: slow calls
//! with progress, calls that only end when cancelled, crashes, flaky
//! restarts, rich content, runtime tool changes and SEP-2663 tasks.
//!
//! stdout belongs to the protocol in stdio mode, so all logging goes to
//! stderr (filter with `RUST_LOG`).

mod server;
mod state;
mod tasks;
mod tools;

use std::{io::Write, path::PathBuf};

use anyhow::Context;
use clap::Parser;
use rmcp::{
    ServiceExt,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};

use crate::{
    server::{Shared, TestServer},
    state::StateDir,
};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A small MCP server used as a real upstream in Baton's tests."
)]
struct Cli {
    /// Serve Streamable HTTP at http://ADDR/mcp instead of stdio. Use port 0
    /// for an ephemeral port; the bound address is printed on stdout as
    /// `listening on http://ADDR/mcp`.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Directory where tools record observable facts (started/cancelled
    /// markers, flaky counters, the server pid) and, over HTTP, where the
    /// `traceparent` header of each request is appended (`traceparents`).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// serverInfo.name reported to clients.
    #[arg(long, default_value = "baton-testserver")]
    name: String,
    /// Wait this long before answering anything (a server slow to start).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    start_delay_ms: u64,
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

    let record = cli.state_dir.as_ref().map(|d| d.join("traceparents"));
    let state = cli
        .state_dir
        .as_deref()
        .map(StateDir::init)
        .transpose()
        .context("cannot initialise --state-dir")?;
    let shared = Shared::new(cli.name, state);
    if cli.start_delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(cli.start_delay_ms)).await;
    }

    match cli.http {
        None => serve_stdio(shared).await,
        Some(addr) => serve_http(shared, &addr, record).await,
    }
}

async fn serve_stdio(shared: std::sync::Arc<Shared>) -> anyhow::Result<()> {
    tracing::info!(pid = std::process::id(), "serving MCP on stdio");
    let running = TestServer::new(shared)
        .serve(rmcp::transport::stdio())
        .await
        .context("stdio session failed to start")?;
    let reason = running.waiting().await?;
    tracing::info!(?reason, "stdio session ended");
    Ok(())
}

async fn serve_http(
    shared: std::sync::Arc<Shared>,
    addr: &str,
    record: Option<PathBuf>,
) -> anyhow::Result<()> {
    // Session mode stays on (the default): legacy clients (< 2026-07-28)
    // then keep an Mcp-Session-Id session whose initialize capabilities are
    // remembered. Stateless mode would synthesise empty capabilities for
    // them and could not deliver list_changed. rmcp serves 2026-07-28
    // requests statelessly either way. The default Host allowlist
    // (localhost, 127.0.0.1, ::1) is kept as DNS-rebinding protection.
    let service = StreamableHttpService::new(
        move || Ok(TestServer::new(shared.clone())),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                record_traceparent(record.as_deref(), &req);
                next.run(req)
            },
        ));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind {addr}"))?;
    let bound = listener.local_addr()?;
    // The one line a test reads to learn the port; flushed at once because
    // stdout is a pipe (block-buffered) when a test spawns us.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{bound}/mcp")?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(pid = std::process::id(), %bound, "serving MCP over Streamable HTTP");
    axum::serve(listener, app).await?;
    Ok(())
}

/// Appends the request's `traceparent` header, if any, to `file` (one per line), so a
/// test can see the trace context its client sent over HTTP.
fn record_traceparent(file: Option<&std::path::Path>, req: &axum::extract::Request) {
    let (Some(file), Some(tp)) = (file, req.headers().get("traceparent")) else {
        return;
    };
    let line = format!("{}\n", String::from_utf8_lossy(tp.as_bytes()));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot record a traceparent");
    }
}
