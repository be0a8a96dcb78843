//! The MCP servers the tests run as upstreams: the repository's `baton-testserver`
//! (stdio, or Streamable HTTP in the background) and server-everything from npm.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{baton_bin, repo_root};

/// The `baton-testserver` binary, built next to `baton` (built here if a narrower
/// `cargo test` did not build it).
pub fn testserver_bin() -> std::path::PathBuf {
    let bin = Path::new(baton_bin()).with_file_name("baton-testserver");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "baton-testserver"])
            .current_dir(repo_root())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok && bin.exists(), "could not build baton-testserver");
    }
    bin
}

/// `mcp-server-everything` from npm, installed by `scripts/test-env`.
pub fn everything_bin() -> std::path::PathBuf {
    let bin = repo_root().join("test-support/node/node_modules/.bin/mcp-server-everything");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test-env (the README's test command does)",
        bin.display()
    );
    bin
}

/// `baton-testserver --http 127.0.0.1:PORT`, running in the background.
pub struct HttpTestServer {
    child: Child,
    pub url: String,
    pub port: u16,
}

impl HttpTestServer {
    pub fn start(port: u16, state_dir: &Path) -> HttpTestServer {
        let mut child = Command::new(testserver_bin())
            .args(["--http", &format!("127.0.0.1:{port}"), "--state-dir"])
            .arg(state_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn baton-testserver");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .expect("testserver address")
            .to_string();
        HttpTestServer { child, url, port }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HttpTestServer {
    fn drop(&mut self) {
        self.kill();
    }
}
