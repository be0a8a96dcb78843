//! Helpers for tests that run the real `baton` binary on a real port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn baton_bin() -> &'static str {
    env!("CARGO_BIN_EXE_baton")
}

/// A running `baton serve`.
pub struct Baton {
    child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Baton {
    /// `baton serve --listen 127.0.0.1:0 --data-dir DIR` with extra environment.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Baton {
        let mut cmd = Command::new(baton_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Baton::spawn(cmd, &dir.with_extension("log"))
    }

    /// `baton worker --data-dir DIR` with extra environment; waits until it is ready.
    /// Its `url` is empty (a worker has no API).
    pub fn start_worker(dir: &Path, env: &[(&str, &str)]) -> Baton {
        let mut cmd = Command::new(baton_bin());
        cmd.args(["worker", "--data-dir"]).arg(dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Baton::spawn_until(cmd, &dir.with_extension("log"), |line| {
            (line.starts_with("baton worker ") && line.ends_with(" ready")).then(String::new)
        })
    }

    /// Spawns `cmd` (which must end up running `baton serve`) and waits for its address.
    pub fn spawn(cmd: Command, log: &Path) -> Baton {
        Baton::spawn_until(cmd, log, |line| {
            line.strip_prefix("baton listening on ")
                .map(|url| url.trim().to_string())
        })
    }

    /// Spawns `cmd` and waits for the stdout line `ready` recognises; its answer is the
    /// node's URL.
    fn spawn_until(mut cmd: Command, log: &Path, ready: impl Fn(&str) -> Option<String>) -> Baton {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        cmd.stdout(Stdio::piped())
            .stderr(log_file)
            .env_remove("BATON_URL")
            .env("BATON_LOG", "info,sqlx=warn");
        let mut child = cmd.spawn().expect("spawn baton");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = ready(&line) {
                        return Baton {
                            child,
                            url,
                            log: log.to_path_buf(),
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "baton did not start; its log:\n{}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn terminate(mut self) -> ExitStatus {
        self.signal("TERM");
        wait_exit(&mut self.child, Duration::from_secs(60))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A JSON HTTP client for tests.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error message of an error reply, asserting the error shape.
    pub fn error_message(&self) -> &str {
        assert!(
            self.status >= 400,
            "expected an error, got {} {}",
            self.status,
            self.body
        );
        assert!(
            self.body["error"]["code"].is_string(),
            "error body shape: {}",
            self.body
        );
        self.body["error"]["message"]
            .as_str()
            .expect("error message")
    }
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body ({status}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Submits and returns the task id, asserting a 202.
    pub async fn submit(&self, body: Value) -> String {
        let r = self.post("/v1/tasks", body).await;
        assert_eq!(r.status, 202, "{}", r.body);
        r.body["task_id"].as_str().unwrap().to_string()
    }

    pub async fn task(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/tasks/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Long-polls until the task is final.
    pub async fn wait_final(&self, id: &str) -> Value {
        for _ in 0..30 {
            let r = self.get(&format!("/v1/tasks/{id}/result?wait=10")).await;
            if r.status == 200 {
                return self.task(id).await;
            }
            assert_eq!(r.status, 202, "{}", r.body);
        }
        panic!("task {id} did not finish");
    }

    /// Polls until the task reaches `status`.
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let t = self.task(id).await;
            if t["status"] == status {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} never became {status}: {t}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The task's events, from the SSE stream (which ends at the final state).
    pub async fn sse_events(
        &self,
        id: &str,
        last_event_id: Option<i64>,
    ) -> Vec<(i64, String, Value)> {
        let mut req = self.http.get(format!("{}/v1/tasks/{id}/events", self.base));
        if let Some(l) = last_event_id {
            req = req.header("Last-Event-ID", l.to_string());
        }
        let resp = req.send().await.expect("events");
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream"),
            "SSE content type"
        );
        let text = resp.text().await.unwrap();
        parse_sse(&text)
    }
}

pub fn parse_sse(text: &str) -> Vec<(i64, String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut id, mut kind, mut data) = (None, String::new(), String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("event:") {
                kind = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if let Some(id) = id {
            out.push((id, kind, serde_json::from_str(&data).unwrap_or(Value::Null)));
        }
    }
    out
}

/// Runs the `baton` CLI.
pub fn cli(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(baton_bin())
        .args(args)
        .env("BATON_URL", url)
        .output()
        .expect("run baton")
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

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

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// Polls `check` until it holds (or panics after `limit`).
/// Waits (up to a minute) until the node reports the MCP server `server` healthy.
pub async fn wait_healthy(api: &Api, server: &str) {
    eventually(
        &format!("{server} healthy"),
        Duration::from_secs(60),
        async || api.get(&format!("/v1/servers/{server}")).await.body["state"] == "healthy",
    )
    .await;
}

pub async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// The PostgreSQL server the tests use: `BATON_TEST_PG_URL`, default the local one
/// (`scripts/test-env` starts it). Tests fail, never skip, when it is unreachable.
pub fn pg_url() -> String {
    std::env::var("BATON_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh schema for one test, dropped (with its tables) when the test ends.
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    pub fn create() -> PgSchema {
        let url = pg_url();
        let name = format!("baton_it_{}_{:08x}", std::process::id(), rand_u32());
        psql(&url, &format!("CREATE SCHEMA {name}"));
        PgSchema { url, name }
    }

    /// Environment that points a Baton process at this schema.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BATON_STORE", self.url.clone()),
            ("BATON_STORE__SCHEMA", self.name.clone()),
        ]
    }

    /// Runs one SQL query in the schema; returns the rows, fields separated by `|`.
    pub fn query(&self, sql: &str) -> Vec<String> {
        psql(
            &self.url,
            &format!("SET search_path TO {}; {sql}", self.name),
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Declared before the processes using it, it is dropped after they stopped.
        let _ = Command::new("psql")
            .args([
                &self.url,
                "-q",
                "-c",
                &format!(
                    "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
                    self.name
                ),
            ])
            .output();
    }
}

/// Runs SQL with psql (tuples only, unaligned); panics with psql's message on failure.
pub fn psql(url: &str, sql: &str) -> Vec<String> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql (installed with PostgreSQL; scripts/test-env checks it)");
    assert!(
        out.status.success(),
        "psql failed on `{sql}`: {}\n(the PostgreSQL tests need a server: run scripts/test-env, or set BATON_TEST_PG_URL)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

pub fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) as u32
}
