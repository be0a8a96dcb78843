//! Configuration.
//!
//! Sources, later ones winning: built-in defaults, the TOML file (`--config FILE` or
//! `BATON_CONFIG`), `BATON_*` environment variables (nested keys joined by `__`, e.g.
//! `BATON_WORKERS__CONCURRENCY=8`), then command-line flags. Unknown keys are errors that
//! name the key, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_core::policy::RetryPolicy;
use baton_core::submit::SubmitDefaults;
use baton_engine::EngineConfig;
use baton_store::sqlite::Synchronous;
use baton_store::{ConcurrencyLimit, ToolSelector};
use baton_upstream::ServerConfig;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The port Baton listens on by default (on 127.0.0.1).
pub const DEFAULT_PORT: u16 = 7420;

/// Environment variables with the `BATON_` prefix that are not configuration keys.
const NOT_CONFIG: &[&str] = &[
    "url",
    "config",
    "log",
    "log_format",
    "store",
    "principal",
    "token",
    "ca_cert",
    "secret_key",
    "new_secret_key",
    // Read by clients, scripts and tests (the SDKs, the CLI's registry commands), so a
    // shell that sets them for those can still start a node.
    "api_key",
    "registry_url",
    "bin",
    "testserver_bin",
    "test_pg_url",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the HTTP listener.
    pub listen: SocketAddr,
    /// Where the embedded store and the node's identity live.
    pub data_dir: PathBuf,
    /// This node's name in leases and logs (default: generated once, kept in the data dir).
    pub node_id: Option<String>,
    pub store: StoreConfig,
    pub workers: WorkersConfig,
    pub tasks: TasksConfig,
    pub http: HttpConfig,
    pub limits: LimitsConfig,
    /// Between a server's name and its tools' names (`everything__echo`).
    pub tool_separator: String,
    pub upstream: UpstreamConfig,
    /// Baton's own MCP endpoint (`/mcp`, `baton mcp`).
    pub mcp: McpConfig,
    /// Who may use the node: credentials, defaults for rate limits and quotas.
    pub auth: AuthConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// HTTPS on the listener.
    pub tls: TlsConfig,
    /// The key that encrypts the env and header values of servers registered at runtime.
    pub secrets: baton_upstream::SecretsConfig,
    /// Traces sent to an OpenTelemetry collector (off unless `otlp_endpoint` is set).
    pub telemetry: TelemetryConfig,
    /// What a call costs in US dollars when its tool reports no cost (`[costs]`), by
    /// qualified tool name (`"server__tool" = 0.002`) or server name (`server = 0.01`).
    pub costs: std::collections::BTreeMap<String, f64>,
    /// MCP servers whose tools Baton runs (`[[servers]]`).
    pub servers: Vec<ServerConfig>,
    /// Webhook deliveries (`[webhooks]`).
    pub webhooks: WebhooksConfig,
    /// The result cache (`[cache]`): which tools' results answer identical calls.
    pub cache: CacheSection,
    /// Finished tasks and workflows written to object storage before retention deletes
    /// them (`[archive]`; off unless `url` is set).
    pub archive: ArchiveConfig,
}

/// `[cache]`. Nothing is cached unless configured: a tool's entry in `[cache.tools]`
/// decides, else its server's entry there, else the server's own `cache` setting, else,
/// with `annotated = true`, its annotations (`readOnlyHint` and `idempotentHint`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// How long results answer when a setting says `true`, and for annotated tools.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// Cache tools whose annotations say they only read and are idempotent.
    pub annotated: bool,
    /// By qualified tool name (`"server__tool" = "10m"`) or server name (`server =
    /// "1h"`): a time to live, `true` (`default_ttl`) or `false` (never cached).
    pub tools: std::collections::BTreeMap<String, baton_engine::cache::CacheSettingSpec>,
}

impl Default for CacheSection {
    fn default() -> Self {
        let d = baton_engine::cache::CacheConfig::default();
        CacheSection {
            default_ttl: d.default_ttl,
            annotated: d.annotated,
            tools: Default::default(),
        }
    }
}

impl CacheSection {
    /// The engine's form; errors name the setting.
    fn parse(&self) -> Result<baton_engine::cache::CacheConfig, String> {
        if self.default_ttl < Duration::from_secs(1) {
            return Err("cache.default_ttl must be at least 1s".into());
        }
        let mut tools = std::collections::BTreeMap::new();
        for (name, spec) in &self.tools {
            let setting = spec
                .parse()
                .map_err(|m| format!("cache.tools.\"{name}\": {m}"))?;
            tools.insert(name.clone(), setting);
        }
        Ok(baton_engine::cache::CacheConfig {
            default_ttl: self.default_ttl,
            annotated: self.annotated,
            tools,
        })
    }
}

/// `[archive]`: where retention archives finished tasks and workflows before deleting
/// them (compressed JSON Lines by day; `GET` still answers for them, and `baton archive
/// export` reads them). Unset `url`: retention only deletes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// `file:///absolute/path` (a directory, created if missing) or
    /// `s3://bucket[/prefix]`.
    pub url: Option<String>,
    /// S3: an S3-compatible store's endpoint (e.g. `http://127.0.0.1:9000`; path-style
    /// requests); unset: AWS.
    pub endpoint: Option<String>,
    /// S3: the region (default: `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// S3: the access key (default: `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// S3: the secret key (default: `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
    /// S3: allow a plain `http://` endpoint.
    pub allow_http: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Networks (CIDR) deliveries may reach although they are loopback, private,
    /// link-local, CGNAT and the like, e.g. `["10.1.0.0/16"]`. Empty by default: only
    /// public addresses.
    pub allow_networks: Vec<ipnet::IpNet>,
    /// How long one attempt may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a delivery is retried before it is given up.
    #[serde(with = "humantime_serde")]
    pub retry_for: Duration,
    /// The first retry's delay (doubling, with jitter, up to an hour).
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    /// How long a rotated secret keeps signing besides the new one.
    #[serde(with = "humantime_serde")]
    pub rotation_overlap: Duration,
    /// How long finished deliveries and their attempts are kept.
    #[serde(with = "humantime_serde")]
    pub history: Duration,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        let d = baton_engine::webhooks::WebhookConfig::default();
        WebhooksConfig {
            allow_networks: d.allow_networks,
            timeout: d.timeout,
            retry_for: d.retry_for,
            retry_base: d.retry_base,
            rotation_overlap: d.rotation_overlap,
            history: d.history,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Refuse requests without a credential. Default: on, unless the node listens on a
    /// loopback address only. A node on any other address refuses to start without API
    /// keys or `[auth.jwt]` unless this is set to `false` explicitly.
    pub required: Option<bool>,
    /// How clients reach the node (e.g. `https://baton.example.com`), for OAuth protected
    /// resource metadata; default: the scheme and `Host` of each request.
    pub public_url: Option<String>,
    /// OAuth 2.0 authorization servers that issue tokens for this node (listed in the
    /// protected resource metadata MCP clients read).
    pub authorization_servers: Vec<String>,
    /// Rate of credentials that set none, e.g. `100/s` (per node). Default: none.
    pub rate_limit: Option<String>,
    /// Most active tasks of a principal whose credential sets none. Default: none.
    pub max_active: Option<u64>,
    /// JWT bearer tokens from an OpenID Connect / OAuth issuer.
    pub jwt: Option<crate::auth::jwt::JwtConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How long audit entries are kept.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: EngineConfig::default().audit_retention,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key`, the listener speaks HTTPS only. Both files are
    /// re-read when they change (certificate renewal needs no restart).
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Older name of `http.allowed_origins`, still read (the two lists are merged).
    pub allowed_origins: Vec<String>,
    /// Older name of `http.allowed_hosts`, still read (the two lists are merged).
    pub allowed_hosts: Vec<String>,
    /// How often a call waiting for its task sends keep-alive progress.
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
    /// The poll interval suggested to clients that follow tasks.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Largest accepted MCP message, in bytes.
    pub max_message_bytes: usize,
    /// How long `tools/list` waits, right after start, for configured servers still
    /// on their first connection attempt (so the first list holds their tools).
    #[serde(with = "humantime_serde")]
    pub startup_wait: Duration,
}

impl Default for McpConfig {
    fn default() -> Self {
        let s = baton_mcp::McpSettings::default();
        McpConfig {
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            keepalive: s.keepalive,
            poll_interval: Duration::from_millis(s.poll_interval_ms),
            max_message_bytes: s.max_message_bytes,
            startup_wait: s.startup_wait,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// How often each server gets an MCP-level health check.
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
    /// Consecutive failed calls or health checks that open a server's circuit.
    pub failures_to_open: u32,
    /// How long an open circuit holds the server's tasks back before trying it again.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// Whether `POST /v1/servers` may register a stdio server (a command this node runs).
    /// Default: on when authentication is off (one local user), off when it is on; HTTP
    /// servers need only the `servers:admin` scope either way.
    pub allow_runtime_commands: Option<bool>,
    /// How long a sampling or elicitation request a server sends during a call waits for
    /// a client's answer (then elicitation is cancelled, sampling refused).
    #[serde(with = "humantime_serde")]
    pub input_timeout: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        let s = baton_upstream::Settings::default();
        UpstreamConfig {
            health_interval: s.health_interval,
            failures_to_open: s.failures_to_open,
            open_for: s.open_for,
            allow_runtime_commands: None,
            input_timeout: s.input_timeout,
        }
    }
}

impl UpstreamConfig {
    pub fn settings(&self) -> baton_upstream::Settings {
        baton_upstream::Settings {
            health_interval: self.health_interval,
            failures_to_open: self.failures_to_open.max(1),
            open_for: self.open_for,
            input_timeout: self.input_timeout,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user[:password]@host[:port]/database` to share a PostgreSQL database
    /// with other nodes; unset: the embedded SQLite store in the data directory. Also
    /// `--store` or `BATON_STORE`.
    pub url: Option<String>,
    /// PostgreSQL: the schema holding Baton's tables (created if missing; default: the
    /// connection's `search_path`, normally `public`).
    pub schema: Option<String>,
    /// PostgreSQL: connections this process keeps (plus one for the change feed and one
    /// while it runs maintenance).
    pub max_connections: u32,
    /// PostgreSQL: how long a request waits for a connection (while the database is
    /// unreachable, requests fail after this with 503).
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// SQLite: `normal`: commits survive a killed process; `full`: they survive power loss too.
    pub synchronous: Synchronous,
    /// SQLite: how long a write waits for a lock another process holds on the database.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// SQLite: who folds the write-ahead log into the database: `background` (a
    /// connection of its own, off the commit path) or `commit` (SQLite's default: the
    /// commit that crosses 1,000 pages does it, and waits).
    pub wal_checkpoint: baton_store::sqlite::Checkpoint,
}

impl StoreConfig {
    /// Whether the store is a shared PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Tasks this node runs at once (0: run no tasks, serve the API only).
    pub concurrency: usize,
    /// How long a lease lasts without a heartbeat; a dead worker's task runs again after
    /// at most about this long.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Most tasks claimed per store round trip.
    pub claim_batch: usize,
    /// How often an idle node looks for due (delayed, retried) tasks.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// On shutdown, how long running tasks may take to finish before being handed back.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// After a cancel or timeout, how long a tool may take to stop.
    #[serde(with = "humantime_serde")]
    pub cancel_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksConfig {
    /// Attempts per task unless the submission says otherwise.
    pub max_attempts: u32,
    /// Per-task timeout unless the submission says otherwise (none by default).
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// First retry delay; doubles each attempt up to `retry_max_delay`, with jitter.
    #[serde(with = "humantime_serde")]
    pub retry_base_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max_delay: Duration,
    /// Cap on pending + running tasks; beyond it, submissions get 429 with Retry-After.
    pub max_active: u64,
    /// How long finished tasks are kept, counted from when they finished.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// The queue of tasks that name none.
    pub default_queue: String,
    /// Log lines kept per task (the newest).
    pub log_lines: u32,
    /// Bytes of log data kept per task (the newest lines).
    pub log_bytes: u64,
    /// Results with more JSON than this many bytes are kept in object storage (`[archive]
    /// url`, else `<data dir>/payloads` on an embedded store; on PostgreSQL without an
    /// archive they stay in the database, compressed).
    pub offload_above: usize,
    /// A result with more JSON than this many bytes fails its task (`result_too_large`).
    pub max_result_bytes: usize,
}

/// `[telemetry]`: OpenTelemetry traces over OTLP/HTTP (protobuf).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (e.g. `http://127.0.0.1:4318`; spans go to
    /// `…/v1/traces`). Unset: no traces.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans.
    pub service_name: String,
    /// Serve `GET /metrics`, and nothing else, on this address too (without
    /// credentials): for `baton worker`, which has no HTTP API, or to scrape a node on a
    /// port of its own. Unset: only the node's own listener serves `/metrics`.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "baton".into(),
            metrics_listen: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// `Origin` values accepted besides loopback origins and the node's own (e.g.
    /// `https://app.example.com`; `*` accepts any). See [`crate::guard`].
    pub allowed_origins: Vec<String>,
    /// `Host` values (with port) accepted on a loopback listener besides loopback names.
    pub allowed_hosts: Vec<String>,
    /// Most connections open at once; beyond it, new ones wait to be accepted.
    pub max_connections: usize,
    /// Longest a connection may take to send a whole request head; also how long a
    /// keep-alive connection may sit idle between requests.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest a request body may take to arrive.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Most running tasks per tool across the cluster, e.g. `{ "baton__sleep" = 4 }`.
    pub tools: BTreeMap<String, u32>,
    /// How fast tasks of a tool may start across the cluster, e.g.
    /// `{ "github__search" = "10/s" }` (`N/s`, `N/m` or `N/h`).
    pub rates: BTreeMap<String, String>,
    /// Most running tasks of one group (a principal, or a principal's `group_key`)
    /// across the cluster; none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_running_per_group: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            data_dir: PathBuf::from("baton-data"),
            node_id: None,
            store: StoreConfig::default(),
            workers: WorkersConfig::default(),
            tasks: TasksConfig::default(),
            http: HttpConfig::default(),
            limits: LimitsConfig::default(),
            tool_separator: baton_core::tool::DEFAULT_SEPARATOR.into(),
            upstream: UpstreamConfig::default(),
            mcp: McpConfig::default(),
            auth: AuthConfig::default(),
            audit: AuditConfig::default(),
            tls: TlsConfig::default(),
            secrets: baton_upstream::SecretsConfig::default(),
            costs: Default::default(),
            telemetry: TelemetryConfig::default(),
            servers: Vec::new(),
            webhooks: WebhooksConfig::default(),
            cache: CacheSection::default(),
            archive: ArchiveConfig::default(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            schema: None,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            wal_checkpoint: Default::default(),
        }
    }
}

impl Default for WorkersConfig {
    fn default() -> Self {
        let e = EngineConfig::default();
        WorkersConfig {
            concurrency: e.workers,
            lease: e.lease,
            claim_batch: e.claim_batch,
            poll_interval: e.poll_interval,
            shutdown_grace: e.shutdown_grace,
            cancel_grace: e.cancel_grace,
        }
    }
}

impl Default for TasksConfig {
    fn default() -> Self {
        let e = EngineConfig::default();
        TasksConfig {
            max_attempts: e.submit_defaults.max_attempts,
            timeout: None,
            retry_base_delay: e.retry.base,
            retry_max_delay: e.retry.max,
            max_active: e.max_active_tasks,
            retention: e.retention,
            default_queue: e.submit_defaults.queue,
            log_lines: e.log_keep.lines,
            log_bytes: e.log_keep.bytes,
            offload_above: e.payloads.offload_above,
            max_result_bytes: e.payloads.max_result_bytes,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 4 * 1024 * 1024,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

/// Command-line values that override everything else (only those given).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<WorkerOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreOverrides>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Layers defaults, `file`, the process environment and `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        Self::load_from(file, overrides, Env::prefixed("BATON_"))
    }

    fn load_from(
        file: Option<&Path>,
        overrides: &Overrides,
        env: Env,
    ) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_path_buf()));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig
            .merge(
                env.filter(|k| {
                    !NOT_CONFIG
                        .iter()
                        .any(|n| k.as_str().eq_ignore_ascii_case(n))
                })
                .split("__"),
            )
            .merge(Serialized::defaults(overrides));
        let config: Config = fig.extract().map_err(|e| {
            ConfigError::Invalid(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        config.check()?;
        Ok(config)
    }

    /// Rules serde cannot express.
    fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if let Some(url) = &self.store.url
            && !self.store.is_postgres()
        {
            let scheme = url.split("://").next().unwrap_or(url);
            return bad(format!(
                "store.url: `{scheme}://…` is not supported; use postgres://user@host/database, or leave it unset for the embedded SQLite store"
            ));
        }
        if self.store.max_connections == 0 {
            return bad("store.max_connections must be at least 1".into());
        }
        if self.workers.lease < Duration::from_secs(1) {
            return bad("workers.lease must be at least 1s".into());
        }
        if self.workers.claim_batch == 0 {
            return bad("workers.claim_batch must be at least 1".into());
        }
        if !(1..=baton_core::submit::MAX_ATTEMPTS).contains(&self.tasks.max_attempts) {
            return bad(format!(
                "tasks.max_attempts must be between 1 and {}",
                baton_core::submit::MAX_ATTEMPTS
            ));
        }
        if self.tasks.retry_base_delay > self.tasks.retry_max_delay {
            return bad("tasks.retry_base_delay must not exceed tasks.retry_max_delay".into());
        }
        if self.mcp.max_message_bytes < 1024 {
            return bad("mcp.max_message_bytes must be at least 1024".into());
        }
        if self.mcp.keepalive < Duration::from_secs(1) {
            return bad("mcp.keepalive must be at least 1s".into());
        }
        if self.http.max_body_bytes < 1024 {
            return bad("http.max_body_bytes must be at least 1024".into());
        }
        if self.http.max_connections == 0 {
            return bad("http.max_connections must be at least 1".into());
        }
        if self.http.header_read_timeout < Duration::from_millis(100)
            || self.http.body_read_timeout < Duration::from_millis(100)
        {
            return bad(
                "http.header_read_timeout and http.body_read_timeout must be at least 100ms".into(),
            );
        }
        if let Err(m) =
            baton_core::tool::validate_name("queue", &self.tasks.default_queue, &['_', '.'])
        {
            return bad(format!("tasks.default_queue: {m}"));
        }
        if self.tool_separator.is_empty()
            || self
                .tool_separator
                .chars()
                .any(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return bad(format!(
                "tool_separator `{}` must be non-empty and contain none of a-z, 0-9, - (they appear in server names)",
                self.tool_separator
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, s) in self.servers.iter().enumerate() {
            if let Err(m) = s.validate() {
                return bad(format!("servers[{i}] (`{}`): {m}", s.name));
            }
            if !names.insert(s.name.clone()) {
                return bad(format!("servers[{i}]: the name `{}` is used twice", s.name));
            }
        }
        if let Some(r) = &self.auth.rate_limit
            && let Err(m) = r.parse::<baton_core::auth::Rate>()
        {
            return bad(format!("auth.rate_limit: {m}"));
        }
        if let Some(u) = &self.auth.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return bad(format!(
                "auth.public_url `{u}` must begin with http:// or https://"
            ));
        }
        if let Some(jwt) = &self.auth.jwt
            && let Err(m) = jwt.validate()
        {
            return bad(m);
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return bad("tls: set both cert and key, or neither".into());
        }
        if self.audit.retention < Duration::from_secs(3600) {
            return bad("audit.retention must be at least 1h".into());
        }
        if let Some(ep) = &self.telemetry.otlp_endpoint
            && !(ep.starts_with("http://") || ep.starts_with("https://"))
        {
            return bad(format!(
                "telemetry.otlp_endpoint `{ep}` must be an http:// or https:// URL"
            ));
        }
        if let Err(m) = self.cache.parse() {
            return bad(m);
        }
        for (name, usd) in &self.costs {
            if !usd.is_finite() || *usd < 0.0 {
                return bad(format!(
                    "costs.\"{name}\" = {usd} must be a price of 0 or more"
                ));
            }
        }
        if !(1..=1_000_000).contains(&self.tasks.log_lines) {
            return bad(format!(
                "tasks.log_lines = {} is out of range 1..=1000000",
                self.tasks.log_lines
            ));
        }
        if self.tasks.offload_above < 4096 {
            return bad("tasks.offload_above must be at least 4096 (bytes)".into());
        }
        if self.tasks.max_result_bytes < self.tasks.offload_above {
            return bad(format!(
                "tasks.max_result_bytes = {} is less than tasks.offload_above = {}",
                self.tasks.max_result_bytes, self.tasks.offload_above
            ));
        }
        if !(1024..=(1 << 30)).contains(&self.tasks.log_bytes) {
            return bad(format!(
                "tasks.log_bytes = {} is out of range 1024..=1073741824",
                self.tasks.log_bytes
            ));
        }
        for (tool, max) in &self.limits.tools {
            if *max == 0 {
                return bad(format!("limits.tools.{tool} must be at least 1"));
            }
        }
        if self.limits.max_running_per_group == Some(0) {
            return bad("limits.max_running_per_group must be at least 1".into());
        }
        if let Some(url) = &self.archive.url
            && !(url.starts_with("file://") || url.starts_with("s3://"))
        {
            return bad(format!(
                "archive.url `{url}`: use file:///absolute/path or s3://bucket/prefix"
            ));
        }
        let a = &self.archive;
        if a.url.is_none()
            && (a.endpoint.is_some()
                || a.region.is_some()
                || a.access_key_id.is_some()
                || a.secret_access_key.is_some())
        {
            return bad("archive: set archive.url, or none of its other keys".into());
        }
        for (tool, rate) in &self.limits.rates {
            if let Err(m) = rate.parse::<baton_core::auth::Rate>() {
                return bad(format!("limits.rates.{tool}: {m}"));
            }
        }
        Ok(())
    }

    /// Whether requests must carry a credential: as set, else on unless the listener is
    /// on loopback.
    pub fn auth_required(&self) -> bool {
        self.auth
            .required
            .unwrap_or_else(|| !self.listen.ip().is_loopback())
    }

    /// Whether stdio servers may be registered at runtime (see
    /// [`UpstreamConfig::allow_runtime_commands`]).
    pub fn allow_runtime_commands(&self) -> bool {
        self.upstream
            .allow_runtime_commands
            .unwrap_or_else(|| !self.auth_required())
    }

    /// The authentication settings this configuration implies.
    pub fn auth_settings(&self) -> crate::auth::AuthSettings {
        crate::auth::AuthSettings {
            required: self.auth_required(),
            rate_limit: self.auth.rate_limit.as_deref().and_then(|r| r.parse().ok()),
            max_active: self.auth.max_active,
            public_url: self.auth.public_url.clone(),
            authorization_servers: self.auth.authorization_servers.clone(),
            tls: self.tls.cert.is_some(),
            max_body_bytes: self.http.max_body_bytes,
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("baton.db")
    }

    /// The MCP endpoint settings this configuration implies.
    pub fn mcp_settings(&self) -> baton_mcp::McpSettings {
        baton_mcp::McpSettings {
            keepalive: self.mcp.keepalive,
            poll_interval_ms: self.mcp.poll_interval.as_millis() as u64,
            task_ttl_ms: self.tasks.retention.as_millis() as u64,
            max_message_bytes: self.mcp.max_message_bytes,
            startup_wait: self.mcp.startup_wait,
        }
    }

    /// The browser guard this configuration implies (see [`crate::guard`]).
    pub fn browser_guard(&self) -> crate::guard::BrowserGuard {
        let merged = |a: &[String], b: &[String]| a.iter().chain(b).cloned().collect();
        crate::guard::BrowserGuard {
            allowed_origins: merged(&self.http.allowed_origins, &self.mcp.allowed_origins),
            allowed_hosts: merged(&self.http.allowed_hosts, &self.mcp.allowed_hosts),
            loopback_only: self.listen.ip().is_loopback(),
        }
    }

    /// The archive this configuration names, opened (nothing is read or written yet);
    /// `None` without `archive.url`.
    pub fn archive_objects(&self) -> Result<Option<baton_engine::objects::Objects>, ConfigError> {
        let Some(url) = &self.archive.url else {
            return Ok(None);
        };
        let a = &self.archive;
        baton_engine::objects::Objects::open(&baton_engine::objects::ObjectsConfig {
            url: url.clone(),
            endpoint: a.endpoint.clone(),
            region: a.region.clone(),
            access_key_id: a.access_key_id.clone(),
            secret_access_key: a.secret_access_key.clone(),
            allow_http: a.allow_http,
        })
        .map(Some)
        .map_err(|e| ConfigError::Invalid(format!("archive.url {e}")))
    }

    /// The engine settings this configuration implies.
    pub fn engine_config(&self, node_id: String) -> EngineConfig {
        let w = &self.workers;
        EngineConfig {
            node_id,
            run_workers: w.concurrency > 0,
            workers: w.concurrency.max(1),
            claim_batch: w.claim_batch,
            lease: w.lease,
            heartbeat: w.lease / 3,
            poll_interval: w.poll_interval,
            rescue_interval: (w.lease / 4).max(Duration::from_millis(100)),
            shutdown_grace: w.shutdown_grace,
            cancel_grace: w.cancel_grace,
            retry: RetryPolicy {
                base: self.tasks.retry_base_delay,
                max: self.tasks.retry_max_delay,
                jitter: 0.5,
            },
            submit_defaults: SubmitDefaults {
                queue: self.tasks.default_queue.clone(),
                max_attempts: self.tasks.max_attempts,
                timeout: self.tasks.timeout,
            },
            max_active_tasks: self.tasks.max_active,
            retention: self.tasks.retention,
            // Often enough that nothing outstays the retention by much: a tenth of it,
            // between 1 s and a minute.
            retention_interval: (self.tasks.retention / 10)
                .clamp(Duration::from_secs(1), Duration::from_secs(60)),
            log_keep: baton_core::log::LogKeep {
                lines: self.tasks.log_lines,
                bytes: self.tasks.log_bytes,
            },
            prices: self.costs.clone(),
            concurrency_limits: self
                .limits
                .tools
                .iter()
                .map(|(tool, max)| ConcurrencyLimit {
                    selector: ToolSelector::Tool(tool.clone()),
                    max: *max,
                })
                .collect(),
            rate_limits: self
                .limits
                .rates
                .iter()
                .filter_map(|(tool, rate)| {
                    Some(baton_store::RateLimit {
                        selector: ToolSelector::Tool(tool.clone()),
                        rate: rate.parse().ok()?,
                    })
                })
                .collect(),
            group_max: self.limits.max_running_per_group,
            separator: self.tool_separator.clone(),
            audit_retention: self.audit.retention,
            webhooks: baton_engine::webhooks::WebhookConfig {
                allow_networks: self.webhooks.allow_networks.clone(),
                timeout: self.webhooks.timeout,
                retry_for: self.webhooks.retry_for,
                retry_base: self.webhooks.retry_base,
                rotation_overlap: self.webhooks.rotation_overlap,
                history: self.webhooks.history,
            },
            // Checked by `validate`.
            cache: self.cache.parse().unwrap_or_default(),
            ..EngineConfig::default()
        }
    }
}

#[cfg(test)]
// figment's `Jail` closures return its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load(file: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
        Config::load_from(file, o, Env::prefixed("BATON_"))
    }

    #[test]
    fn defaults_need_no_file() {
        Jail::expect_with(|_| {
            let c = load(None, &Overrides::default()).unwrap();
            assert_eq!(c.listen.to_string(), "127.0.0.1:7420");
            assert_eq!(c.data_dir, PathBuf::from("baton-data"));
            assert_eq!(c.tasks.retention, Duration::from_secs(86400));
            Ok(())
        });
    }

    #[test]
    fn layers_file_env_flags_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "baton.toml",
                r#"
                listen = "127.0.0.1:9000"
                data_dir = "from-file"
                [workers]
                concurrency = 4
                lease = "10s"
                [limits.tools]
                "baton__sleep" = 2
                "#,
            )?;
            jail.set_env("BATON_DATA_DIR", "from-env");
            jail.set_env("BATON_WORKERS__CLAIM_BATCH", "7");
            jail.set_env("BATON_URL", "http://ignored");
            jail.set_env("BATON_BIN", "target/debug/baton");
            jail.set_env("BATON_API_KEY", "bk_ignored");
            jail.set_env("BATON_LOG", "debug");
            jail.set_env("BATON_LOG_FORMAT", "json");
            let o = Overrides {
                workers: Some(WorkerOverrides {
                    concurrency: Some(9),
                }),
                ..Default::default()
            };
            let c = load(Some(Path::new("baton.toml")), &o).unwrap();
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.data_dir, PathBuf::from("from-env"));
            assert_eq!(c.workers.claim_batch, 7);
            assert_eq!(c.workers.concurrency, 9);
            assert_eq!(c.workers.lease, Duration::from_secs(10));
            assert_eq!(c.limits.tools["baton__sleep"], 2);
            let e = c.engine_config("n".into());
            assert_eq!(e.heartbeat, Duration::from_secs(10) / 3);
            assert_eq!(e.concurrency_limits.len(), 1);
            Ok(())
        });
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        Jail::expect_with(|jail| {
            jail.create_file("a.toml", "[workers]\nconcurency = 4\n")?;
            let e = load(Some(Path::new("a.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("concurency"), "{e}");
            jail.create_file("b.toml", "[workers]\nlease = \"soon\"\n")?;
            let e = load(Some(Path::new("b.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("lease"), "{e}");
            jail.set_env("BATON_LISTN", "x");
            let e = load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("listn"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_archive_section_is_checked() {
        Jail::expect_with(|jail| {
            let c = load(None, &Overrides::default()).unwrap();
            assert_eq!(c.archive_objects().unwrap().map(|_| ()), None);
            jail.create_file("a.toml", "[archive]\nurl = \"ftp://host/x\"\n")?;
            let e = load(Some(Path::new("a.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("archive.url"), "{e}");
            jail.create_file("b.toml", "[archive]\nurl = \"s3://b/p\"\nbucket = \"x\"\n")?;
            let e = load(Some(Path::new("b.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("bucket"), "{e}");
            jail.create_file("c.toml", "[archive]\nurl = \"file://relative\"\n")?;
            let c = load(Some(Path::new("c.toml")), &Overrides::default()).unwrap();
            let e = c.archive_objects().unwrap_err().to_string();
            assert!(e.contains("archive.url"), "{e}");
            jail.set_env("BATON_ARCHIVE__URL", "s3://bucket/prefix");
            jail.set_env("BATON_ARCHIVE__ENDPOINT", "http://127.0.0.1:9");
            jail.set_env("BATON_ARCHIVE__ALLOW_HTTP", "true");
            let c = load(None, &Overrides::default()).unwrap();
            assert_eq!(c.archive.endpoint.as_deref(), Some("http://127.0.0.1:9"));
            assert!(c.archive_objects().unwrap().is_some());
            Ok(())
        });
    }

    #[test]
    fn missing_file_and_rule_violations() {
        Jail::expect_with(|jail| {
            let e = load(Some(Path::new("nope.toml")), &Overrides::default()).unwrap_err();
            assert!(matches!(e, ConfigError::MissingFile(_)));
            jail.create_file("c.toml", "[tasks]\nmax_attempts = 0\n")?;
            let e = load(Some(Path::new("c.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("tasks.max_attempts"), "{e}");
            Ok(())
        });
    }
}
