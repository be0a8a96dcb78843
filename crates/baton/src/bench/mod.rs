//! `baton bench`: the benchmark harness. Figures and the commands that produced them are
//! recorded in BENCHMARKS.md; nothing here asserts a time.
//!
//! Unless `--target URL` names a running node, each scenario starts a fresh node in this
//! process (embedded SQLite in a temporary directory, a real HTTP listener on a free
//! port) and drives it over HTTP like any client would, so the load generator and the
//! node share the machine's cores.

//!
//! Layout: `node` (the node a scenario drives, and what waits on it), `throughput`
//! (batched and one-request-per-task runs), `latency` (sequential submit→result, and
//! workflows), `upstream` (calls through Baton to a real MCP server, and the MCP front
//! door), `cluster` (two nodes on one PostgreSQL database), `analytics` (`GET
//! /v1/analytics` over a large store), `cache` (the result cache on a slow upstream tool).

mod analytics;
mod cache;
mod cluster;
mod latency;
mod node;
mod payloads;
mod throughput;
mod tool_search;
mod upstream;

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::client::Client;

use self::analytics::*;
use self::cache::*;
use self::cluster::*;
use self::latency::*;
use self::node::*;
use self::payloads::*;
use self::throughput::*;
use self::upstream::*;

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
    /// Who folds the embedded SQLite node's WAL into its database (`[store]
    /// wal_checkpoint`): `background` (the default) or `commit` (SQLite's own, on the
    /// commit path).
    #[arg(long, global = true, value_enum, default_value_t = WalCheckpoint::Background)]
    wal_checkpoint: WalCheckpoint,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Give the embedded node a rate limit on the no-op tool (`[limits.rates]
    /// "baton__echo"`, e.g. `1000000/s` to pay for the bucket without being held back).
    #[arg(long, global = true, value_name = "N/s")]
    rate_limit: Option<String>,
    /// Give the embedded node `[limits] max_running_per_group`.
    #[arg(long, global = true, value_name = "N")]
    group_max: Option<u32>,
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
enum WalCheckpoint {
    Background,
    Commit,
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
        /// Spread the tasks over this many group keys (round-robin), so that claims
        /// take turns between groups; 0: no group key.
        #[arg(long, default_value_t = 0)]
        groups: usize,
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
    /// `GET /v1/analytics` over a store filled with `tasks` tasks of the last day (written
    /// directly, not run), for every grouping; median of `runs` requests each.
    Analytics {
        #[arg(long, default_value_t = 1_000_000)]
        tasks: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// The result cache: `calls` calls of a slow upstream tool (`baton-testserver`'s
    /// `slow`, `tool_ms` each) over `distinct` argument sets from `clients` clients, on a
    /// node caching it, once bypassing the cache and once using it: the calls that
    /// reached the server, and latency. Needs `baton-testserver` next to this binary.
    Cache {
        #[arg(long, default_value_t = 2000)]
        calls: usize,
        #[arg(long, default_value_t = 200)]
        distinct: usize,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 50)]
        tool_ms: u64,
    },
    /// How large results are stored: bytes kept against the plain JSON, and the CPU of
    /// compressing and decompressing, for JSON rows, prose and a base64 image (the
    /// store's encoder alone, `rounds` times each; no node).
    Payloads {
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
    /// `tool_search` (the MCP tool and `GET /v1/tools?q=`): precision of its ranking on
    /// 44 questions over a catalog of `tools` tools (60 real-looking ones, the rest
    /// generated), and the latency of one search (the index alone; no node).
    ToolSearch {
        #[arg(long, default_value_t = 1000)]
        tools: usize,
        /// Passes over the questions for the latency figures.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
    /// Submit→complete latency as one client sees it (submit, then long-poll the result).
    Latency {
        #[arg(long, default_value_t = 2000)]
        tasks: usize,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
    },
}

pub(crate) struct Report {
    pub(crate) scenario: &'static str,
    pub(crate) figures: Vec<(&'static str, f64, &'static str)>,
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
    if let Scenario::Analytics { tasks, runs } = &args.scenario {
        return analytics(args, *tasks, (*runs).max(1)).await;
    }
    if let Scenario::Cache {
        calls,
        distinct,
        clients,
        tool_ms,
    } = &args.scenario
    {
        let shape = CacheShape {
            calls: *calls,
            distinct: *distinct,
            clients: *clients,
            tool_ms: *tool_ms,
        };
        return cache(args, shape).await;
    }
    if let Scenario::Payloads { rounds } = &args.scenario {
        return payloads(*rounds);
    }
    if let Scenario::ToolSearch { tools, rounds } = &args.scenario {
        return tool_search::run(*tools, (*rounds).max(1));
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
            groups,
        } => {
            let shape = throughput::BatchShape {
                tasks: *tasks,
                batch_size: *batch_size,
                clients: *clients,
                groups: *groups,
            };
            batch(&node, &client, &queue, shape).await?
        }
        Scenario::Http { tasks, clients } => {
            per_request(&node, &client, &queue, *tasks, *clients).await?
        }
        Scenario::Latency { tasks, concurrency } => {
            latency(&node.url, &queue, *tasks, *concurrency).await?
        }
        Scenario::Workflow { workflows, width } => {
            workflow(&node.url, &queue, *workflows, *width).await?
        }
        Scenario::CrossNode { .. }
        | Scenario::Upstream { .. }
        | Scenario::Mcp { .. }
        | Scenario::Cache { .. }
        | Scenario::Payloads { .. }
        | Scenario::ToolSearch { .. }
        | Scenario::Analytics { .. } => {
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
