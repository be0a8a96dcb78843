//! One upstream server: its supervisor (connect, reconnect with backoff, health checks,
//! circuit breaker, tool list refresh) and the tool provider its tools run through.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use baton_core::Timestamp;
use baton_engine::tools::{ToolCallError, ToolContext, ToolInfo, ToolOutput, ToolProvider};
use baton_store::{ConcurrencyLimit, ToolSelector};
use rmcp::model::SubscriptionFilter;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::call;
use crate::config::{ServerConfig, Transport};
use crate::connection::{Connection, UpstreamTool};
use crate::secrets::Secrets;

/// Where a server's definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `[[servers]]` in the config file (not stored; not removable through the API).
    Config,
    /// `POST /v1/servers` (stored; survives restarts).
    Api,
}

/// Supervision settings shared by all servers.
#[derive(Debug, Clone)]
pub struct Settings {
    pub health_interval: Duration,
    /// Consecutive failures (calls or health checks) that open the circuit.
    pub failures_to_open: u32,
    /// How long an open circuit holds calls back before the server is tried again.
    pub open_for: Duration,
    pub max_backoff: Duration,
    /// How long a request a server sends during a plain call (sampling, elicitation)
    /// waits for a client's answer.
    pub input_timeout: Duration,
    /// Where servers' resource and prompt changes go (set by [`crate::Upstreams`]).
    pub notices: Option<crate::connection::Notices>,
    /// Where a server's health changes go (set by [`crate::Upstreams`]).
    pub health: Option<tokio::sync::broadcast::Sender<HealthChange>>,
    /// Where tools whose input schema changed go (set by [`crate::Upstreams`]): their
    /// cached results answer no more.
    pub schema_changes: Option<tokio::sync::broadcast::Sender<SchemaChange>>,
}

/// A tool whose input schema changed (or that went away) when its server listed its
/// tools again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    /// The name its tools are qualified with (the server's, or its group's).
    pub server: String,
    pub tool: String,
}

/// A server this process saw come up (connected, tools listed) or go down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChange {
    pub server: String,
    pub up: bool,
    /// Why it is down.
    pub error: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            health_interval: Duration::from_secs(15),
            failures_to_open: 3,
            open_for: Duration::from_secs(30),
            max_backoff: Duration::from_secs(60),
            input_timeout: crate::connection::INPUT_TIMEOUT,
            notices: None,
            health: None,
            schema_changes: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Connecting,
    Ready,
    Down,
    Stopped,
}

#[derive(Debug, Clone)]
struct Health {
    phase: Phase,
    since: Timestamp,
    last_error: Option<String>,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    /// First connection attempt finished (successfully or not).
    attempted: bool,
    /// Up or down as last announced (`Connecting` and `Stopped` announce nothing).
    announced: Option<bool>,
}

#[derive(Default)]
struct Stats {
    in_flight: AtomicU32,
    calls: AtomicU64,
    failures: AtomicU64,
    /// Exponentially weighted mean latency of calls, in microseconds.
    latency_us: AtomicU64,
}

pub struct Server {
    pub config: ServerConfig,
    pub origin: Origin,
    /// As defined: env and header values still sealed or references; resolved for each
    /// connection only.
    transport: Transport,
    secrets: Arc<Secrets>,
    settings: Settings,
    node_id: String,
    conn: RwLock<Option<Arc<Connection>>>,
    tools: RwLock<Arc<Vec<UpstreamTool>>>,
    health: Mutex<Health>,
    stats: Stats,
    permits: Option<Arc<Semaphore>>,
    stop: CancellationToken,
    reconnect: Notify,
    attempted: watch::Sender<bool>,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Bumped whenever the tool list changes (front doors announce `list_changed`).
    catalog: watch::Sender<u64>,
}

/// A server as `GET /v1/servers` and the MCP tool `server_list` show it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ServerStatus {
    pub name: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    pub origin: Origin,
    /// `connecting`, `healthy`, `down`, `circuit_open` or `stopped`.
    pub state: &'static str,
    /// Capabilities, for discovery (`?tag=`).
    pub tags: Vec<String>,
    /// The group of replicas it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub since: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_info: Option<Value>,
    pub tasks: &'static str,
    pub tool_count: usize,
    pub tools: Vec<String>,
    pub in_flight: u32,
    pub calls: u64,
    pub failures: u64,
    pub error_rate: f64,
    pub latency_ms: f64,
    pub consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_open_for_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub config: Value,
}

impl Server {
    pub fn start(
        config: ServerConfig,
        transport: Transport,
        origin: Origin,
        settings: Settings,
        secrets: Arc<Secrets>,
        node_id: &str,
    ) -> Arc<Server> {
        let server = Arc::new(Server {
            permits: config
                .max_concurrency
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            config,
            origin,
            transport,
            secrets,
            settings,
            node_id: node_id.to_string(),
            conn: RwLock::new(None),
            tools: RwLock::new(Arc::new(Vec::new())),
            health: Mutex::new(Health {
                phase: Phase::Connecting,
                since: Timestamp::now(),
                last_error: None,
                consecutive_failures: 0,
                open_until: None,
                attempted: false,
                announced: None,
            }),
            stats: Stats::default(),
            stop: CancellationToken::new(),
            reconnect: Notify::new(),
            attempted: watch::channel(false).0,
            supervisor: Mutex::new(None),
            catalog: watch::channel(0).0,
        });
        let handle = tokio::spawn(supervise(server.clone()));
        *server.supervisor.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        server
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Waits for the first connection attempt; `Err` with why it failed.
    pub async fn first_attempt(&self, limit: Duration) -> Result<(), String> {
        let mut rx = self.attempted.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|a| *a)).await;
        let h = self
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match h.phase {
            Phase::Ready => Ok(()),
            _ if !h.attempted => Err(format!("no connection within {} s", limit.as_secs())),
            _ => Err(h.last_error.unwrap_or_else(|| "could not connect".into())),
        }
    }

    /// Whether the first connection attempt is still under way (the server's tools are
    /// not known yet).
    pub fn starting(&self) -> bool {
        !*self.attempted.borrow() && !self.stop.is_cancelled()
    }

    /// The first connection attempt is over (its outcome is in the health state).
    fn mark_attempted(&self) {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .attempted = true;
        self.attempted.send_replace(true);
    }

    pub fn catalog_changes(&self) -> watch::Receiver<u64> {
        self.catalog.subscribe()
    }

    fn set_phase(&self, phase: Phase, error: Option<String>) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if h.phase != phase {
            h.since = Timestamp::now();
        }
        h.phase = phase;
        let up = match phase {
            Phase::Ready => Some(true),
            Phase::Down => Some(false),
            Phase::Connecting | Phase::Stopped => None,
        };
        if let Some(up) = up
            && h.announced != Some(up)
        {
            h.announced = Some(up);
            if let Some(tx) = &self.settings.health {
                let _ = tx.send(HealthChange {
                    server: self.config.name.clone(),
                    up,
                    error: error.clone(),
                });
            }
        }
        if error.is_some() {
            h.last_error = error;
        }
    }

    fn record_failure(&self, why: &str) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.consecutive_failures += 1;
        h.last_error = Some(why.to_string());
        if h.consecutive_failures >= self.settings.failures_to_open && h.open_until.is_none() {
            tracing::warn!(server = %self.config.name, failures = h.consecutive_failures, error = why, "circuit open: holding this server's tasks back");
            h.open_until = Some(Instant::now() + self.settings.open_for);
        }
    }

    fn record_success(&self) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if h.open_until.is_some() {
            tracing::info!(server = %self.config.name, "circuit closed: the server answers again");
        }
        h.consecutive_failures = 0;
        h.open_until = None;
    }

    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn upstream_tools(&self) -> Arc<Vec<UpstreamTool>> {
        self.tools.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn in_flight(&self) -> u32 {
        self.stats.in_flight.load(Ordering::Relaxed)
    }

    /// Whether calls may go to this server now.
    pub fn is_available(&self) -> Result<(), String> {
        let h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let name = &self.config.name;
        let why = h.last_error.as_deref().unwrap_or("no details");
        if let Some(until) = h.open_until
            && until > Instant::now()
        {
            return Err(format!(
                "server `{name}` is failing ({why}); its circuit is open for {} s more",
                until
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .max(1)
            ));
        }
        match h.phase {
            Phase::Ready => Ok(()),
            Phase::Connecting => Err(format!("server `{name}` is connecting")),
            Phase::Down => Err(format!(
                "server `{name}` is unavailable ({why}); reconnecting"
            )),
            Phase::Stopped => Err(format!("server `{name}` was removed")),
        }
    }

    pub fn status(&self) -> ServerStatus {
        let h = self
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let conn = self.connection();
        let tools = self.upstream_tools();
        let calls = self.stats.calls.load(Ordering::Relaxed);
        let failures = self.stats.failures.load(Ordering::Relaxed);
        let open = h.open_until.filter(|u| *u > Instant::now());
        ServerStatus {
            name: self.config.name.clone(),
            transport: match self.transport {
                Transport::Stdio { .. } => "stdio",
                Transport::Http { .. } => "http",
            },
            origin: self.origin,
            tags: self.config.tags.clone(),
            group: self.config.group.clone(),
            state: match (h.phase, open) {
                (_, Some(_)) => "circuit_open",
                (Phase::Connecting, _) => "connecting",
                (Phase::Ready, _) => "healthy",
                (Phase::Down, _) => "down",
                (Phase::Stopped, _) => "stopped",
            },
            since: h.since,
            last_error: h.last_error,
            protocol_version: conn.as_ref().map(|c| c.protocol.clone()),
            server_info: conn.as_ref().and_then(|c| c.server_info.clone()),
            tasks: match conn.as_ref() {
                Some(c) if c.ext_tasks => "io.modelcontextprotocol/tasks",
                Some(c) if c.legacy_tasks => "2025-11-25",
                Some(_) => "none",
                None => "unknown",
            },
            tool_count: tools.len(),
            tools: tools.iter().map(|t| t.name.clone()).collect(),
            in_flight: self.in_flight(),
            calls,
            failures,
            error_rate: if calls == 0 {
                0.0
            } else {
                failures as f64 / calls as f64
            },
            latency_ms: self.stats.latency_us.load(Ordering::Relaxed) as f64 / 1000.0,
            consecutive_failures: h.consecutive_failures,
            circuit_open_for_ms: open
                .map(|u| u.saturating_duration_since(Instant::now()).as_millis() as u64),
            pid: conn.as_ref().and_then(|c| c.pid),
            config: self.config.redacted(),
        }
    }

    /// Stops supervising and closes the connection (the process group of a stdio server
    /// is stopped with it); returns when that is done.
    pub async fn stop(&self) {
        self.stop.cancel();
        let supervisor = self
            .supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(s) = supervisor {
            let _ = s.await;
        }
        self.set_phase(Phase::Stopped, None);
    }

    /// Reconnects now (after a call saw the connection die).
    fn kick(&self) {
        self.reconnect.notify_one();
    }

    async fn refresh_tools(&self, conn: &Connection) -> Result<(), String> {
        let tools = conn.list_tools().await?;
        let current = self.upstream_tools();
        let changed = current.len() != tools.len()
            || current
                .iter()
                .zip(tools.iter())
                .any(|(a, b)| a.definition != b.definition);
        if let Some(tx) = &self.settings.schema_changes {
            // A tool whose arguments mean something else now, or that is gone: results
            // of the old one must not answer calls of the new one.
            for old in current.iter() {
                let schema = |t: &UpstreamTool| t.definition.get("inputSchema").cloned();
                let now = tools.iter().find(|t| t.name == old.name);
                if now.is_none_or(|t| schema(t) != schema(old)) {
                    let _ = tx.send(SchemaChange {
                        server: self
                            .config
                            .group
                            .clone()
                            .unwrap_or_else(|| self.config.name.clone()),
                        tool: old.name.clone(),
                    });
                }
            }
        }
        *self.tools.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tools);
        if changed {
            self.catalog.send_modify(|v| *v += 1);
        }
        Ok(())
    }

    /// Runs one call on this server.
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: Value,
        ctx: &ToolContext,
    ) -> Result<ToolOutput, ToolCallError> {
        let unavailable = |m: String| ToolCallError::new("upstream_unavailable", m, true);
        let conn = self.connection().ok_or_else(|| {
            unavailable(
                self.is_available()
                    .err()
                    .unwrap_or_else(|| "not connected".into()),
            )
        })?;
        let Some(info) = self
            .upstream_tools()
            .iter()
            .find(|t| t.name == tool)
            .cloned()
        else {
            return Err(ToolCallError::new(
                "unknown_tool",
                format!(
                    "server `{}` no longer offers tool `{tool}`",
                    self.config.name
                ),
                true,
            ));
        };
        let _permit = match &self.permits {
            Some(p) => Some(tokio::select! {
                p = p.clone().acquire_owned() => p.map_err(|_| unavailable("server removed".into()))?,
                _ = ctx.cancel.cancelled() => return Err(ToolCallError::cancelled()),
            }),
            None => None,
        };
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        // The server's own timeout stops the upstream call through a token of its own, so
        // that the engine sees a timeout, not a client's cancellation.
        let mut call_ctx = ctx.clone();
        call_ctx.cancel = ctx.cancel.child_token();
        let span = tracing::info_span!(
            "upstream.call",
            otel.name = %format!("{} {}", self.config.name, info.name),
            server = %self.config.name,
            tool = %info.name,
            task.id = %ctx.task_id,
            outcome = tracing::field::Empty,
        );
        let run = call::run(&self.config.name, &conn, &info, arguments, &call_ctx)
            .instrument(span.clone());
        let outcome = match self.config.timeout_ms {
            Some(ms) => {
                tokio::pin!(run);
                tokio::select! {
                    r = &mut run => r,
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => {
                        call_ctx.cancel.cancel();
                        let _ = tokio::time::timeout(Duration::from_secs(5), &mut run).await;
                        Err(ToolCallError::new(
                            "timeout",
                            format!("server `{}` did not answer within its timeout of {ms} ms", self.config.name),
                            true,
                        ))
                    }
                }
            }
            None => run.await,
        };
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let took = started.elapsed();
        let outcome_label = match &outcome {
            Ok(out) if out.is_error() => "tool_error",
            Ok(_) => "ok",
            Err(e) if e.code == "upstream_unavailable" => "unavailable",
            Err(e) if e.code == "timeout" => "timeout",
            Err(e) if e.code == "cancelled" => "cancelled",
            Err(_) => "error",
        };
        span.record("outcome", outcome_label);
        let server = self.config.name.clone();
        metrics::counter!(
            baton_engine::metrics::UPSTREAM_REQUESTS,
            "server" => server.clone(),
            "outcome" => outcome_label
        )
        .increment(1);
        metrics::histogram!(baton_engine::metrics::UPSTREAM_REQUEST_SECONDS, "server" => server)
            .record(took.as_secs_f64());
        let us = took.as_micros() as u64;
        let prev = self.stats.latency_us.load(Ordering::Relaxed);
        let ewma = if prev == 0 { us } else { (prev * 7 + us) / 8 };
        self.stats.latency_us.store(ewma, Ordering::Relaxed);
        match &outcome {
            Ok(out) if out.is_error() => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.record_success();
            }
            Ok(_) => self.record_success(),
            Err(e) if e.code == "upstream_unavailable" => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.record_failure(&e.message);
                if conn.is_closed() {
                    self.kick();
                }
            }
            Err(e) if e.code == "cancelled" => {}
            Err(_) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        match outcome {
            // "A result with isError fails the task" unless the server is configured to
            // retry such results.
            Ok(out) if out.is_error() && self.config.retry_tool_errors => Err(ToolCallError::new(
                "tool_error",
                out.first_text()
                    .unwrap_or("the tool reported an error")
                    .to_string(),
                true,
            )),
            other => other,
        }
    }
}

async fn supervise(server: Arc<Server>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        if server.stop.is_cancelled() {
            return;
        }
        server.set_phase(Phase::Connecting, None);
        // Secrets are opened and references resolved for this connection only (a token
        // file rotated meanwhile is read again); a failure marks the server down with why.
        let opened = match server
            .secrets
            .resolve(&server.config.name, &server.transport)
        {
            Ok(transport) => Connection::open_with(
                &server.config.name,
                &transport,
                &server.node_id,
                server.settings.input_timeout,
                server.settings.notices.clone(),
            )
            .await
            .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let conn = match opened {
            Ok(conn) => match server.refresh_tools(&conn).await {
                Ok(()) => Some(Arc::new(conn)),
                Err(e) => {
                    let why = format!("could not list tools: {e}");
                    server.record_failure(&why);
                    server.set_phase(Phase::Down, Some(why));
                    conn.close().await;
                    None
                }
            },
            Err(why) => {
                tracing::warn!(server = %server.config.name, error = %why, retry_in_ms = backoff.as_millis() as u64, "cannot connect to MCP server");
                server.record_failure(&why);
                server.set_phase(Phase::Down, Some(why));
                None
            }
        };
        if let Some(conn) = conn {
            if server.stop.is_cancelled() {
                if let Ok(c) = Arc::try_unwrap(conn) {
                    c.close().await;
                }
                return;
            }
            *server.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
            server.record_success();
            server.set_phase(Phase::Ready, None);
            server.mark_attempted();
            let ready_at = Instant::now();
            watch_connection(&server, &conn).await;
            // Gone: detach, then close once calls let go of it.
            server
                .conn
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if server.stop.is_cancelled() {
                server.catalog.send_modify(|v| *v += 1);
                close_when_free(conn).await;
                return;
            }
            let why = conn.death_note();
            tracing::warn!(server = %server.config.name, error = %why, "lost the MCP server; reconnecting");
            server.set_phase(Phase::Down, Some(why));
            close_when_free(conn).await;
            if ready_at.elapsed() > Duration::from_secs(60) {
                backoff = Duration::from_millis(500);
            }
        }
        server.mark_attempted();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = server.reconnect.notified() => {}
            _ = server.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(server.settings.max_backoff);
    }
}

async fn close_when_free(conn: Arc<Connection>) {
    let mut conn = conn;
    for _ in 0..100 {
        match Arc::try_unwrap(conn) {
            Ok(c) => return c.close().await,
            Err(c) => {
                conn = c;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // Still referenced by a stuck call: cancelling the service still ends the session;
    // the process group is stopped when the last reference goes.
    conn.service.cancellation_token().cancel();
}

/// Watches a live connection until it dies, fails its health checks, or the server stops.
async fn watch_connection(server: &Arc<Server>, conn: &Arc<Connection>) {
    // On 2026-07-28, list changes arrive only on a subscription stream.
    let listener = if conn.protocol.as_str() >= "2026-07-28" {
        let peer = conn.peer().clone();
        let handler = conn.handler.clone();
        Some(tokio::spawn(async move {
            if let Ok(mut sub) = peer
                .listen(SubscriptionFilter::builder().tools_list_changed().build())
                .await
            {
                while let Ok(Some(_)) = sub.next().await {
                    handler.tools_changed.notify_one();
                }
            }
        }))
    } else {
        None
    };
    let mut health = tokio::time::interval(server.settings.health_interval);
    health.tick().await;
    let mut closed_check = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = server.stop.cancelled() => break,
            _ = server.reconnect.notified() => break,
            _ = closed_check.tick() => {
                if conn.is_closed() {
                    server.record_failure(&conn.death_note());
                    break;
                }
            }
            _ = conn.handler.tools_changed.notified() => {
                if let Err(e) = server.refresh_tools(conn).await {
                    tracing::warn!(server = %server.config.name, error = %e, "could not refresh the tool list");
                }
            }
            _ = health.tick() => {
                match conn.ping().await {
                    Ok(()) => server.record_success(),
                    Err(e) => {
                        let why = format!("health check failed: {e}");
                        server.record_failure(&why);
                        let failures = server.health.lock().unwrap_or_else(|e| e.into_inner()).consecutive_failures;
                        if failures >= 2 {
                            break;
                        }
                    }
                }
            }
        }
    }
    if let Some(l) = listener {
        l.abort();
    }
}

#[async_trait]
impl ToolProvider for Server {
    fn tools(&self) -> Vec<ToolInfo> {
        self.upstream_tools().iter().map(tool_info).collect()
    }

    fn tool(&self, name: &str) -> Option<ToolInfo> {
        self.upstream_tools()
            .iter()
            .find(|t| t.name == name)
            .map(tool_info)
    }

    async fn call(
        &self,
        tool: &str,
        arguments: Value,
        ctx: ToolContext,
    ) -> Result<ToolOutput, ToolCallError> {
        self.call_tool(tool, arguments, &ctx).await
    }

    fn claim_limits(&self, server: &str, separator: &str) -> Vec<ConcurrencyLimit> {
        match self.config.max_concurrency {
            Some(max) => vec![ConcurrencyLimit {
                selector: ToolSelector::Prefix(format!("{server}{separator}")),
                max,
            }],
            None => Vec::new(),
        }
    }

    fn claim_rates(&self, server: &str, separator: &str) -> Vec<baton_store::RateLimit> {
        let rate = self
            .config
            .rate_limit
            .as_deref()
            .and_then(|r| r.parse().ok());
        rate.map(|rate| baton_store::RateLimit {
            selector: ToolSelector::Prefix(format!("{server}{separator}")),
            rate,
        })
        .into_iter()
        .collect()
    }

    fn cache(&self) -> Option<baton_engine::cache::CacheSetting> {
        self.config.cache.as_ref()?.parse().ok()
    }

    fn availability(&self) -> Result<(), String> {
        self.is_available()
    }

    fn starting(&self) -> bool {
        Server::starting(self)
    }
}

pub fn tool_info(t: &UpstreamTool) -> ToolInfo {
    ToolInfo {
        name: t.name.clone(),
        description: t.description.clone(),
        input_schema: t.input_schema.clone(),
        definition: t.definition.clone(),
    }
}
