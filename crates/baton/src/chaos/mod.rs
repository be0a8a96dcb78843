//! `baton chaos`: a Jepsen-style fault-injecting history checker.
//!
//! It starts real Baton processes (this executable: one SQLite node, or PostgreSQL nodes
//! and workers on a private cluster), runs a seeded random workload against them over
//! REST while injecting faults (`kill -9` and restart, SIGSTOP past the lease,
//! PostgreSQL restarts), records every request and answer, then heals everything, lets
//! the work finish, stops the processes and checks invariants over the history and the
//! store's final state (`check.rs`). Exit code 0 with no violations, 1 with some, 2 when
//! the run itself could not be made.

mod check;
mod client;
mod cluster;
mod faults;
mod history;
mod hostile;
mod report;
mod shapes;
mod truth;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use cluster::{Cluster, PrivatePg, Setup};
use history::Recorder;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Args)]
pub struct ChaosArgs {
    /// `sqlite`: one node on its embedded store. `postgres`: nodes and workers on a
    /// private PostgreSQL cluster this run creates (initdb) and restarts.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    store: StoreKind,
    /// How long the workload and the faults run.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    duration: Duration,
    /// Seed of every random choice (printed at the start; give it to replay a run's
    /// schedule). Default: random.
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// `baton serve` nodes (PostgreSQL; SQLite runs one).
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// `baton worker` processes (PostgreSQL only).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Keep the data directories, logs, `history.jsonl` and `report.json` in DIR.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// The test server binary (default: `baton-testserver` next to this executable).
    #[arg(long, value_name = "PATH")]
    testserver: Option<PathBuf>,
    /// Where PostgreSQL's `initdb` and `pg_ctl` are (default: `pg_config --bindir`, the
    /// newest /usr/lib/postgresql/*/bin, or the PATH).
    #[arg(long, value_name = "DIR")]
    pg_bin_dir: Option<PathBuf>,
    /// The processes' lease (a pause lasts longer than this).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    lease: Duration,
    /// Mean time between two faults.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "4s")]
    fault_every: Duration,
    /// Inject no faults (a baseline run).
    #[arg(long)]
    no_faults: bool,
    /// After the workload, how long to wait for every task and workflow to finish
    /// [default: half the duration, at least 60s: a long run under faults leaves a
    /// backlog (retries backing off, a server crash-looping on the crash tool), and work
    /// still pending when this runs out is reported as unfinished].
    #[arg(long, value_parser = humantime::parse_duration)]
    settle: Option<Duration>,
}

pub async fn run(args: ChaosArgs) -> ExitCode {
    // On Ctrl-C or SIGTERM the run is dropped: its processes are killed and PostgreSQL
    // stopped.
    let outcome = tokio::select! {
        r = run_inner(args) => r,
        _ = baton_server::app::shutdown_signal() => {
            eprintln!("interrupted; stopping the processes");
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn testserver_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match given {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("baton-testserver"),
    };
    anyhow::ensure!(
        bin.exists(),
        "the test server {} is missing; build it first: cargo build -p baton-testserver \
         (or give its path with --testserver)",
        bin.display()
    );
    Ok(bin)
}

async fn run_inner(args: ChaosArgs) -> anyhow::Result<bool> {
    let wall = Instant::now();
    let seed = args.seed.unwrap_or_else(rand::random);
    let store_name = match args.store {
        StoreKind::Sqlite => "sqlite",
        StoreKind::Postgres => "postgres",
    };
    println!(
        "baton chaos: store {store_name}, seed {seed} (replay with --seed {seed}), {} of workload",
        humantime::format_duration(args.duration)
    );
    let testserver = testserver_path(args.testserver.clone())?;
    let exe = std::env::current_exe().context("finding this executable")?;
    let tmp;
    let dir: PathBuf = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.canonicalize()?
        }
        None => {
            tmp = tempfile::Builder::new().prefix("baton-chaos-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let pg = match args.store {
        StoreKind::Postgres => Some(
            PrivatePg::start(args.pg_bin_dir.as_deref(), args.keep.is_some())
                .await
                .context("starting the private PostgreSQL cluster")?,
        ),
        StoreKind::Sqlite => None,
    };
    if let Some(pg) = &pg {
        println!(
            "private PostgreSQL on port {} in {}",
            pg.port,
            pg.dir().display()
        );
    }
    let postgres = pg.is_some();
    let setup = Setup {
        dir: &dir,
        testserver: &testserver,
        store_url: pg.as_ref().map(PrivatePg::url),
        schema: postgres.then(|| "baton_chaos".to_string()),
        lease: args.lease,
        nodes: if postgres { args.nodes.max(1) } else { 1 },
        workers: if postgres { args.workers } else { 0 },
    };
    let procs = cluster::plan(&setup)?;
    let mut cluster = Cluster {
        exe: exe.clone(),
        procs,
        pg,
    };
    cluster.start().await?;
    let api = cluster.api();
    wait_ready(&api).await?;
    println!(
        "started {} in {:.1} s; data in {}",
        cluster
            .procs
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        wall.elapsed().as_secs_f64(),
        dir.display()
    );
    let fault_kinds = faults::kinds(&cluster);

    // The run: clients and faults until the duration is up, with a progress line.
    let rec = Arc::new(Recorder::new());
    let stop = CancellationToken::new();
    let workload = client::Workload::new(api.clone(), rec.clone(), seed);
    let clients = workload.spawn(args.clients.max(1), stop.clone());
    let (injector, idle) = if args.no_faults {
        (None, Some(cluster))
    } else {
        let schedule = faults::Schedule {
            seed,
            every: args.fault_every,
            lease: args.lease,
        };
        let run = faults::run(cluster, rec.clone(), schedule, stop.clone());
        (Some(tokio::spawn(run)), None)
    };
    let began = Instant::now();
    while began.elapsed() < args.duration {
        let left = args.duration.saturating_sub(began.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(5))).await;
        progress(&rec, began);
    }
    stop.cancel();
    for c in clients {
        match tokio::time::timeout(Duration::from_secs(60), c).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => anyhow::bail!("a client failed: {e}"),
            Err(_) => anyhow::bail!("a client did not stop within 60 s"),
        }
    }
    let mut cluster = match (injector, idle) {
        (Some(j), _) => j.await.context("the fault injector panicked")?,
        (None, Some(c)) => c,
        (None, None) => unreachable!("the cluster is with the injector or idle"),
    };
    println!(
        "workload over after {:.1} s; healing",
        began.elapsed().as_secs_f64()
    );
    cluster.heal().await.context("healing the cluster")?;
    let settle_for = args
        .settle
        .unwrap_or_else(|| (args.duration / 2).max(Duration::from_secs(60)));
    let settled = settle(&api, settle_for).await;
    println!(
        "{} after {:.1} s; stopping the processes",
        if settled {
            "everything finished"
        } else {
            "settle time ran out"
        },
        began.elapsed().as_secs_f64()
    );
    let killed = cluster.stop().await;
    if !killed.is_empty() {
        eprintln!(
            "chaos: {} did not stop within 30 s and were killed",
            killed.join(", ")
        );
    }

    // The final truth, straight from the store.
    let mut config = baton_server::Config {
        data_dir: dir.join("node-1"),
        ..baton_server::Config::default()
    };
    if let Some(pg) = &cluster.pg {
        config.store.url = Some(pg.url());
        config.store.schema = Some("baton_chaos".into());
    }
    let store = baton_server::app::open_store(&config)
        .await
        .context("opening the store to read the final state")?;
    let truth = truth::read(&*store, &dir.join("state")).await;
    store.close().await;
    let truth = truth?;
    let (ops, faults) = rec.take();
    if args.keep.is_some() {
        history::write_jsonl(&dir.join("history.jsonl"), &ops, &faults)?;
    }
    let invariants = check::check(&ops, &faults, &truth);
    let summary = report::Summary {
        store: store_name,
        seed,
        duration_s: args.duration.as_secs_f64(),
        wall_s: wall.elapsed().as_secs_f64(),
        ops: &ops,
        faults: &faults,
        fault_kinds: &fault_kinds,
        invariants: &invariants,
        truth: &truth,
        settled,
    };
    summary.print();
    if args.keep.is_some() {
        if let Some(pg) = cluster.pg.take() {
            let at = pg.stop_and_keep(&dir.join("postgres")).await;
            println!("PostgreSQL's data directory kept in {}", at.display());
        }
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_string_pretty(&summary.json())?,
        )?;
        println!(
            "kept in {}: history.jsonl, report.json, logs, data",
            dir.display()
        );
    }
    Ok(summary.violations() == 0)
}

fn progress(rec: &Recorder, began: Instant) {
    let (n, by, faults) = rec.counts();
    let get = |o| by.get(&o).copied().unwrap_or(0);
    let f: Vec<String> = faults
        .iter()
        .map(|(k, n)| format!("{} {n}", report::fault_key(*k)))
        .collect();
    println!(
        "[{:>5.1}s] ops {n} (ok {}, fail {}, info {}), faults {} ({})",
        began.elapsed().as_secs_f64(),
        get(history::Outcome::Ok),
        get(history::Outcome::Fail),
        get(history::Outcome::Info),
        faults.values().sum::<usize>(),
        f.join(", ")
    );
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let r = http.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// Waits (up to a minute) until every node is ready and sees the test server healthy.
async fn wait_ready(api: &[(String, String)]) -> anyhow::Result<()> {
    let http = http();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (name, url) in api {
        loop {
            let server = get_json(&http, &format!("{url}/v1/servers/{}", cluster::SERVER)).await;
            let ready = http.get(format!("{url}/readyz")).send().await;
            if server.is_some_and(|s| s["state"] == "healthy")
                && ready.is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{name} did not become ready with a healthy test server"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Waits until no task is pending or running and no workflow is running (as a node
/// reads the store), for at most `limit`.
async fn settle(api: &[(String, String)], limit: Duration) -> bool {
    let http = http();
    let deadline = Instant::now() + limit;
    let url = &api[0].1;
    while Instant::now() < deadline {
        let queues = get_json(&http, &format!("{url}/v1/queues")).await;
        let running = get_json(&http, &format!("{url}/v1/workflows?status=running&limit=1")).await;
        if let (Some(q), Some(w)) = (queues, running) {
            let active: u64 = q["queues"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|q| {
                    ["pending", "running", "input_required"]
                        .iter()
                        .map(|s| q["counts"][s].as_u64().unwrap_or(0))
                        .sum::<u64>()
                })
                .sum();
            let wf = w["workflows"].as_array().map_or(1, Vec::len);
            if active == 0 && wf == 0 {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}
