//! `baton bench`: the benchmark harness. Figures and the commands that produced them are
//! recorded in BENCHMARKS.md; nothing here asserts a time.
//!
//! Unless `--target URL` names a running node, each scenario starts a fresh node in this
//! process (embedded SQLite in a temporary directory, a real HTTP listener on a free
//! port) and drives it over HTTP like any client would, so the load generator and the
//! node share the machine's cores.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use baton_server::App;
use baton_server::config::Config;
use baton_store::sqlite::Synchronous;
use clap::{Args, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::client::Client;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
    /// Benchmark a running node instead of starting one in this process.
    #[arg(long, global = true)]
    target: Option<String>,
    /// Tasks the embedded node runs at once.
    #[arg(long, global = true, default_value_t = 64)]
    workers: usize,
    /// Durability of the embedded node's commits (`full` fsyncs every commit).
    #[arg(long, global = true, value_enum, default_value_t = Sync::Normal)]
    sync: Sync,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Run the embedded node(s) on this PostgreSQL database (in a fresh schema, dropped
    /// afterwards) instead of SQLite.
    #[arg(long, global = true, value_name = "postgres://…")]
    store: Option<String>,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum McpMode {
    Plain,
    Task,
}

#[derive(Clone, Copy, ValueEnum)]
enum Sync {
    Normal,
    Full,
}

#[derive(Subcommand)]
enum Scenario {
    /// Submit→complete throughput with batched submissions (POST /v1/tasks/batch).
    Batch {
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        /// Concurrent batch requests.
        #[arg(long, default_value_t = 4)]
        clients: usize,
    },
    /// Submit→complete throughput with one HTTP request per task.
    Http {
        #[arg(long, default_value_t = 50_000)]
        tasks: usize,
        #[arg(long, default_value_t = 64)]
        clients: usize,
    },
    /// Added latency of a tool call through Baton (submit, then long-poll the result;
    /// upstream over stdio) over a direct rmcp call to the same server. Needs
    /// `baton-testserver` next to this binary.
    Upstream {
        #[arg(long, default_value_t = 2000)]
        calls: usize,
    },
    /// MCP `tools/call` through `/mcp` (protocol 2026-07-28) to a trivial upstream tool
    /// (`baton-testserver`'s `add` over stdio), from many concurrent clients.
    Mcp {
        #[arg(long, default_value_t = 5000)]
        calls: usize,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// `plain`: each call waits for its result. `task`: each call declares the tasks
        /// extension and returns the task once it is stored (the tasks run on; the
        /// report also gives the rate at which they completed).
        #[arg(long, value_enum, default_value_t = McpMode::Plain)]
        mode: McpMode,
    },
    /// Submit→start latency across processes on PostgreSQL: an API node (no workers)
    /// takes the submissions, a worker process (no API) runs them. Needs `--store`.
    CrossNode {
        #[arg(long, default_value_t = 2000)]
        tasks: usize,
        /// Submissions in flight at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
    },
    /// Workflows: each a diamond (one step, then `width` parallel steps, then one join
    /// step, all `baton__echo`), run one after another. Reports the workflow's wall time
    /// and the hand-off: from a step's last dependency completing to the step's task
    /// being stored (the coordinator's latency), from the event log.
    Workflow {
        #[arg(long, default_value_t = 200)]
        workflows: usize,
        #[arg(long, default_value_t = 8)]
        width: usize,
    },
    /// Submit→complete latency as one client sees it (submit, then long-poll the result).
    Latency {
        #[arg(long, default_value_t = 2000)]
        tasks: usize,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
    },
}

/// The node under test: started here, or `--target`.
struct Node {
    url: String,
    /// The worker of a cross-node benchmark.
    worker: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    /// The fresh PostgreSQL schema the benchmark runs in (dropped by `stop`).
    schema: Option<(String, String)>,
    /// Fresh and used by this benchmark alone, so its active-task count tells when
    /// everything has finished.
    embedded: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Node {
    async fn start(
        args: &BenchArgs,
        servers: Vec<baton_upstream::ServerConfig>,
    ) -> anyhow::Result<Node> {
        Node::start_with(args, servers, args.workers).await
    }

    async fn start_with(
        args: &BenchArgs,
        servers: Vec<baton_upstream::ServerConfig>,
        workers: usize,
    ) -> anyhow::Result<Node> {
        if let Some(url) = &args.target {
            return Ok(Node {
                url: url.clone(),
                worker: None,
                schema: None,
                embedded: false,
                stop: None,
                handle: None,
                _dir: None,
            });
        }
        let dir = tempfile::tempdir()?;
        let mut config = Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        let schema = args
            .store
            .as_ref()
            .map(|url| (url.clone(), format!("baton_bench_{:08x}", rand_u32())));
        if let Some((url, name)) = &schema {
            config.store.url = Some(url.clone());
            config.store.schema = Some(name.clone());
            config.store.max_connections = 16;
        }
        config.workers.concurrency = workers;
        config.workers.claim_batch = 512;
        config.tasks.max_active = 10_000_000;
        config.http.max_body_bytes = 64 * 1024 * 1024;
        config.servers = servers;
        config.store.synchronous = match args.sync {
            Sync::Normal => Synchronous::Normal,
            Sync::Full => Synchronous::Full,
        };
        let app = App::build(config).await?;
        let url = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = app
                .run_until_stopped(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Node {
            url,
            worker: None,
            schema,
            embedded: true,
            stop: Some(tx),
            handle: Some(handle),
            _dir: Some(dir),
        })
    }

    /// Adds a worker process's engine (no API) on the node's PostgreSQL schema.
    async fn add_worker(&mut self, args: &BenchArgs) -> anyhow::Result<()> {
        let (url, schema) = self
            .schema
            .clone()
            .ok_or_else(|| anyhow::anyhow!("a worker needs --store postgres://…"))?;
        let dir = self._dir.as_ref().expect("embedded").path().join("worker");
        let mut config = Config {
            data_dir: dir,
            ..Config::default()
        };
        config.store.url = Some(url);
        config.store.schema = Some(schema);
        config.store.max_connections = 16;
        config.workers.concurrency = args.workers;
        config.workers.claim_batch = 512;
        config.tasks.max_active = 10_000_000;
        let app = App::build_with(config, baton_server::app::Mode::Worker).await?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = app
                .run_until_stopped(async move {
                    let _ = rx.await;
                })
                .await;
        });
        self.worker = Some((tx, handle));
        Ok(())
    }

    async fn stop(mut self) {
        if let Some((tx, h)) = self.worker.take() {
            let _ = tx.send(());
            let _ = h.await;
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        if let Some((url, schema)) = &self.schema
            && let Err(e) = baton_store::postgres::drop_schema(url, schema).await
        {
            eprintln!("warning: could not drop the benchmark schema {schema}: {e}");
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client")
}

fn task_body(queue: &str, i: usize) -> Value {
    json!({"tool": "baton__echo", "arguments": {"i": i}, "queue": queue})
}

/// Waits until `n` tasks of `queue` are final; returns when that was first seen.
async fn wait_done(node: &Node, client: &Client, queue: &str, n: u64) -> anyhow::Result<Instant> {
    if node.embedded {
        // The counters endpoint costs the node nothing, unlike per-queue counts.
        loop {
            let (_, s) = client
                .send(client.http().get(client.url("/v1/stats")))
                .await?;
            if s["active_tasks"].as_u64() == Some(0) {
                return Ok(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    loop {
        let q = client.queues().await?;
        let done: u64 = q["queues"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["name"] == queue)
            .map(|x| {
                ["completed", "failed", "cancelled"]
                    .iter()
                    .map(|s| x["counts"][s].as_u64().unwrap_or(0))
                    .sum::<u64>()
            })
            .sum();
        if done >= n {
            return Ok(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Report {
    scenario: &'static str,
    figures: Vec<(&'static str, f64, &'static str)>,
}

impl Report {
    fn print(&self, json_out: bool) {
        if json_out {
            let m: serde_json::Map<String, Value> = self
                .figures
                .iter()
                .map(|(k, v, _)| (k.to_string(), json!(v)))
                .collect();
            println!("{}", json!({"scenario": self.scenario, "figures": m}));
        } else {
            println!("{}", self.scenario);
            for (k, v, unit) in &self.figures {
                println!("  {k:<28} {v:>12.1} {unit}");
            }
        }
    }
}

pub async fn run(args: BenchArgs, _server: &str) -> ExitCode {
    match run_inner(&args).await {
        Ok(report) => {
            report.print(args.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run_inner(args: &BenchArgs) -> anyhow::Result<Report> {
    if let Scenario::Upstream { calls } = &args.scenario {
        return upstream(args, *calls).await;
    }
    if let Scenario::Mcp {
        calls,
        clients,
        mode,
    } = &args.scenario
    {
        return mcp(args, *calls, *clients, *mode).await;
    }
    if let Scenario::CrossNode { tasks, concurrency } = &args.scenario {
        return cross_node(args, *tasks, *concurrency).await;
    }
    let node = Node::start(args, Vec::new()).await?;
    let client = Client::new(&node.url);
    let queue = format!("bench-{:08x}", rand_u32());
    let report = match &args.scenario {
        Scenario::Batch {
            tasks,
            batch_size,
            clients,
        } => batch(&node, &client, &queue, *tasks, *batch_size, *clients).await?,
        Scenario::Http { tasks, clients } => {
            per_request(&node, &client, &queue, *tasks, *clients).await?
        }
        Scenario::Latency { tasks, concurrency } => {
            latency(&node.url, &queue, *tasks, *concurrency).await?
        }
        Scenario::Workflow { workflows, width } => {
            workflow(&node.url, &queue, *workflows, *width).await?
        }
        Scenario::CrossNode { .. } | Scenario::Upstream { .. } | Scenario::Mcp { .. } => {
            unreachable!("runs its own nodes")
        }
    };
    node.stop().await;
    Ok(report)
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u32) ^ std::process::id().rotate_left(16)
}

async fn batch(
    node: &Node,
    client: &Client,
    queue: &str,
    tasks: usize,
    batch_size: usize,
    clients: usize,
) -> anyhow::Result<Report> {
    let url = node.url.as_str();
    let http = http_client();
    let next = Arc::new(AtomicU64::new(0));
    let batches = tasks.div_ceil(batch_size) as u64;
    let start = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..clients.max(1) {
        let (http, next, url, queue) = (
            http.clone(),
            next.clone(),
            url.to_string(),
            queue.to_string(),
        );
        joins.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok::<(), anyhow::Error>(());
                }
                let from = b as usize * batch_size;
                let to = (from + batch_size).min(tasks);
                let body =
                    json!({"tasks": (from..to).map(|i| task_body(&queue, i)).collect::<Vec<_>>()});
                let r = http
                    .post(format!("{url}/v1/tasks/batch"))
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    r.status() == 202,
                    "batch refused: {} {}",
                    r.status(),
                    r.text().await?
                );
            }
        }));
    }
    for j in joins {
        j.await??;
    }
    let submitted = start.elapsed();
    let done = wait_done(node, client, queue, tasks as u64)
        .await?
        .duration_since(start);
    Ok(Report {
        scenario: "batch: submit→complete, batched submissions",
        figures: vec![
            ("tasks", tasks as f64, ""),
            ("batch size", batch_size as f64, ""),
            (
                "submit rate",
                tasks as f64 / submitted.as_secs_f64(),
                "tasks/s",
            ),
            (
                "submit→complete throughput",
                tasks as f64 / done.as_secs_f64(),
                "tasks/s",
            ),
            ("wall time", done.as_secs_f64(), "s"),
        ],
    })
}

async fn per_request(
    node: &Node,
    client: &Client,
    queue: &str,
    tasks: usize,
    clients: usize,
) -> anyhow::Result<Report> {
    let url = node.url.as_str();
    let http = http_client();
    let next = Arc::new(AtomicU64::new(0));
    let mut hist = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..clients.max(1) {
        let (http, next, url, queue) = (
            http.clone(),
            next.clone(),
            url.to_string(),
            queue.to_string(),
        );
        joins.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= tasks {
                    return Ok::<_, anyhow::Error>(h);
                }
                let t = Instant::now();
                let r = http
                    .post(format!("{url}/v1/tasks"))
                    .json(&task_body(&queue, i))
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 202, "submit refused: {}", r.status());
                let _ = r.bytes().await?;
                h.record(t.elapsed().as_micros() as u64)?;
            }
        }));
    }
    for j in joins {
        hist.add(j.await??)?;
    }
    let submitted = start.elapsed();
    let done = wait_done(node, client, queue, tasks as u64)
        .await?
        .duration_since(start);
    Ok(Report {
        scenario: "http: submit→complete, one request per task",
        figures: vec![
            ("tasks", tasks as f64, ""),
            ("clients", clients as f64, ""),
            (
                "submit rate (202s)",
                tasks as f64 / submitted.as_secs_f64(),
                "tasks/s",
            ),
            (
                "submit→complete throughput",
                tasks as f64 / done.as_secs_f64(),
                "tasks/s",
            ),
            (
                "202 latency p50",
                hist.value_at_quantile(0.5) as f64 / 1000.0,
                "ms",
            ),
            (
                "202 latency p99",
                hist.value_at_quantile(0.99) as f64 / 1000.0,
                "ms",
            ),
        ],
    })
}

async fn latency(
    url: &str,
    queue: &str,
    tasks: usize,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let http = http_client();
    let next = Arc::new(AtomicU64::new(0));
    let mut hist = Histogram::<u64>::new(3)?;
    // Warm up connections and caches.
    for i in 0..50 {
        let id = submit_one(&http, url, queue, i).await?;
        wait_result(&http, url, &id).await?;
    }
    let mut joins = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (http, next, url, queue) = (
            http.clone(),
            next.clone(),
            url.to_string(),
            queue.to_string(),
        );
        joins.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= tasks {
                    return Ok::<_, anyhow::Error>(h);
                }
                let t = Instant::now();
                let id = submit_one(&http, &url, &queue, i).await?;
                wait_result(&http, &url, &id).await?;
                h.record(t.elapsed().as_micros() as u64)?;
            }
        }));
    }
    for j in joins {
        hist.add(j.await??)?;
    }
    Ok(Report {
        scenario: "latency: submit→complete as seen by a client",
        figures: vec![
            ("tasks", tasks as f64, ""),
            ("concurrency", concurrency as f64, ""),
            ("p50", hist.value_at_quantile(0.5) as f64 / 1000.0, "ms"),
            ("p90", hist.value_at_quantile(0.9) as f64 / 1000.0, "ms"),
            ("p99", hist.value_at_quantile(0.99) as f64 / 1000.0, "ms"),
            ("max", hist.max() as f64 / 1000.0, "ms"),
        ],
    })
}

async fn workflow(
    url: &str,
    queue: &str,
    workflows: usize,
    width: usize,
) -> anyhow::Result<Report> {
    let http = http_client();
    let mut steps = vec![json!({"id": "first", "tool": "baton__echo", "queue": queue})];
    let middle: Vec<String> = (0..width.max(1)).map(|i| format!("m{i}")).collect();
    for m in &middle {
        steps
            .push(json!({"id": m, "tool": "baton__echo", "queue": queue, "depends_on": ["first"]}));
    }
    steps.push(json!({"id": "join", "tool": "baton__echo", "queue": queue, "depends_on": middle}));
    let definition = json!({"name": "bench-diamond", "steps": steps});
    let mut wall = Histogram::<u64>::new(3)?;
    let mut handoff = Histogram::<u64>::new(3)?;
    let started = Instant::now();
    for _ in 0..workflows {
        let t = Instant::now();
        let r = http
            .post(format!("{url}/v1/workflows"))
            .json(&definition)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 202, "workflow refused: {}", r.status());
        let v: Value = r.json().await?;
        let id = v["workflow_id"].as_str().unwrap_or_default().to_string();
        loop {
            let wf: Value = http
                .get(format!("{url}/v1/workflows/{id}"))
                .send()
                .await?
                .json()
                .await?;
            match wf["status"].as_str() {
                Some("running") => tokio::time::sleep(Duration::from_millis(2)).await,
                Some("completed") => break,
                other => anyhow::bail!("workflow {id} ended {other:?}"),
            }
        }
        wall.record(t.elapsed().as_micros() as u64)?;
        // Hand-offs, from the stored event times (milliseconds).
        let tl: Value = http
            .get(format!("{url}/v1/workflows/{id}/timeline"))
            .send()
            .await?
            .json()
            .await?;
        let at = |step: &str, kind: &str| -> Option<i64> {
            tl["events"].as_array()?.iter().find_map(|e| {
                (e["step_id"] == step && e["kind"] == kind)
                    .then(|| millis(&e["at"]))
                    .flatten()
            })
        };
        if let Some(done) = at("first", "completed") {
            for m in &middle {
                if let Some(created) = at(m, "created") {
                    handoff.record((created - done).max(0) as u64)?;
                }
            }
        }
        let last = middle.iter().filter_map(|m| at(m, "completed")).max();
        if let (Some(done), Some(created)) = (last, at("join", "created")) {
            handoff.record((created - done).max(0) as u64)?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Report {
        scenario: "workflow: diamonds of baton__echo steps, one after another",
        figures: vec![
            ("workflows", workflows as f64, ""),
            ("steps per workflow", (width + 2) as f64, ""),
            ("workflows per second", workflows as f64 / secs, "/s"),
            (
                "wall time p50",
                wall.value_at_quantile(0.5) as f64 / 1000.0,
                "ms",
            ),
            (
                "wall time p99",
                wall.value_at_quantile(0.99) as f64 / 1000.0,
                "ms",
            ),
            ("hand-off p50", handoff.value_at_quantile(0.5) as f64, "ms"),
            ("hand-off p99", handoff.value_at_quantile(0.99) as f64, "ms"),
            ("hand-off max", handoff.max() as f64, "ms"),
        ],
    })
}

/// An RFC 3339 timestamp as milliseconds since the epoch.
fn millis(v: &Value) -> Option<i64> {
    Some(
        baton_core::Timestamp::parse_rfc3339(v.as_str()?)
            .ok()?
            .as_millis(),
    )
}

async fn submit_one(
    http: &reqwest::Client,
    url: &str,
    queue: &str,
    i: usize,
) -> anyhow::Result<String> {
    let r = http
        .post(format!("{url}/v1/tasks"))
        .json(&task_body(queue, i))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 202, "submit refused: {}", r.status());
    let v: Value = r.json().await?;
    Ok(v["task_id"].as_str().unwrap_or_default().to_string())
}

async fn wait_result(http: &reqwest::Client, url: &str, id: &str) -> anyhow::Result<()> {
    loop {
        let r = http
            .get(format!("{url}/v1/tasks/{id}/result?wait=30"))
            .send()
            .await?;
        let status = r.status();
        let _ = r.bytes().await?;
        if status == 200 {
            return Ok(());
        }
        anyhow::ensure!(status == 202, "result: {status}");
    }
}

fn testserver_path() -> anyhow::Result<std::path::PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("baton-testserver");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing; build it first: cargo build --release -p baton -p baton-testserver",
        bin.display()
    );
    Ok(bin)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn upstream(args: &BenchArgs, calls: usize) -> anyhow::Result<Report> {
    let bin = testserver_path()?;
    let arguments = json!({"a": 2, "b": 3});
    // Direct: this process is the MCP client of its own copy of the server.
    let transport = baton_upstream::config::Transport::Stdio {
        command: bin.to_string_lossy().into(),
        args: Vec::new(),
        env: Default::default(),
        cwd: None,
    };
    let direct = baton_upstream::connection::Connection::open("direct", &transport, "bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut d = Histogram::<u64>::new(3)?;
    for i in 0..(100 + calls) {
        let t = Instant::now();
        direct
            .call_direct("add", arguments.clone())
            .await
            .map_err(anyhow::Error::msg)?;
        if i >= 100 {
            d.record(t.elapsed().as_micros() as u64)?;
        }
    }
    direct.close().await;

    // Through Baton: the same server registered on an embedded node.
    let server: baton_upstream::ServerConfig = serde_json::from_value(json!({
        "name": "bench", "command": bin.to_string_lossy()
    }))?;
    let node = Node::start(args, vec![server]).await?;
    let client = Client::new(&node.url);
    let http = http_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, s) = client
            .send(client.http().get(client.url("/v1/servers/bench")))
            .await?;
        if s["state"] == "healthy" {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the bench server did not become healthy: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = json!({"tool": "bench__add", "arguments": arguments});
    let mut b = Histogram::<u64>::new(3)?;
    for i in 0..(100 + calls) {
        let t = Instant::now();
        // Submit and wait in one request: 200 with the result once the task finished.
        let r = http
            .post(format!("{}/v1/tasks?wait=30", node.url))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        anyhow::ensure!(
            status == 200 && v["status"] == "completed",
            "call failed: {status} {v}"
        );
        if i >= 100 {
            b.record(t.elapsed().as_micros() as u64)?;
        }
    }
    node.stop().await;
    Ok(Report {
        scenario: "upstream: tool call through Baton over a direct rmcp call (stdio, trivial tool)",
        figures: vec![
            ("calls", calls as f64, ""),
            ("direct p50", ms(&d, 0.5), "ms"),
            ("direct p99", ms(&d, 0.99), "ms"),
            ("through Baton p50", ms(&b, 0.5), "ms"),
            ("through Baton p99", ms(&b, 0.99), "ms"),
            ("added p50", ms(&b, 0.5) - ms(&d, 0.5), "ms"),
            ("added p99", ms(&b, 0.99) - ms(&d, 0.99), "ms"),
        ],
    })
}

/// An embedded node with `baton-testserver` registered as `bench`, once it is healthy.
async fn node_with_testserver(args: &BenchArgs) -> anyhow::Result<Node> {
    let bin = testserver_path()?;
    let server: baton_upstream::ServerConfig = serde_json::from_value(json!({
        "name": "bench", "command": bin.to_string_lossy()
    }))?;
    let node = Node::start(args, vec![server]).await?;
    let client = Client::new(&node.url);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, s) = client
            .send(client.http().get(client.url("/v1/servers/bench")))
            .await?;
        if s["state"] == "healthy" {
            return Ok(node);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the bench server did not become healthy: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One 2026-07-28 `tools/call` of `bench__add`; checks the answer has the expected shape.
async fn mcp_call(http: &reqwest::Client, url: &str, id: usize, task: bool) -> anyhow::Result<()> {
    let caps = if task {
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}})
    } else {
        json!({})
    };
    let body = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "bench__add", "arguments": {"a": id, "b": 1},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities": caps}}
    });
    let r = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "bench__add")
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    // A quick answer is plain JSON; a slow one an SSE stream ending with the response.
    let last = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data:").map(str::trim))
        .unwrap_or(&text);
    let v: Value = serde_json::from_str(last)?;
    let ok = if task {
        v["result"]["resultType"] == "task"
    } else {
        v["result"]["structuredContent"]["sum"].as_f64() == Some(id as f64 + 1.0)
    };
    anyhow::ensure!(status == 200 && ok, "call failed: {status} {v}");
    Ok(())
}

async fn mcp(
    args: &BenchArgs,
    calls: usize,
    clients: usize,
    mode: McpMode,
) -> anyhow::Result<Report> {
    let node = node_with_testserver(args).await?;
    let client = Client::new(&node.url);
    let url = format!("{}/mcp", node.url);
    let http = http_client();
    let task = mode == McpMode::Task;
    // Warm up connections, the upstream and the store.
    for i in 0..200 {
        mcp_call(&http, &url, i, false).await?;
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients.max(1) {
        let (http, url, next) = (http.clone(), url.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= calls {
                    return anyhow::Ok(h);
                }
                let t = Instant::now();
                mcp_call(&http, &url, 1000 + i, task).await?;
                h.record(t.elapsed().as_micros() as u64)?;
            }
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    for w in workers {
        all.add(w.await??)?;
    }
    let answered = started.elapsed().as_secs_f64();
    let mut figures = vec![
        ("calls", calls as f64, ""),
        ("clients", clients as f64, ""),
        ("calls answered/s", calls as f64 / answered, "/s"),
        ("answer p50", ms(&all, 0.5), "ms"),
        ("answer p99", ms(&all, 0.99), "ms"),
    ];
    if task {
        let done = wait_done(&node, &client, "default", calls as u64).await?;
        figures.push((
            "tasks completed/s",
            calls as f64 / done.duration_since(started).as_secs_f64(),
            "/s",
        ));
    }
    node.stop().await;
    Ok(Report {
        scenario: if task {
            "mcp: tools/call through /mcp, task mode (2026-07-28 tasks extension)"
        } else {
            "mcp: tools/call through /mcp, plain mode (each call waits for its result)"
        },
        figures,
    })
}

async fn cross_node(args: &BenchArgs, tasks: usize, concurrency: usize) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.store.is_some() && args.target.is_none(),
        "cross-node needs --store postgres://… (and no --target)"
    );
    let mut node = Node::start_with(args, Vec::new(), 0).await?;
    node.add_worker(args).await?;
    let http = http_client();
    let queue = format!("bench-{:08x}", rand_u32());
    // Warm-up: connections, the worker's first claims.
    for i in 0..50 {
        let id = submit_one(&http, &node.url, &queue, i).await?;
        wait_result(&http, &node.url, &id).await?;
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (http, next, url, queue) =
            (http.clone(), next.clone(), node.url.clone(), queue.clone());
        joins.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= tasks {
                    return anyhow::Ok(ids);
                }
                let id = submit_one(&http, &url, &queue, i).await?;
                wait_result(&http, &url, &id).await?;
                ids.push(id);
            }
        }));
    }
    let mut ids = Vec::new();
    for j in joins {
        ids.extend(j.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Submit→start as the store recorded it: the API node stamped `created_at`, the
    // worker `started_at` (one clock: both run on this machine).
    let mut hist = Histogram::<u64>::new(3)?;
    for id in &ids {
        let t: Value = http
            .get(format!("{}/v1/tasks/{id}", node.url))
            .send()
            .await?
            .json()
            .await?;
        let at = |k: &str| {
            t[k].as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.timestamp_millis())
        };
        if let (Some(c), Some(s)) = (at("created_at"), at("started_at")) {
            hist.record((s - c).max(0) as u64)?;
        }
    }
    node.stop().await;
    Ok(Report {
        scenario: "cross-node: submitted to an API node, run by a worker process (PostgreSQL)",
        figures: vec![
            ("tasks", tasks as f64, ""),
            ("concurrency", concurrency as f64, ""),
            ("submit→complete per second", tasks as f64 / elapsed, "/s"),
            ("submit→start p50", hist.value_at_quantile(0.5) as f64, "ms"),
            (
                "submit→start p99",
                hist.value_at_quantile(0.99) as f64,
                "ms",
            ),
            ("submit→start max", hist.max() as f64, "ms"),
        ],
    })
}
