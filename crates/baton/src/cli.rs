//! Command-line interface.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use baton_server::app::Mode;
use baton_server::config::{Overrides, StoreOverrides, WorkerOverrides};
use baton_server::{App, Config};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::client::{Client, ClientError};
use crate::{bench, chaos, output};

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "Durable MCP tool calls: every call becomes a task that is queued, retried, cancellable and kept across restarts.",
    after_help = "Start a node with `baton serve`, then submit work from another terminal:\n  baton submit baton__sleep '{\"ms\": 5000, \"steps\": 10}' --watch"
)]
pub struct Cli {
    /// The Baton server the client commands talk to [default: http://127.0.0.1:7420].
    /// Given to `baton mcp`, it relays to that server instead of running one in-process.
    #[arg(long, global = true, env = "BATON_URL")]
    server: Option<String>,
    /// API key or token sent as `Authorization: Bearer …` to the server.
    #[arg(long, global = true, env = "BATON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A PEM certificate to trust for an https:// --server besides the system's roots: a
    /// private CA's, or the node's own self-signed certificate.
    #[arg(long, global = true, env = "BATON_CA_CERT", value_name = "PATH")]
    ca_cert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Baton node: REST API, MCP at /mcp, workers and the store.
    Serve(ServeArgs),
    /// Run a worker: runs tasks from the shared store (PostgreSQL), no HTTP API. Scales
    /// independently of API nodes; drains on SIGTERM.
    Worker(NodeArgs),
    /// Apply the store's migrations and exit (nodes also apply them when they start).
    Migrate(NodeArgs),
    /// Submit a tool call as a task; prints the task id.
    Submit(SubmitArgs),
    /// Show a task.
    Status {
        task_id: String,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Follow a task with a live progress bar until it ends.
    Watch { task_id: String },
    /// Print what a task's tool logged (the newest lines the node keeps), oldest first.
    Logs {
        task_id: String,
        /// Keep printing lines as they come until the task ends.
        #[arg(short, long)]
        follow: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a task (a pending task at once; a running one as soon as its tool stops).
    Cancel { task_id: String },
    /// Run a failed or cancelled task again.
    Retry { task_id: String },
    /// Change a pending task's priority or when it is due.
    Priority {
        task_id: String,
        /// low, normal, high, or 0 to 100 (higher runs first).
        priority: Option<String>,
        /// Due after this long from now, e.g. 5m (or 0 for now).
        #[arg(long, value_parser = humantime::parse_duration)]
        delay: Option<Duration>,
    },
    /// List tasks, newest first.
    List(ListArgs),
    /// Show schedules, or add, inspect, pause, resume or delete one.
    Schedules {
        #[command(subcommand)]
        action: Option<ScheduleAction>,
    },
    /// Show webhooks, or add, inspect, rotate or delete one, or look at its deliveries.
    Webhooks {
        #[command(subcommand)]
        action: Option<WebhookAction>,
    },
    /// Show queues, or pause or resume one.
    Queues {
        #[command(subcommand)]
        action: Option<QueueAction>,
    },
    /// Drop the result cache's entries of a tool (or of every tool).
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// List, add or remove the MCP servers whose tools Baton runs.
    Servers {
        #[command(subcommand)]
        action: Option<ServerAction>,
    },
    /// List the tools Baton can run.
    Tools {
        #[arg(long)]
        json: bool,
    },
    /// Serve MCP on stdin/stdout for hosts that launch their servers: runs a node
    /// in-process (same configuration as `serve`, without the HTTP listener), or with
    /// --server relays to a running node's /mcp.
    Mcp(McpArgs),
    /// Run and follow workflows: DAGs of tool calls.
    Workflow {
        #[command(subcommand)]
        action: crate::workflow::WorkflowAction,
    },
    /// Make, list, rotate and revoke API keys (through the node, or offline with
    /// --data-dir/--store: how the first admin key is made).
    Keys {
        #[command(subcommand)]
        action: crate::keys::KeysAction,
    },
    /// Read the audit log: every state-changing or refused request.
    Audit(crate::keys::AuditArgs),
    /// The key that encrypts the env and header values of servers registered at runtime:
    /// make one, or re-encrypt every stored server with a new one.
    Secrets(crate::secrets::SecretsArgs),
    /// The archive of finished tasks and workflows (`[archive]`): export a time range as
    /// JSON Lines.
    Archive(crate::archive::ArchiveArgs),
    /// Measure throughput and latency (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Inject faults into real nodes under a random workload, then check invariants over
    /// the recorded history and the final state (exit code 1 on a violation).
    Chaos(chaos::ChaosArgs),
}

/// What every process that opens the store takes.
#[derive(Args)]
pub struct NodeArgs {
    /// The store: postgres://user[:password]@host[:port]/database to share one with other
    /// nodes and workers (default: the embedded SQLite store in the data directory).
    #[arg(long, env = "BATON_STORE", value_name = "URL")]
    store: Option<String>,
    /// Directory of the embedded store and this process's identity (default ./baton-data).
    #[arg(long, env = "BATON_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, env = "BATON_CONFIG")]
    config: Option<PathBuf>,
    /// Tasks this process runs at once (0: none).
    #[arg(long)]
    workers: Option<usize>,
}

impl NodeArgs {
    fn load(&self, listen: Option<std::net::SocketAddr>) -> Result<Config, ExitCode> {
        let overrides = Overrides {
            listen,
            data_dir: self.data_dir.clone(),
            workers: self.workers.map(|c| WorkerOverrides {
                concurrency: Some(c),
            }),
            store: self
                .store
                .clone()
                .map(|url| StoreOverrides { url: Some(url) }),
        };
        Config::load(self.config.as_deref(), &overrides).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })
    }
}

#[derive(Args)]
struct McpArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The principal (tenant) this stdio session acts as, with every scope: whoever
    /// launches `baton mcp` on a node's data directory or store is trusted as its operator
    /// [default: anonymous]. With --server, the node decides from --token instead (and
    /// honours this only when it asks for no credentials).
    #[arg(long, env = "BATON_PRINCIPAL")]
    principal: Option<String>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:7420).
    #[arg(long, env = "BATON_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Args)]
struct SubmitArgs {
    /// Qualified tool name, e.g. baton__sleep.
    tool: String,
    /// Arguments as a JSON object.
    arguments: Option<String>,
    /// One argument, KEY=VALUE (VALUE is parsed as JSON when it can be, else taken as a
    /// string); repeatable.
    #[arg(short = 'a', long = "arg", value_name = "KEY=VALUE")]
    args: Vec<String>,
    /// low, normal, high, or 0-100.
    #[arg(short, long)]
    priority: Option<String>,
    #[arg(short, long)]
    queue: Option<String>,
    /// Start no earlier than this from now (e.g. 30s, 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    delay: Option<Duration>,
    /// Fail the attempt if the tool runs longer than this (e.g. 10m).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    #[arg(long)]
    max_attempts: Option<u32>,
    #[arg(long)]
    idempotency_key: Option<String>,
    /// For a cached tool: use (a fresh stored result, the default), refresh (call the
    /// tool and store its result) or bypass (call it, leave the cache alone).
    #[arg(long, value_parser = ["use", "refresh", "bypass"])]
    cache: Option<String>,
    /// Keep the task at most this long from now (e.g. 10m): once finished and past it, it
    /// may be deleted before the node's retention is over.
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,
    /// Wait for the task to end and print its result.
    #[arg(long, conflicts_with = "watch")]
    wait: bool,
    /// Follow the task with a progress bar until it ends.
    #[arg(long)]
    watch: bool,
    /// Print the server's JSON answer.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ListArgs {
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    tool: Option<String>,
    #[arg(long)]
    queue: Option<String>,
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Continue after a previous page (its next_cursor).
    #[arg(long)]
    cursor: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ServerAction {
    /// Show servers with their health, protocol, tools and load.
    List {
        /// Only servers with this tag.
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Register a server (stdio: --command and its arguments after `--`; HTTP: --url).
    ///
    /// Example: baton servers add everything --command npx -- -y @modelcontextprotocol/server-everything stdio
    Add(Box<ServerAddArgs>),
    /// Stop and unregister a server added with `add`.
    Remove { name: String },
    /// Search an MCP registry for servers (by name).
    Search {
        query: String,
        /// The registry (its base URL).
        #[arg(long, env = "BATON_REGISTRY_URL", default_value = crate::registry::DEFAULT_REGISTRY)]
        registry: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ServerAddArgs {
    /// `[a-z0-9-]+`; its tools are called NAME__tool. With --from-registry, made from the
    /// registry name when left out.
    #[arg(required_unless_present = "from_registry")]
    name: Option<String>,
    /// Resolve the server from an MCP registry by its name there (e.g.
    /// io.github.acme/weather): its package runs over stdio (npx, uvx, docker, dnx), or
    /// its remote over Streamable HTTP. Values it needs come from --env, --header, --arg.
    #[arg(long, value_name = "REGISTRY_NAME", conflicts_with_all = ["command", "url"])]
    from_registry: Option<String>,
    /// The registry's base URL.
    #[arg(long, env = "BATON_REGISTRY_URL", default_value = crate::registry::DEFAULT_REGISTRY, requires = "from_registry")]
    registry: String,
    /// The version to use (default: the registry's latest).
    #[arg(long, requires = "from_registry")]
    version: Option<String>,
    /// Prefer a package run locally or the remote endpoint, when it offers both.
    #[arg(long, value_enum, requires = "from_registry")]
    prefer: Option<crate::registry::Prefer>,
    /// Only a package of this registry type (npm, pypi, oci, nuget).
    #[arg(long, requires = "from_registry")]
    package_type: Option<String>,
    /// A package or runtime argument the server.json leaves to you, NAME=VALUE (by its
    /// name, e.g. --port, or its value hint); repeatable.
    #[arg(long = "arg", value_name = "NAME=VALUE", requires = "from_registry")]
    registry_args: Vec<String>,
    /// Print the server Baton would add, and add nothing.
    #[arg(long, requires = "from_registry")]
    dry_run: bool,
    /// Program to run (stdio).
    #[arg(long, conflicts_with = "url")]
    command: Option<String>,
    /// Arguments of the program.
    #[arg(last = true)]
    args: Vec<String>,
    /// Environment of the program, KEY=VALUE; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// MCP endpoint (Streamable HTTP).
    #[arg(long)]
    url: Option<String>,
    /// HTTP header, NAME=VALUE; repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    max_concurrency: Option<u32>,
    /// Longest a call may take, e.g. 10m.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

#[derive(Subcommand)]
enum WebhookAction {
    /// POST events to a URL, signed (the secret is printed once).
    Add {
        url: String,
        /// An event type or wildcard (task.*, workflow.*, server.*); repeatable.
        #[arg(short, long = "event", required = true)]
        events: Vec<String>,
        /// Only tasks of this tool.
        #[arg(long)]
        tool: Option<String>,
        /// Only tasks of this queue.
        #[arg(short, long)]
        queue: Option<String>,
        /// Only this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Your own secret (whsec_ and base64); generated when absent.
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    Show {
        id: String,
    },
    /// A new secret (printed once); the old one keeps signing for the overlap.
    Rotate {
        id: String,
        /// How long the old secret keeps signing, e.g. 1h (default a day).
        #[arg(long, value_parser = humantime::parse_duration)]
        overlap: Option<Duration>,
    },
    /// Its deliveries, newest first.
    Deliveries {
        id: String,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Send a delivery again now.
    Redeliver {
        id: String,
        delivery_id: String,
    },
    /// Delete it and its delivery history.
    Rm {
        id: String,
    },
}

#[derive(Subcommand)]
enum ScheduleAction {
    /// Submit a tool call (or start a workflow) on a cron.
    Add {
        name: String,
        /// Five fields (minute hour day month weekday) or six with seconds first, quoted.
        #[arg(long)]
        cron: String,
        /// Qualified tool name, e.g. baton__echo.
        #[arg(
            long,
            required_unless_present = "workflow",
            conflicts_with = "workflow"
        )]
        tool: Option<String>,
        /// Start this workflow (a YAML or JSON definition file) on each tick instead.
        #[arg(long, value_name = "FILE")]
        workflow: Option<std::path::PathBuf>,
        /// One argument, KEY=VALUE (VALUE is JSON when it parses as JSON); repeatable.
        #[arg(short = 'a', long = "arg", value_name = "KEY=VALUE")]
        args: Vec<String>,
        /// IANA time zone of the cron (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        #[arg(short, long)]
        queue: Option<String>,
        /// skip a tick while the last run is still open (default: allow).
        #[arg(long)]
        overlap: Option<String>,
        /// latest: after downtime, fire the latest missed tick (default: none).
        #[arg(long)]
        catch_up: Option<String>,
    },
    /// A schedule and its next fire times.
    Show {
        name: String,
    },
    /// The ticks it fired and their tasks, newest first.
    Runs {
        name: String,
    },
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    /// Delete it (its tasks stay).
    Rm {
        name: String,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Cached results of the tool stop answering calls: the next identical call runs.
    Drop {
        /// The qualified tool name, e.g. server__tool.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        tool: Option<String>,
        /// Every tool's entries.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// Stop starting tasks from a queue (running ones finish).
    Pause { name: String },
    /// Start tasks from a queue again.
    Resume { name: String },
    /// Cancel a queue's open tasks (pending ones unless `--status` says otherwise) and the
    /// tasks they created.
    Clear {
        name: String,
        /// Which tasks: pending, running, input_required (repeat for several).
        #[arg(long, default_value = "pending")]
        status: Vec<String>,
        /// Cancel them: without it, nothing is done.
        #[arg(long)]
        yes: bool,
    },
}

const DEFAULT_URL: &str = "http://127.0.0.1:7420";

pub async fn run(cli: Cli) -> ExitCode {
    let server = cli
        .server
        .clone()
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let ca_pem = match &cli.ca_cert {
        Some(path) => match std::fs::read(path) {
            Ok(pem) => Some(pem),
            Err(e) => {
                eprintln!("error: --ca-cert {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let client = match Client::connect(&server, cli.token.as_deref(), ca_pem.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve(args) => return serve(args).await,
        Command::Worker(args) => return worker(args).await,
        Command::Migrate(args) => return migrate(args).await,
        Command::Mcp(args) => return mcp(args, cli.server, cli.token, ca_pem).await,
        Command::Bench(args) => return bench::run(args, &server).await,
        Command::Chaos(args) => return chaos::run(args).await,
        Command::Submit(args) => submit(&client, args).await,
        Command::Status { task_id, json } => status(&client, &task_id, json).await,
        Command::Watch { task_id } => output::watch(&client, &task_id).await,
        Command::Logs {
            task_id,
            follow,
            json,
        } => logs(&client, &task_id, follow, json).await,
        Command::Cancel { task_id } => client.cancel(&task_id).await.map(|v| {
            println!(
                "{}",
                v["message"].as_str().unwrap_or("cancellation requested")
            );
            ExitCode::SUCCESS
        }),
        Command::Priority {
            task_id,
            priority,
            delay,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(p) = priority {
                body.insert(
                    "priority".into(),
                    p.parse::<u64>().map_or(Value::String(p), Value::from),
                );
            }
            if let Some(d) = delay {
                body.insert("delay_ms".into(), Value::from(d.as_millis() as u64));
            }
            client
                .patch_json(&format!("/v1/tasks/{task_id}"), &Value::Object(body))
                .await
                .map(|v| {
                    println!(
                        "task {task_id}: priority {}, due {}",
                        v["priority"],
                        v["run_at"].as_str().unwrap_or("now")
                    );
                    ExitCode::SUCCESS
                })
        }
        Command::Retry { task_id } => client.retry(&task_id).await.map(|v| {
            println!(
                "task {} queued again",
                v["task_id"].as_str().unwrap_or(&task_id)
            );
            ExitCode::SUCCESS
        }),
        Command::List(args) => list(&client, args).await,
        Command::Queues { action } => queues(&client, action).await,
        Command::Cache { action } => cache(&client, action).await,
        Command::Schedules { action } => schedules(&client, action).await,
        Command::Webhooks { action } => webhooks(&client, action).await,
        Command::Servers { action } => servers(&client, action).await,
        Command::Tools { json } => tools(&client, json).await,
        Command::Workflow { action } => crate::workflow::run(&client, action).await,
        Command::Keys { action } => crate::keys::run(&client, action).await,
        Command::Audit(args) => crate::keys::audit(&client, args).await,
        Command::Secrets(args) => return crate::secrets::run(args).await,
        Command::Archive(args) => return crate::archive::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                ClientError::Connect { .. } | ClientError::Usage(_) => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}

fn init_logging() {
    crate::telemetry::init_logging();
}

async fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.node.load(args.listen) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let telemetry = crate::telemetry::init(&config.telemetry);
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = app.local_addr();
    tracing::info!(
        data_dir = %app.config().data_dir.display(),
        node = app.node_id(),
        store = app.engine().backend(),
        workers = app.config().workers.concurrency,
        "Baton is ready"
    );
    // One line on stdout, so scripts (and tests using port 0) learn the address.
    let scheme = if app.config().tls.cert.is_some() {
        "https"
    } else {
        "http"
    };
    println!("baton listening on {scheme}://{addr}");
    let code = run_app(app, baton_server::app::shutdown_signal()).await;
    telemetry.shutdown().await;
    code
}

async fn worker(args: NodeArgs) -> ExitCode {
    let config = match args.load(None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let telemetry = crate::telemetry::init(&config.telemetry);
    if config.workers.concurrency == 0 {
        eprintln!("error: a worker with --workers 0 would run nothing");
        return ExitCode::from(2);
    }
    if !config.store.is_postgres() {
        tracing::warn!(
            "this worker uses the embedded SQLite store of its own data directory; \
             to work for other nodes, give it their PostgreSQL store (--store postgres://…)"
        );
    }
    let app = match App::build_with(config, Mode::Worker).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        node = app.node_id(),
        store = app.engine().backend(),
        workers = app.config().workers.concurrency,
        "Baton worker is ready"
    );
    // One line on stdout, so scripts and supervisors know it is up.
    println!("baton worker {} ready", app.node_id());
    let code = run_app(app, baton_server::app::shutdown_signal()).await;
    telemetry.shutdown().await;
    code
}

async fn migrate(args: NodeArgs) -> ExitCode {
    init_logging();
    let config = match args.load(None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !config.store.is_postgres()
        && let Err(e) = std::fs::create_dir_all(&config.data_dir)
    {
        eprintln!(
            "error: cannot use data directory {}: {e}",
            config.data_dir.display()
        );
        return ExitCode::from(1);
    }
    match baton_server::app::open_store(&config).await {
        Ok(store) => {
            store.close().await;
            if config.store.is_postgres() {
                println!("the PostgreSQL store is up to date");
            } else {
                println!(
                    "the SQLite store {} is up to date",
                    config.database_path().display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn mcp(
    args: McpArgs,
    server: Option<String>,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
) -> ExitCode {
    init_logging();
    if let Some(p) = &args.principal
        && let Err(e) = baton_core::principal::from_header(Some(p.as_bytes()))
    {
        eprintln!("error: --principal: {e}");
        return ExitCode::from(2);
    }
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    if let Some(url) = server {
        tracing::info!(server = %url, "relaying MCP on stdio to a running Baton");
        return match baton_mcp::stdio::bridge(
            url,
            args.principal,
            token,
            ca_pem,
            input,
            tokio::io::stdout(),
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        };
    }
    let config = match args.node.load(None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let app = match App::build_with(config, Mode::Stdio).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        data_dir = %app.config().data_dir.display(),
        node = app.node_id(),
        "Baton serves MCP on stdio"
    );
    let principal = args
        .principal
        .unwrap_or_else(|| baton_core::principal::ANONYMOUS.to_string());
    let session = baton_mcp::stdio::serve(app.mcp().clone(), principal, input, tokio::io::stdout());
    // The session ends when the client closes stdin (or on a signal); then the node
    // drains like `serve` does.
    let stopped = async move {
        tokio::select! {
            _ = session => {}
            _ = baton_server::app::shutdown_signal() => {}
        }
    };
    run_app(app, stopped).await
}

/// Runs a started process until `stop` resolves, then drains it.
async fn run_app(
    app: App,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> ExitCode {
    match app.run_until_stopped(stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn parse_kv(kv: &str) -> Result<(String, Value), ClientError> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| ClientError::Usage(format!("--arg `{kv}` is not KEY=VALUE")))?;
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

async fn submit(client: &Client, a: SubmitArgs) -> Result<ExitCode, ClientError> {
    let mut arguments = match &a.arguments {
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(ClientError::Usage("ARGUMENTS must be a JSON object".into())),
            Err(e) => {
                return Err(ClientError::Usage(format!(
                    "ARGUMENTS is not valid JSON: {e}"
                )));
            }
        },
        None => Map::new(),
    };
    for kv in &a.args {
        let (k, v) = parse_kv(kv)?;
        arguments.insert(k, v);
    }
    let mut body = json!({"tool": a.tool, "arguments": arguments});
    let priority = a.priority.as_deref().map(|p| match p.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(p),
    });
    for (key, value) in [
        ("priority", priority),
        ("queue", a.queue.map(Value::from)),
        ("delay_ms", a.delay.map(|d| json!(d.as_millis() as u64))),
        ("timeout_ms", a.timeout.map(|d| json!(d.as_millis() as u64))),
        ("max_attempts", a.max_attempts.map(Value::from)),
        ("idempotency_key", a.idempotency_key.map(Value::from)),
        ("ttl_ms", a.ttl.map(|d| json!(d.as_millis() as u64))),
        ("cache", a.cache.map(Value::from)),
    ] {
        if let Some(v) = value {
            body[key] = v;
        }
    }
    let accepted = client.submit(&body).await?;
    let id = accepted["task_id"].as_str().unwrap_or_default().to_string();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&accepted).unwrap_or_default()
        );
    } else if !a.wait && !a.watch {
        println!("{id}");
    }
    if a.watch {
        eprintln!("task {id}");
        return output::watch(client, &id).await;
    }
    if a.wait {
        loop {
            let (done, view) = client.result(&id, 60).await?;
            if done {
                return Ok(output::print_result(&view));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn logs(
    client: &Client,
    id: &str,
    follow: bool,
    json: bool,
) -> Result<ExitCode, ClientError> {
    let mut after = 0i64;
    loop {
        let wait = if follow { 10 } else { 0 };
        let page = client
            .get(&format!("/v1/tasks/{id}/logs?after={after}&wait={wait}"))
            .await?;
        let lines = page["logs"].as_array().cloned().unwrap_or_default();
        for line in &lines {
            if json {
                println!("{line}");
            } else {
                println!("{}", output::log_line(line));
            }
        }
        after = page["next_after"].as_i64().unwrap_or(after);
        let more = lines.len() >= baton_engine::page::MAX_PAGE as usize;
        if page["finished"].as_bool() == Some(true) || (!follow && !more) {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

async fn status(client: &Client, id: &str, json: bool) -> Result<ExitCode, ClientError> {
    let task = client.task(id).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&task).unwrap_or_default()
        );
    } else {
        output::print_task(&task);
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(client: &Client, a: ListArgs) -> Result<ExitCode, ClientError> {
    let mut query: Vec<(&str, String)> = vec![("limit", a.limit.to_string())];
    for (k, v) in [
        ("status", a.status),
        ("tool", a.tool),
        ("queue", a.queue),
        ("cursor", a.cursor),
    ] {
        if let Some(v) = v {
            query.push((k, v));
        }
    }
    let page = client.list(&query).await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&page).unwrap_or_default()
        );
    } else {
        output::print_task_table(&page);
    }
    Ok(ExitCode::SUCCESS)
}

async fn webhooks(client: &Client, action: Option<WebhookAction>) -> Result<ExitCode, ClientError> {
    let pretty = |v: &Value| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    match action {
        None => {
            let list = client.get("/v1/webhooks").await?;
            for w in list["webhooks"].as_array().into_iter().flatten() {
                let events: Vec<&str> = w["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{:<36} {:<40} {}",
                    w["id"].as_str().unwrap_or_default(),
                    w["url"].as_str().unwrap_or_default(),
                    events.join(","),
                );
            }
        }
        Some(WebhookAction::Add {
            url,
            events,
            tool,
            queue,
            workflow,
            secret,
            description,
        }) => {
            let mut body = json!({"url": url, "events": events});
            for (key, value) in [
                ("tool", tool),
                ("queue", queue),
                ("workflow", workflow),
                ("secret", secret),
                ("description", description),
            ] {
                if let Some(v) = value {
                    body[key] = json!(v);
                }
            }
            pretty(&client.post_json("/v1/webhooks", &body).await?);
        }
        Some(WebhookAction::Show { id }) => {
            pretty(&client.get(&format!("/v1/webhooks/{id}")).await?)
        }
        Some(WebhookAction::Rotate { id, overlap }) => {
            let mut body = json!({});
            if let Some(o) = overlap {
                body["overlap_seconds"] = json!(o.as_secs());
            }
            pretty(
                &client
                    .post_json(&format!("/v1/webhooks/{id}/rotate"), &body)
                    .await?,
            );
        }
        Some(WebhookAction::Deliveries { id, limit }) => {
            let path = match limit {
                Some(n) => format!("/v1/webhooks/{id}/deliveries?limit={n}"),
                None => format!("/v1/webhooks/{id}/deliveries"),
            };
            let page = client.get(&path).await?;
            for d in page["deliveries"].as_array().into_iter().flatten() {
                println!(
                    "{:<48} {:<20} {:<9} attempts {:<3} last {} {}",
                    d["id"].as_str().unwrap_or_default(),
                    d["event_type"].as_str().unwrap_or_default(),
                    d["status"].as_str().unwrap_or_default(),
                    d["attempts"],
                    d["last_status_code"]
                        .as_u64()
                        .map_or("-".to_string(), |c| c.to_string()),
                    d["last_error"].as_str().unwrap_or_default(),
                );
            }
        }
        Some(WebhookAction::Redeliver { id, delivery_id }) => {
            client
                .post(&format!(
                    "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver"
                ))
                .await?;
            println!("delivery {delivery_id} is due again");
        }
        Some(WebhookAction::Rm { id }) => {
            client.delete(&format!("/v1/webhooks/{id}")).await?;
            println!("webhook {id} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn schedules(
    client: &Client,
    action: Option<ScheduleAction>,
) -> Result<ExitCode, ClientError> {
    let pretty = |v: &Value| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    match action {
        None => {
            let list = client.get("/v1/schedules").await?;
            for s in list["schedules"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<20} {:<10} next {}",
                    s["name"].as_str().unwrap_or_default(),
                    s["cron"].as_str().unwrap_or_default(),
                    if s["paused"] == true {
                        "paused"
                    } else {
                        "active"
                    },
                    s["next_runs"][0].as_str().unwrap_or("-"),
                );
            }
        }
        Some(ScheduleAction::Add {
            name,
            cron,
            tool,
            workflow,
            args,
            timezone,
            queue,
            overlap,
            catch_up,
        }) => {
            let mut arguments = Map::new();
            for kv in &args {
                let (k, v) = parse_kv(kv)?;
                arguments.insert(k, v);
            }
            let mut body = json!({"name": name, "cron": cron});
            if let Some(file) = workflow {
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    ClientError::Usage(format!("cannot read {}: {e}", file.display()))
                })?;
                body["workflow"] = json!(text);
            } else {
                let mut task = json!({"tool": tool, "arguments": arguments});
                if let Some(q) = queue {
                    task["queue"] = json!(q);
                }
                body["task"] = task;
            }
            for (key, value) in [
                ("timezone", timezone),
                ("overlap", overlap),
                ("catch_up", catch_up),
            ] {
                if let Some(v) = value {
                    body[key] = json!(v);
                }
            }
            pretty(&client.post_json("/v1/schedules", &body).await?);
        }
        Some(ScheduleAction::Show { name }) => {
            pretty(&client.get(&format!("/v1/schedules/{name}")).await?)
        }
        Some(ScheduleAction::Runs { name }) => {
            let runs = client.get(&format!("/v1/schedules/{name}/runs")).await?;
            for r in runs["runs"].as_array().into_iter().flatten() {
                println!(
                    "{}  {}",
                    r["tick_at"].as_str().unwrap_or_default(),
                    r["task_id"]
                        .as_str()
                        .or(r["workflow_id"].as_str())
                        .unwrap_or_default()
                );
            }
        }
        Some(ScheduleAction::Pause { name }) => {
            client.post(&format!("/v1/schedules/{name}/pause")).await?;
            println!("schedule {name} paused");
        }
        Some(ScheduleAction::Resume { name }) => {
            client.post(&format!("/v1/schedules/{name}/resume")).await?;
            println!("schedule {name} resumed");
        }
        Some(ScheduleAction::Rm { name }) => {
            client.delete(&format!("/v1/schedules/{name}")).await?;
            println!("schedule {name} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn cache(client: &Client, action: CacheAction) -> Result<ExitCode, ClientError> {
    let CacheAction::Drop { tool, .. } = action;
    let path = match &tool {
        Some(t)
            if t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) =>
        {
            format!("/v1/cache?tool={t}")
        }
        Some(t) => return Err(ClientError::Usage(format!("`{t}` is not a tool name"))),
        None => "/v1/cache".to_string(),
    };
    let r = client.delete(&path).await?;
    println!(
        "{}: {} cached results dropped",
        tool.as_deref().unwrap_or("every tool"),
        r["dropped"]
    );
    Ok(ExitCode::SUCCESS)
}

async fn queues(client: &Client, action: Option<QueueAction>) -> Result<ExitCode, ClientError> {
    match action {
        Some(QueueAction::Pause { name }) => {
            client.queue_action(&name, "pause").await?;
            println!("queue {name} paused");
        }
        Some(QueueAction::Resume { name }) => {
            client.queue_action(&name, "resume").await?;
            println!("queue {name} resumed");
        }
        Some(QueueAction::Clear { name, status, yes }) => {
            if !yes {
                eprintln!(
                    "this cancels the {} tasks of queue {name}; run again with --yes to do it",
                    status.join(", ")
                );
                return Ok(ExitCode::from(2));
            }
            let body = serde_json::json!({"status": status, "confirm": true});
            let r = client
                .post_json(&format!("/v1/queues/{name}/clear"), &body)
                .await?;
            println!("queue {name}: {} tasks cancelled", r["cancelled"]);
        }
        None => output::print_queues(&client.queues().await?),
    }
    Ok(ExitCode::SUCCESS)
}

async fn tools(client: &Client, json: bool) -> Result<ExitCode, ClientError> {
    let tools = client.tools().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&tools).unwrap_or_default()
        );
    } else {
        for t in tools["tools"].as_array().into_iter().flatten() {
            println!(
                "{:<40} {}",
                t["name"].as_str().unwrap_or(""),
                t["description"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn pairs(kind: &str, items: &[String]) -> Result<serde_json::Map<String, Value>, ClientError> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .ok_or_else(|| ClientError::Usage(format!("--{kind} `{kv}` is not KEY=VALUE")))
        })
        .collect()
}

/// What `servers add` says of a server besides how it runs: tags, group, limits.
fn placement(body: &mut Value, a: &ServerAddArgs) {
    if !a.tags.is_empty() {
        body["tags"] = json!(a.tags);
    }
    if let Some(g) = &a.group {
        body["group"] = json!(g);
    }
    if let Some(m) = a.max_concurrency {
        body["max_concurrency"] = json!(m);
    }
    if let Some(t) = a.timeout {
        body["timeout_ms"] = json!(t.as_millis() as u64);
    }
}

/// `baton servers add --from-registry`: fetch the server.json, turn it into a server,
/// add it (or, with --dry-run, print it).
async fn add_from_registry(client: &Client, a: ServerAddArgs) -> Result<ExitCode, ClientError> {
    let registry_name = a.from_registry.as_deref().unwrap_or_default();
    let server = crate::registry::fetch(
        client.http(),
        &a.registry,
        registry_name,
        a.version.as_deref(),
    )
    .await?;
    let inputs = crate::registry::Inputs {
        env: pairs("env", &a.env)?
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect(),
        headers: pairs("header", &a.headers)?
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect(),
        args: pairs("arg", &a.registry_args)?
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect(),
        package_type: a.package_type.clone(),
        prefer: a.prefer,
    };
    let resolved = crate::registry::resolve(&server, &inputs).map_err(ClientError::Usage)?;
    let mut body = Value::Object(resolved.spec.clone());
    body["name"] = json!(a.name.clone().unwrap_or(resolved.name.clone()));
    placement(&mut body, &a);
    eprintln!("{}: {}", resolved.source, resolved.how);
    if a.dry_run {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("connecting to {} …", body["name"].as_str().unwrap_or(""));
    let (_, s) = client
        .send(client.http().post(client.url("/v1/servers")).json(&body))
        .await?;
    println!(
        "server {} added from {}: {} ({} tools, protocol {})",
        s["name"].as_str().unwrap_or(""),
        resolved.source,
        s["state"].as_str().unwrap_or(""),
        s["tool_count"],
        s["protocol_version"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

async fn servers(client: &Client, action: Option<ServerAction>) -> Result<ExitCode, ClientError> {
    match action.unwrap_or(ServerAction::List {
        tag: None,
        json: false,
    }) {
        ServerAction::List { tag, json } => {
            let mut path = "/v1/servers".to_string();
            if let Some(t) = tag {
                path = format!("{path}?tag={t}");
            }
            let (_, body) = client.send(client.http().get(client.url(&path))).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&body).unwrap_or_default()
                );
            } else {
                output::print_servers(&body);
            }
        }
        ServerAction::Search {
            query,
            registry,
            limit,
            json,
        } => {
            let found = crate::registry::search(client.http(), &registry, &query, limit).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&found).unwrap_or_default()
                );
            } else if found.is_empty() {
                println!("no server in {registry} matches {query:?}");
            } else {
                output::print_registry_servers(&found);
            }
        }
        ServerAction::Add(a) if a.from_registry.is_some() => {
            return add_from_registry(client, *a).await;
        }
        ServerAction::Add(a) => {
            let a = *a;
            let mut body = json!({"name": a.name});
            if let Some(c) = &a.command {
                body["command"] = json!(c);
                body["args"] = json!(a.args);
            } else if !a.args.is_empty() {
                return Err(ClientError::Usage(
                    "arguments after `--` need --command".into(),
                ));
            }
            if let Some(u) = &a.url {
                body["url"] = json!(u);
            }
            if !a.env.is_empty() {
                body["env"] = Value::Object(pairs("env", &a.env)?);
            }
            if !a.headers.is_empty() {
                body["headers"] = Value::Object(pairs("header", &a.headers)?);
            }
            placement(&mut body, &a);
            eprintln!("connecting to {} …", body["name"].as_str().unwrap_or(""));
            let (_, s) = client
                .send(client.http().post(client.url("/v1/servers")).json(&body))
                .await?;
            println!(
                "server {} added: {} ({} tools, protocol {})",
                s["name"].as_str().unwrap_or(""),
                s["state"].as_str().unwrap_or(""),
                s["tool_count"],
                s["protocol_version"].as_str().unwrap_or("?")
            );
        }
        ServerAction::Remove { name } => {
            client
                .send(
                    client
                        .http()
                        .delete(client.url(&format!("/v1/servers/{name}"))),
                )
                .await?;
            println!("server {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
