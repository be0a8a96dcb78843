//! The node a scenario drives (in process, or a running one), and what waits on it.

use std::time::{Duration, Instant};

use baton_server::App;
use baton_server::config::Config;
use baton_store::sqlite::Synchronous;
use serde_json::{Value, json};

use crate::client::Client;

use super::*;

/// A fresh PostgreSQL schema a benchmark runs in: the database URL and the schema's name.
pub(crate) type Schema = Option<(String, String)>;

pub(crate) struct Node {
    pub(crate) url: String,
    /// The worker of a cross-node benchmark.
    pub(crate) worker: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    /// The fresh PostgreSQL schema the benchmark runs in (dropped by `stop`).
    pub(crate) schema: Schema,
    /// Fresh and used by this benchmark alone, so its active-task count tells when
    /// everything has finished.
    pub(crate) embedded: bool,
    pub(crate) stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) handle: Option<tokio::task::JoinHandle<()>>,
    pub(crate) _dir: Option<tempfile::TempDir>,
}

impl Node {
    pub(crate) async fn start(
        args: &BenchArgs,
        servers: Vec<baton_upstream::ServerConfig>,
    ) -> anyhow::Result<Node> {
        Node::start_with(args, servers, args.workers).await
    }

    pub(crate) async fn start_with(
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
        let (config, schema, dir) = Node::config(args, servers, workers)?;
        Node::serve(config, schema, dir).await
    }

    /// The configuration of an embedded node for `args` (in a fresh temporary directory,
    /// and a fresh PostgreSQL schema with `--store`).
    pub(crate) fn config(
        args: &BenchArgs,
        servers: Vec<baton_upstream::ServerConfig>,
        workers: usize,
    ) -> anyhow::Result<(Config, Schema, tempfile::TempDir)> {
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
        if let Some(rate) = &args.rate_limit {
            rate.parse::<baton_core::auth::Rate>()
                .map_err(|m| anyhow::anyhow!("--rate-limit: {m}"))?;
            config
                .limits
                .rates
                .insert("baton__echo".into(), rate.clone());
        }
        config.limits.max_running_per_group = args.group_max;
        config.workers.claim_batch = 512;
        config.tasks.max_active = 10_000_000;
        config.http.max_body_bytes = 64 * 1024 * 1024;
        config.servers = servers;
        config.store.synchronous = match args.sync {
            Sync::Normal => Synchronous::Normal,
            Sync::Full => Synchronous::Full,
        };
        config.store.wal_checkpoint = match args.wal_checkpoint {
            WalCheckpoint::Background => baton_store::sqlite::Checkpoint::Background,
            WalCheckpoint::Commit => baton_store::sqlite::Checkpoint::Commit,
        };
        Ok((config, schema, dir))
    }

    /// Starts a node on `config` in this process; `stop` ends it and drops `schema`.
    pub(crate) async fn serve(
        config: Config,
        schema: Schema,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Node> {
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
    pub(crate) async fn add_worker(&mut self, args: &BenchArgs) -> anyhow::Result<()> {
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

    pub(crate) async fn stop(mut self) {
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

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client")
}

pub(crate) fn task_body(queue: &str, i: usize) -> Value {
    json!({"tool": "baton__echo", "arguments": {"i": i}, "queue": queue})
}

/// Waits until `n` tasks of `queue` are final; returns when that was first seen.
pub(crate) async fn wait_done(
    node: &Node,
    client: &Client,
    queue: &str,
    n: u64,
) -> anyhow::Result<Instant> {
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
