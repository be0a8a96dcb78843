//! Helpers for tests that run the real `baton` binary on a real port.
#![allow(dead_code)]

mod api;
mod node;
mod pg;
mod servers;
mod sqlite;

use std::path::Path;
use std::time::{Duration, Instant};

pub use api::Api;
pub use node::{Baton, baton_bin, cli, wait_exit};
pub use pg::{PgSchema, pg_url};
pub use servers::{HttpTestServer, everything_bin, testserver_bin};
pub use sqlite::sqlite_query;

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it holds (or panics after `limit`).
pub async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to a minute) until the node reports the MCP server `server` healthy.
pub async fn wait_healthy(api: &Api, server: &str) {
    eventually(
        &format!("{server} healthy"),
        Duration::from_secs(60),
        async || api.get(&format!("/v1/servers/{server}")).await.body["state"] == "healthy",
    )
    .await;
}

pub fn pid_alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by its parent) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}
