//! Observable facts recorded as files, so a test in another process can see
//! what the server did (a call started, a cancellation arrived, a crash
//! counter advanced) without talking MCP to it.
//!
//! Writes are small and synchronous on purpose: a fact must be on disk before
//! the server moves on, and `crash`/`flaky` exit the process right after
//! writing, where an async write could be lost.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Create the directory if needed and record this process's pid in `pid`.
    pub fn init(root: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(root)?;
        let state = Self {
            root: root.to_path_buf(),
        };
        fs::write(state.root.join("pid"), std::process::id().to_string())?;
        Ok(state)
    }

    /// Append one line to `<name>`. Each event adds a line instead of
    /// overwriting, so a test can count how many times it happened (for
    /// example how often a task's work started across server restarts).
    pub fn record(&self, name: &str) {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let line = format!("pid={} at_ms={millis}\n", std::process::id());
        let path = self.root.join(name);
        let result = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(error) = result {
            tracing::error!(path = %path.display(), %error, "cannot record state file");
        }
    }

    /// Read a counter file; a missing or unreadable file counts as 0.
    pub fn read_counter(&self, name: &str) -> u64 {
        fs::read_to_string(self.root.join(name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn write_counter(&self, name: &str, value: u64) {
        let path = self.root.join(name);
        if let Err(error) = fs::write(&path, value.to_string()) {
            tracing::error!(path = %path.display(), %error, "cannot write counter file");
        }
    }
}
