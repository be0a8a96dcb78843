//! Child processes of stdio servers.
//!
//! Each runs in its own process group, so that stopping it (server removed, restarted,
//! Baton stopping) reaches whatever it spawned too (`npx` → `node` → …): no orphans.
//! Each also carries `BATON_UPSTREAM_OF=<node id>` in its environment, inherited by its
//! descendants, so that a node restarting after being killed can find and stop the groups
//! its previous run left behind.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use process_wrap::tokio::{ChildWrapper, CommandWrap, ProcessGroup};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};

/// The environment variable that marks a process as an upstream of a node.
pub const MARKER: &str = "BATON_UPSTREAM_OF";

/// The last lines a server wrote to stderr, for the node's log (callers are only told
/// that it is there: stderr may hold anything, secrets included).
#[derive(Clone, Default)]
pub struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    /// The process closed its stderr (it exited, usually) and every line was read.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl StderrTail {
    const LINES: usize = 20;

    fn push(&self, line: String) {
        let mut q = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == Self::LINES {
            q.pop_front();
        }
        q.push_back(line);
    }

    /// Waits up to `limit` for the last lines of a process that exited to be read (they
    /// are read in the background, and may lag behind its exit).
    pub async fn drained(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.closed.load(std::sync::atomic::Ordering::Acquire)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn text(&self) -> String {
        let q = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// A running stdio server.
pub struct Child {
    inner: Box<dyn ChildWrapper>,
    pub pid: u32,
    pub stderr: StderrTail,
}

pub struct Spawned {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
}

pub fn spawn(
    server: &str,
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    cwd: &Option<PathBuf>,
    node_id: &str,
) -> std::io::Result<Spawned> {
    let mut cmd = CommandWrap::with_new(command, |c| {
        c.args(args)
            .envs(env)
            .env(MARKER, node_id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = cwd {
            c.current_dir(dir);
        }
    });
    cmd.wrap(ProcessGroup::leader());
    let mut inner = cmd.spawn()?;
    let pid = inner
        .id()
        .ok_or_else(|| std::io::Error::other("the process exited at once"))?;
    let stdin = inner
        .stdin()
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    let stdout = inner
        .stdout()
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let stderr_tail = StderrTail::default();
    if let Some(stderr) = inner.stderr().take() {
        let tail = stderr_tail.clone();
        let server = server.to_string();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(server = %server, "stderr: {line}");
                tail.push(line);
            }
            tail.closed
                .store(true, std::sync::atomic::Ordering::Release);
        });
    }
    Ok(Spawned {
        child: Child {
            inner,
            pid,
            stderr: stderr_tail,
        },
        stdin,
        stdout,
    })
}

impl Child {
    /// Whether the process has exited, and how (`code 1`, `signal 9`), for messages.
    pub fn exited(&mut self) -> Option<String> {
        match self.inner.try_wait() {
            Ok(Some(status)) => Some(describe_exit(status)),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// Waits up to `limit` for the process to exit (a server that closed its stdout is
    /// usually exiting); how it exited, if it did.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<String> {
        match tokio::time::timeout(limit, self.inner.wait()).await {
            Ok(Ok(status)) => Some(describe_exit(status)),
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => None,
        }
    }

    /// Stops the whole process group: SIGTERM, a short wait, then SIGKILL. The caller has
    /// already closed stdin, which well-behaved servers take as the signal to exit.
    pub async fn stop(mut self, grace: Duration) {
        if tokio::time::timeout(grace, self.inner.wait()).await.is_ok() {
            // The leader exited; descendants may still run in the group.
            let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
            return;
        }
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        if tokio::time::timeout(grace, self.inner.wait())
            .await
            .is_err()
        {
            let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
            let _ = self.inner.wait().await;
        } else {
            let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        }
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Stops the process groups that a previous run of this node left behind (it was killed
/// before it could stop them). Returns how many groups were stopped.
pub fn reap_orphans(node_id: &str) -> usize {
    let needle = format!("{MARKER}={node_id}");
    let me = std::process::id();
    let mut groups = std::collections::BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            continue;
        }
        if let Ok(pgid) = nix::unistd::getpgid(Some(Pid::from_raw(pid as i32))) {
            // Never our own group (children of this run share none with us).
            if pgid.as_raw() as u32 != me && pgid != nix::unistd::getpgrp() {
                groups.insert(pgid.as_raw());
            }
        }
    }
    for pgid in &groups {
        tracing::warn!(
            pgid,
            "stopping an upstream process group left by this node's previous run"
        );
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
    }
    groups.len()
}

/// Copies a server's stdout to `sink` line by line, showing each line to `observe` first.
/// This is how Baton sees fields of the raw protocol that the SDK's typed model drops
/// (2025-11-25 `execution.taskSupport`, `capabilities.tasks`).
pub async fn tee_lines(
    stdout: ChildStdout,
    mut sink: tokio::io::DuplexStream,
    observe: impl Fn(&str) + Send + 'static,
) {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                observe(&line);
                if sink.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sink.shutdown().await;
}
