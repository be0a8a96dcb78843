//! Several Baton processes on one PostgreSQL database: `serve` nodes and `worker`s,
//! killed with `kill -9` mid-run, tasks created through one node and read through
//! another, and the database itself restarted mid-run. Real processes, the real
//! PostgreSQL server (a fresh schema per test; a private cluster for the restart).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{Api, Baton, PgSchema, baton_bin, eventually, free_port};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn envs<'a>(
    base: &'a [(&'static str, String)],
    extra: &'a [(&'static str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    base.iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(extra.iter().copied())
        .collect()
}

fn single(rows: Vec<String>) -> i64 {
    rows.first()
        .and_then(|r| r.trim().parse().ok())
        .expect("one number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_complete_exactly_once_despite_killed_processes() {
    let schema = PgSchema::create();
    let dir = tempfile::tempdir().unwrap();
    let base = schema.env();
    const LEASE_MS: i64 = 3000;
    let common_env = [
        ("BATON_WORKERS__LEASE", "3s"),
        ("BATON_TASKS__MAX_ACTIVE", "50000"),
        ("BATON_TASKS__RETRY_BASE_DELAY", "100ms"),
    ];
    // An operator migrates first; the processes find nothing left to do.
    let migrated = Command::new(baton_bin())
        .args(["migrate", "--data-dir"])
        .arg(dir.path().join("migrate"))
        .envs(envs(&base, &[]))
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );

    let node = |name: &str, workers: &str| {
        let mut env = envs(&base, &common_env);
        env.push(("BATON_NODE_ID", name));
        env.push(("BATON_WORKERS__CONCURRENCY", workers));
        Baton::start(&dir.path().join(name), &env)
    };
    let worker = |name: &str| {
        let mut env = envs(&base, &common_env);
        env.push(("BATON_NODE_ID", name));
        env.push(("BATON_WORKERS__CONCURRENCY", "16"));
        Baton::start_worker(&dir.path().join(name), &env)
    };
    let a = node("node-a", "8");
    let b = node("node-b", "8");
    let w1 = worker("worker-1");
    let w2 = worker("worker-2");
    let api_a = Api::new(&a.url);
    let api_b = Api::new(&b.url);

    // 10,000 tasks, half through each node, in batches.
    let mut submitted = 0;
    for round in 0..20 {
        let api = if round % 2 == 0 { &api_a } else { &api_b };
        let tasks: Vec<Value> = (0..500)
            .map(|i| json!({"tool": "baton__sleep", "arguments": {"ms": 40 + (i % 3) * 10}}))
            .collect();
        let r = api.post("/v1/tasks/batch", json!({"tasks": tasks})).await;
        assert_eq!(r.status, 202, "{}", r.body);
        submitted += r.body["tasks"].as_array().unwrap().len();
    }
    assert_eq!(submitted, 10_000);

    // Mid-run: a worker, then a node, die without a chance to clean up.
    eventually("tasks running on worker-1", LONG, async || {
        single(schema.query("SELECT count(*) FROM tasks WHERE lease_owner = 'worker-1'")) > 0
    })
    .await;
    let first_kill = now_ms();
    w1.kill9();
    // The node dies after the worker, while running work it took on since then.
    let started_since = format!(
        "SELECT count(*) FROM tasks WHERE lease_owner = 'node-b' AND started_at > {first_kill}"
    );
    eventually(
        "node-b running tasks started after worker-1 died",
        LONG,
        async || single(schema.query(&started_since)) > 0,
    )
    .await;
    let last_kill = now_ms();
    b.kill9();

    // Everything finishes, on the survivors.
    eventually("all 10,000 tasks final", LONG, async || {
        single(schema.query(
            "SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed', 'cancelled')",
        )) == 10_000
    })
    .await;
    assert_eq!(
        single(schema.query("SELECT count(*) FROM tasks WHERE status = 'completed'")),
        10_000,
        "every task completed"
    );
    assert_eq!(
        single(schema.query(
            "SELECT count(*) FROM (SELECT task_id FROM task_events WHERE kind = 'completed' \
             GROUP BY task_id HAVING count(*) <> 1) x"
        )),
        0,
        "no task completed twice"
    );
    assert_eq!(
        single(
            schema
                .query("SELECT count(DISTINCT task_id) FROM task_events WHERE kind = 'completed'")
        ),
        10_000
    );
    // The killed processes' tasks ran again, within two leases of the kill.
    let rescued = single(schema.query("SELECT count(*) FROM tasks WHERE attempt > 1"));
    assert!(rescued > 0, "some tasks were rescued and ran again");
    let rescues =
        schema.query("SELECT at FROM task_events WHERE kind = 'lease_expired' ORDER BY at");
    assert!(!rescues.is_empty(), "rescue events were logged");
    for at in &rescues {
        let at: i64 = at.parse().unwrap();
        assert!(
            at >= first_kill && at <= last_kill + 2 * LEASE_MS,
            "a rescue at {at} is outside [{first_kill}, {}]",
            last_kill + 2 * LEASE_MS
        );
    }

    // The survivors know who is gone.
    eventually("the killed processes are reported lost", LONG, async || {
        let peers = api_a.get("/v1/peers").await.body;
        let health = |id: &str| {
            peers["peers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["id"] == id)
                .map(|p| p["health"].clone())
        };
        health("worker-1") == Some(json!("lost"))
            && health("node-b") == Some(json!("lost"))
            && health("worker-2") == Some(json!("healthy"))
            && health("node-a") == Some(json!("healthy"))
    })
    .await;
    drop((w2, a));
}

/// An MCP client that moves between nodes finds its tasks (and its legacy session) on
/// each, and a subscription on one node hears of work done through another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tasks_created_on_one_node_are_served_by_another() {
    let schema = PgSchema::create();
    let dir = tempfile::tempdir().unwrap();
    let base = schema.env();
    let a = Baton::start(
        &dir.path().join("a"),
        &envs(&base, &[("BATON_NODE_ID", "a")]),
    );
    let b = Baton::start(
        &dir.path().join("b"),
        &envs(&base, &[("BATON_NODE_ID", "b")]),
    );
    let http = reqwest::Client::new();
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}
    });
    let modern = |url: &str, id: u64, method: &str, name: &str, mut params: Value| {
        params["_meta"] = meta.clone();
        http.post(format!("{url}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method)
            .header("mcp-name", name)
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
    };

    // 2026-07-28: created on A, followed on B.
    let created: Value = modern(
        &a.url,
        1,
        "tools/call",
        "baton__sleep",
        json!({"name": "baton__sleep", "arguments": {"ms": 300}}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = created["result"]["taskId"]
        .as_str()
        .expect("a task")
        .to_string();
    let deadline = Instant::now() + LONG;
    loop {
        let got: Value = modern(&b.url, 2, "tasks/get", &id, json!({"taskId": id}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if got["result"]["status"] == "completed" {
            assert_eq!(
                got["result"]["result"]["structuredContent"]["slept_ms"],
                300
            );
            break;
        }
        assert!(Instant::now() < deadline, "never completed: {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A subscription on B hears of a task that A's client created and a worker ran.
    let created: Value = modern(
        &a.url,
        3,
        "tools/call",
        "baton__sleep",
        json!({"name": "baton__sleep", "arguments": {"ms": 500, "steps": 2}}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = created["result"]["taskId"].as_str().unwrap().to_string();
    let stream = modern(
        &b.url,
        4,
        "subscriptions/listen",
        "",
        json!({"notifications": {"taskIds": [id]}}),
    )
    .send()
    .await
    .unwrap();
    let text = tokio::time::timeout(LONG, async {
        use futures::StreamExt;
        let mut body = stream.bytes_stream();
        let mut text = String::new();
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.contains("\"status\":\"completed\"") {
                break;
            }
        }
        text
    })
    .await
    .expect("the completion is pushed");
    assert!(text.contains("notifications/tasks"), "{text}");

    // 2025-11-25: a session begun on A is served by B (the session id carries its state).
    let init = http
        .post(format!("{}/mcp", a.url))
        .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let legacy = |url: &str, body: Value| {
        http.post(format!("{url}/mcp"))
            .header("accept", "application/json")
            .header("mcp-session-id", &session)
            .json(&body)
    };
    let created: Value = legacy(
        &a.url,
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "baton__echo", "arguments": {"via": "a"}, "task": {}}}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = created["result"]["task"]["taskId"].as_str().unwrap();
    let result: Value = legacy(
        &b.url,
        json!({"jsonrpc": "2.0", "id": 6, "method": "tasks/result", "params": {"taskId": id}}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        result["result"]["structuredContent"]["via"], "a",
        "{result}"
    );
}

/// A PostgreSQL cluster of this test's own, so that restarting it disturbs no other test.
struct PrivatePg {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl PrivatePg {
    fn start() -> PrivatePg {
        let bin = pg_bindir();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        as_postgres_owner(dir.path());
        let ok = pg_cmd(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
            ],
        )
        .output()
        .unwrap();
        assert!(
            ok.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let pg = PrivatePg { dir, bin, port };
        pg.ctl("start");
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("pg.log");
        let out = pg_cmd(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                action,
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = pg_cmd(
            &self.bin,
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        )
        .output();
    }
}

/// The directory of PostgreSQL's server programs.
fn pg_bindir() -> std::path::PathBuf {
    let out = Command::new("pg_config").arg("--bindir").output();
    if let Ok(out) = out
        && out.status.success()
    {
        let dir = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let versions =
        std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL's programs (initdb, pg_ctl)");
    let mut dirs: Vec<_> = versions
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("initdb")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// PostgreSQL refuses to run as root; as root, the cluster belongs to `postgres`.
fn as_postgres_owner(dir: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

fn pg_cmd(bin: &Path, program: &str, args: &[&str]) -> Command {
    let path = bin.join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path).args(args);
        c
    } else {
        let mut c = Command::new(path);
        c.args(args);
        c
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_loses_nothing_and_is_reported_meanwhile() {
    let pg = PrivatePg::start();
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url();
    let env = [
        ("BATON_STORE", url.as_str()),
        ("BATON_STORE__ACQUIRE_TIMEOUT", "1s"),
        ("BATON_WORKERS__CONCURRENCY", "16"),
        ("BATON_TASKS__RETRY_BASE_DELAY", "200ms"),
        ("BATON_TASKS__MAX_ATTEMPTS", "10"),
    ];
    let node = Baton::start(&dir.path().join("n"), &env);
    let api = Api::new(&node.url);
    let tasks: Vec<Value> = (0..300)
        .map(|_| json!({"tool": "baton__sleep", "arguments": {"ms": 100}}))
        .collect();
    let r = api.post("/v1/tasks/batch", json!({"tasks": tasks})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let ids: Vec<String> = r.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap().to_string())
        .collect();

    // The database goes away mid-run.
    pg.ctl("stop");
    let ready = api.get("/readyz").await;
    assert_eq!(
        ready.status, 503,
        "not ready while the store is down: {}",
        ready.body
    );
    let r = api
        .post("/v1/tasks", json!({"tool": "baton__echo", "arguments": {}}))
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
    assert!(
        r.error_message().contains("PostgreSQL") || r.error_message().contains("database"),
        "{}",
        r.error_message()
    );
    // The outage is part of the scenario: the database stays down for longer than the
    // pool's acquire timeout (1 s), so that work in flight meets it too.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // It comes back: the node reconnects by itself, and every task completes.
    pg.ctl("start");
    eventually("ready again", LONG, async || {
        api.get("/readyz").await.status == 200
    })
    .await;
    let r = api
        .post(
            "/v1/tasks?wait=30",
            json!({"tool": "baton__echo", "arguments": {"after": "restart"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for id in &ids {
        let t = api.wait_final(id).await;
        assert_eq!(t["status"], "completed", "{t}");
    }
}

/// SIGTERM to a worker: it takes no new work, lets its running task finish, says it
/// stopped, and exits cleanly; what it had not started runs on another process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_drains_on_sigterm() {
    let schema = PgSchema::create();
    let dir = tempfile::tempdir().unwrap();
    let base = schema.env();
    let api_node = Baton::start(
        &dir.path().join("api"),
        &envs(
            &base,
            &[
                ("BATON_NODE_ID", "api"),
                ("BATON_WORKERS__CONCURRENCY", "0"),
            ],
        ),
    );
    let api = Api::new(&api_node.url);
    let worker = Baton::start_worker(
        &dir.path().join("w"),
        &envs(
            &base,
            &[("BATON_NODE_ID", "w"), ("BATON_WORKERS__CONCURRENCY", "1")],
        ),
    );
    let long = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 1500}}))
        .await;
    let queued = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 10}}))
        .await;
    api.wait_status(&long, "running").await;
    let status = worker.terminate();
    assert!(status.success(), "a clean exit: {status:?}");
    assert_eq!(
        api.task(&long).await["status"],
        "completed",
        "the running task finished"
    );
    assert_eq!(
        api.task(&queued).await["status"],
        "pending",
        "nothing new was started"
    );
    let peers = api.get("/v1/peers").await.body;
    let w = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "w")
        .unwrap()
        .clone();
    assert_eq!(w["health"], "stopped", "{w}");
    // Another worker picks up what was left.
    let _other = Baton::start_worker(
        &dir.path().join("w2"),
        &envs(&base, &[("BATON_NODE_ID", "w2")]),
    );
    assert_eq!(api.wait_final(&queued).await["status"], "completed");
}

/// Several processes migrating one fresh database at once: each succeeds, and every
/// migration is applied exactly once.
#[test]
fn concurrent_migrations_are_safe() {
    let schema = PgSchema::create();
    let dir = tempfile::tempdir().unwrap();
    let base = schema.env();
    let spawned: Vec<_> = (0..4)
        .map(|i| {
            Command::new(baton_bin())
                .args(["migrate", "--data-dir"])
                .arg(dir.path().join(format!("n{i}")))
                .envs(envs(&base, &[]))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in spawned {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    }
    let applied = schema
        .query("SELECT version, count(*) FROM _sqlx_migrations GROUP BY version ORDER BY version");
    // Each migration exactly once, however many processes raced to apply it.
    // The versions shipped, from the files' names (numbers may skip one reserved for
    // work not merged yet).
    let mut shipped: Vec<i64> = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../store/migrations/postgres"
    ))
    .unwrap()
    .filter_map(|e| {
        let name = e.ok()?.file_name().to_string_lossy().to_string();
        name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
    })
    .collect();
    shipped.sort();
    let expected: Vec<String> = shipped.iter().map(|v| format!("{v}|1")).collect();
    assert!(shipped.len() >= 5, "migrations found: {shipped:?}");
    assert_eq!(applied, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_run_across_processes_and_survive_the_coordinator_dying() {
    let schema = PgSchema::create();
    let dir = tempfile::tempdir().unwrap();
    let base = schema.env();
    // Two API nodes without workers, one worker: every step runs in another process
    // than the one that coordinates it.
    let a = Baton::start(
        &dir.path().join("a"),
        &envs(
            &base,
            &[("BATON_NODE_ID", "a"), ("BATON_WORKERS__CONCURRENCY", "0")],
        ),
    );
    // A takes the `workflows` role when it starts (its first sweep); B, started after,
    // waits for it. The role is an advisory lock keyed by the schema and the role's name.
    eventually("node a holds the workflows role", LONG, async || {
        single(schema.query(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND objsubid = 2 AND objid = hashtext(current_schema() || '/workflows')::oid",
        )) == 1
    })
    .await;
    let b = Baton::start(
        &dir.path().join("b"),
        &envs(
            &base,
            &[("BATON_NODE_ID", "b"), ("BATON_WORKERS__CONCURRENCY", "0")],
        ),
    );
    let _worker = Baton::start_worker(
        &dir.path().join("w"),
        &envs(
            &base,
            &[("BATON_NODE_ID", "w"), ("BATON_WORKERS__CONCURRENCY", "8")],
        ),
    );
    let api_a = Api::new(&a.url);
    let api_b = Api::new(&b.url);
    let definition = r#"
name: across
steps:
  - { id: first, tool: baton__echo, arguments: { n: 1 } }
  - { id: mid-1, tool: baton__sleep, depends_on: [first], arguments: { ms: 1500, steps: 3 } }
  - { id: mid-2, tool: baton__sleep, depends_on: [first], arguments: { ms: 1500, steps: 3 } }
  - { id: last, tool: baton__echo, depends_on: [mid-1, mid-2], arguments: { v: '${steps.first.result.structuredContent.n}' } }
"#;
    let r = api_a
        .post_raw("/v1/workflows", definition.to_string())
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["workflow_id"].as_str().unwrap().to_string();
    // The middle steps start on the worker; node B sees the same workflow.
    eventually(
        "middle steps running",
        Duration::from_secs(30),
        async || {
            let wf = api_b.get(&format!("/v1/workflows/{id}")).await.body;
            wf["steps"]
                .as_array()
                .is_some_and(|s| s.iter().filter(|s| s["task_status"] == "running").count() == 2)
        },
    )
    .await;
    // Kill the coordinator (A): B takes the role over and finishes the workflow.
    let holder = schema.query(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted",
    );
    assert!(
        single(holder) >= 1,
        "singleton roles are held by advisory locks"
    );
    a.kill9();
    let deadline = Instant::now() + Duration::from_secs(60);
    let wf = loop {
        let wf = api_b.get(&format!("/v1/workflows/{id}")).await.body;
        if wf["status"] != "running" {
            break wf;
        }
        assert!(Instant::now() < deadline, "never finished: {wf:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(wf["status"], "completed", "{wf:#}");
    let last = wf["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == "last")
        .unwrap();
    let task = api_b
        .get(&format!("/v1/tasks/{}", last["task_id"].as_str().unwrap()))
        .await
        .body;
    assert_eq!(task["arguments"], json!({"v": 1}));
    let tasks = schema.query(&format!(
        "SELECT count(*) FROM tasks WHERE workflow_id = '{id}'"
    ));
    assert_eq!(single(tasks), 4, "one task per step");
}

/// A legacy MCP session begun on one node works on another (the deployment signs session
/// ids with one key, kept in the store); ended with `DELETE` on one node, it is refused
/// with 404 on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_session_ended_on_one_node_is_refused_by_every_node() {
    let schema = PgSchema::create();
    let dir = tempfile::tempdir().unwrap();
    let base = schema.env();
    let a = Baton::start(
        &dir.path().join("a"),
        &envs(&base, &[("BATON_NODE_ID", "a")]),
    );
    let b = Baton::start(
        &dir.path().join("b"),
        &envs(&base, &[("BATON_NODE_ID", "b")]),
    );
    let http = reqwest::Client::new();
    let post = |url: &str, sid: Option<&str>, body: Value| {
        let mut r = http
            .post(format!("{url}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = sid {
            r = r
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        r.send()
    };
    let init = post(
        &a.url,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await
    .unwrap();
    assert_eq!(init.status(), 200);
    let sid = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let on_b = post(&b.url, Some(&sid), ping.clone()).await.unwrap();
    assert_eq!(on_b.status(), 200, "node b serves a session node a began");
    // An id with its state changed is not Baton's.
    let forged = sid.replacen("b2.", "b2.e", 1);
    assert_ne!(forged, sid);
    let refused = post(&b.url, Some(&forged), ping.clone()).await.unwrap();
    assert_eq!(refused.status(), 404);

    let ended = http
        .delete(format!("{}/mcp", a.url))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    let on_a = post(&a.url, Some(&sid), ping.clone()).await.unwrap();
    assert_eq!(on_a.status(), 404, "at once on the node that ended it");
    eventually(
        "node b refuses the ended session",
        Duration::from_secs(10),
        async || {
            post(&b.url, Some(&sid), ping.clone())
                .await
                .unwrap()
                .status()
                == 404
        },
    )
    .await;
}
/// An operator drains a worker from another node (REST, then seen over MCP): it finishes
/// what it runs, claims nothing more, and says so in the peer list; the others go on.
#[tokio::test]
async fn a_worker_is_drained_from_another_node() {
    let schema = PgSchema::create();
    let dir = tempfile::tempdir().unwrap();
    let base = schema.env();
    let api_node = Baton::start(
        &dir.path().join("api"),
        &envs(
            &base,
            &[
                ("BATON_NODE_ID", "api"),
                ("BATON_WORKERS__CONCURRENCY", "0"),
            ],
        ),
    );
    let api = Api::new(&api_node.url);
    // A short lease: heartbeats (which carry the drain) every 700 ms.
    let worker = Baton::start_worker(
        &dir.path().join("w"),
        &envs(
            &base,
            &[
                ("BATON_NODE_ID", "w"),
                ("BATON_WORKERS__CONCURRENCY", "1"),
                ("BATON_WORKERS__LEASE", "2s"),
            ],
        ),
    );
    let first = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 1500}}))
        .await;
    api.wait_status(&first, "running").await;
    let r = api.post("/v1/peers/w/drain", json!(null)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["draining"], true, "{}", r.body);
    assert_eq!(
        api.post("/v1/peers/nobody/drain", json!(null)).await.status,
        404
    );
    assert_eq!(
        api.wait_final(&first).await["status"],
        "completed",
        "it finishes what it runs"
    );
    // Within a heartbeat it stops claiming: a new task waits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queued = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 10}}))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        api.task(&queued).await["status"],
        "pending",
        "a drained worker claims nothing: {}",
        worker.log_text()
    );
    assert!(
        worker.log_text().contains("drained"),
        "{}",
        worker.log_text()
    );
    // The MCP tool shows the same.
    let mcp = crate::mcp_protocol::Mcp::new(&api_node.url);
    let session = mcp.initialize("2025-11-25", json!({})).await;
    let a = mcp
        .legacy(
            &session,
            2,
            "tools/call",
            json!({"name": "worker_status", "arguments": {}}),
        )
        .await;
    let peers = a.last()["result"]["structuredContent"]["peers"].clone();
    let w = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "w")
        .unwrap_or_else(|| panic!("{peers}"))
        .clone();
    assert_eq!(
        (w["draining"].clone(), w["health"].clone()),
        (json!(true), json!("healthy")),
        "{w}"
    );
    let _other = Baton::start_worker(
        &dir.path().join("w2"),
        &envs(&base, &[("BATON_NODE_ID", "w2")]),
    );
    assert_eq!(api.wait_final(&queued).await["status"], "completed");
}
