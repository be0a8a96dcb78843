//! One live session with an upstream server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    ClientRequest, DiscoverRequest, DiscoverRequestParams, PingRequest, ProtocolVersion,
    ServerResult, Tool,
};
use rmcp::service::{ClientLifecycleMode, Peer, PeerRequestOptions, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;

use crate::config::Transport;
use crate::handler::{HandlerState, UpstreamHandler};
use crate::process::{self, Child, StderrTail};
use crate::raw::{self, RawCapture, TaskSupport};
use crate::redact;

/// How long connecting (spawn or dial, and the MCP handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a health check may take.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Connection {
    pub service: RunningService<RoleClient, UpstreamHandler>,
    pub handler: Arc<HandlerState>,
    pub protocol: String,
    pub server_info: Option<Value>,
    /// The server speaks the 2026-07-28 tasks extension.
    pub ext_tasks: bool,
    /// The server accepts 2025-11-25 task-augmented tool calls.
    pub legacy_tasks: bool,
    /// The capabilities the server declared (resources, prompts, completions, …).
    pub capabilities: Value,
    pub pid: Option<u32>,
    /// For the node's log only (see [`Connection::death_note`]).
    pub stderr: Option<StderrTail>,
    /// The stderr of a dead session was logged (once, however often its death is told).
    stderr_logged: AtomicBool,
    child: Mutex<Option<Child>>,
}

/// A tool as the server described it, with what Baton needs to call it.
#[derive(Debug, Clone)]
pub struct UpstreamTool {
    pub name: String,
    pub description: Option<String>,
    pub input_schema: Arc<Value>,
    /// The definition exactly as the server sent it (raw where the SDK is lossy).
    pub definition: Arc<Value>,
    pub task_support: TaskSupport,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the MCP handshake failed: {0}")]
    Handshake(String),
    #[error("no answer within {} s", CONNECT_TIMEOUT.as_secs())]
    Timeout,
}

/// Where a server's notices go (see [`crate::relay::Notice`]).
pub type Notices = tokio::sync::broadcast::Sender<crate::relay::ServerNotice>;

/// How long a request the server sends during a plain call (sampling, elicitation)
/// waits for a client's answer, unless the server's settings say otherwise.
pub const INPUT_TIMEOUT: Duration = Duration::from_secs(600);

impl Connection {
    pub async fn open(
        server: &str,
        transport: &Transport,
        node_id: &str,
    ) -> Result<Connection, ConnectError> {
        Self::open_with(server, transport, node_id, INPUT_TIMEOUT, None).await
    }

    /// Like [`Connection::open`]; requests the server sends during a plain call wait up
    /// to `input_timeout` for an answer.
    pub async fn open_with(
        server: &str,
        transport: &Transport,
        node_id: &str,
        input_timeout: Duration,
        notices: Option<Notices>,
    ) -> Result<Connection, ConnectError> {
        match tokio::time::timeout(
            CONNECT_TIMEOUT,
            Self::open_inner(server, transport, node_id, input_timeout, notices),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Timeout),
        }
    }

    async fn open_inner(
        server: &str,
        transport: &Transport,
        node_id: &str,
        input_timeout: Duration,
        notices: Option<Notices>,
    ) -> Result<Connection, ConnectError> {
        let raw = Arc::new(RawCapture::default());
        let handler_state = HandlerState::new(server, raw.clone(), input_timeout);
        *handler_state
            .notices
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = notices;
        let handler = UpstreamHandler {
            state: handler_state.clone(),
            protocol: ProtocolVersion::V_2025_11_25,
        };
        // Prefer the newest protocol (server/discover); fall back to an `initialize`
        // handshake offering 2025-11-25, which older servers answer with what they speak.
        let mode = ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: Some(ProtocolVersion::V_2025_11_25),
        };
        let (service, child) = match transport {
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let spawned =
                    process::spawn(server, command, args, env, cwd, node_id).map_err(|source| {
                        ConnectError::Spawn {
                            command: command.clone(),
                            source,
                        }
                    })?;
                let (to_sdk, from_tee) = tokio::io::duplex(1 << 20);
                let observer = raw.clone();
                tokio::spawn(process::tee_lines(spawned.stdout, to_sdk, move |line| {
                    observer.observe_line(line)
                }));
                let child = spawned.child;
                match rmcp::service::ClientServiceExt::serve_with_lifecycle(
                    handler,
                    (from_tee, spawned.stdin),
                    mode,
                )
                .await
                {
                    Ok(s) => (s, Some(child)),
                    Err(e) => {
                        let mut child = child;
                        let exit = child.exit_within(Duration::from_millis(500)).await;
                        if exit.is_some() {
                            child.stderr.drained(Duration::from_millis(500)).await;
                        }
                        let stderr = child.stderr.text();
                        child.stop(Duration::from_millis(500)).await;
                        let mut msg = redact::text(&e.to_string());
                        if let Some(status) = &exit {
                            msg = format!("the server exited ({status})");
                        }
                        if !stderr.is_empty() {
                            log_stderr(server, exit.as_deref(), &stderr);
                            msg = format!("{msg}; its stderr is in the node's log");
                        }
                        return Err(ConnectError::Handshake(msg));
                    }
                }
            }
            Transport::Http { url, headers } => {
                let mut map = HashMap::new();
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (
                        http::HeaderName::from_bytes(k.as_bytes()),
                        http::HeaderValue::from_str(v),
                    ) {
                        map.insert(k, v);
                    }
                }
                let config =
                    StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(map);
                let t = StreamableHttpClientTransport::with_client(
                    crate::http_client::TracingClient::new(),
                    config,
                );
                let s = rmcp::service::ClientServiceExt::serve_with_lifecycle(handler, t, mode)
                    .await
                    .map_err(|e| {
                        ConnectError::Handshake(redact::text(&format!("{url}: {}", root_cause(&e))))
                    })?;
                (s, None)
            }
        };
        let info = service.peer().peer_info();
        let protocol = info
            .as_ref()
            .map(|i| i.protocol_version.to_string())
            .unwrap_or_else(|| "unknown".into());
        let ext_tasks = info
            .as_ref()
            .is_some_and(|i| i.capabilities.supports_tasks());
        let server_info = info
            .as_ref()
            .and_then(|i| i.server_info.as_ref())
            .and_then(|s| serde_json::to_value(s).ok());
        let capabilities = info
            .as_ref()
            .and_then(|i| serde_json::to_value(&i.capabilities).ok())
            .unwrap_or_default();
        if let Transport::Http { url, headers } = transport
            && protocol.as_str() == "2025-11-25"
            && let Err(e) = raw::probe_http(url, headers, &protocol, &raw).await
        {
            tracing::warn!(server, error = %redact::text(&e), "could not read the server's task metadata; its tools run as plain calls");
        }
        let legacy_tasks = protocol.as_str() == "2025-11-25" && raw.legacy_tasks();
        let pid = child.as_ref().map(|c| c.pid);
        let stderr = child.as_ref().map(|c| c.stderr.clone());
        tracing::info!(server, protocol = %protocol, ext_tasks, legacy_tasks, pid, "connected to MCP server");
        Ok(Connection {
            service,
            handler: handler_state,
            protocol,
            server_info,
            ext_tasks,
            legacy_tasks,
            capabilities,
            pid,
            stderr,
            stderr_logged: AtomicBool::new(false),
            child: Mutex::new(child),
        })
    }

    pub fn peer(&self) -> &Peer<RoleClient> {
        self.service.peer()
    }

    /// Whether the session has ended (the server exited, the stream closed, or it was
    /// cancelled).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed() || self.service.peer().is_transport_closed()
    }

    /// Why the session ended, for callers (server views, task errors): the process's exit,
    /// and that its stderr is in the node's log, where it goes the first time this is asked.
    pub fn death_note(&self) -> String {
        let exit = self
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(Child::exited);
        let mut note = match &exit {
            Some(status) => format!("the server exited ({status})"),
            None => "the connection closed".into(),
        };
        if let Some(s) = &self.stderr {
            let text = s.text();
            if !text.is_empty() {
                if !self.stderr_logged.swap(true, Ordering::Relaxed) {
                    log_stderr(&self.handler.server, exit.as_deref(), &text);
                }
                note.push_str("; its stderr is in the node's log");
            }
        }
        note
    }

    /// Lists every tool (all pages), with raw definitions where available.
    pub async fn list_tools(&self) -> Result<Vec<UpstreamTool>, String> {
        self.handler.raw.clear_tools();
        let tools: Vec<Tool> = self
            .peer()
            .list_all_tools()
            .await
            .map_err(|e| e.to_string())?;
        Ok(tools
            .into_iter()
            .map(|t| {
                let name = t.name.to_string();
                let typed = serde_json::to_value(&t).unwrap_or_default();
                let definition = self.handler.raw.tool(&name).unwrap_or(typed);
                let input_schema = definition
                    .get("inputSchema")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object"}));
                UpstreamTool {
                    description: t.description.as_ref().map(|d| d.to_string()),
                    task_support: raw::task_support(&definition),
                    input_schema: Arc::new(input_schema),
                    definition: Arc::new(definition),
                    name,
                }
            })
            .collect())
    }

    /// A plain `tools/call` on this session, outside any task (benchmarks compare Baton
    /// with it).
    pub async fn call_direct(&self, tool: &str, arguments: Value) -> Result<Value, String> {
        let args = match arguments {
            Value::Object(m) => m,
            _ => Default::default(),
        };
        let params = rmcp::model::CallToolRequestParams::new(tool.to_string()).with_arguments(args);
        let r = self
            .peer()
            .call_tool(params)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::to_value(r).map_err(|e| e.to_string())
    }

    /// An MCP-level liveness check: `ping`, or `server/discover` where ping no longer
    /// exists (2026-07-28).
    pub async fn ping(&self) -> Result<(), String> {
        let request = if self.protocol.as_str() >= "2026-07-28" {
            ClientRequest::DiscoverRequest(DiscoverRequest::new(DiscoverRequestParams {}))
        } else {
            ClientRequest::PingRequest(PingRequest::default())
        };
        let handle = self
            .peer()
            .send_request_with_option(request, PeerRequestOptions::with_timeout(PING_TIMEOUT))
            .await
            .map_err(|e| e.to_string())?;
        match handle.await_response().await {
            Ok(ServerResult::EmptyResult(_)) | Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Ends the session and stops the process group, if any.
    pub async fn close(self) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.service.cancel()).await;
        if let Some(child) = child {
            child.stop(Duration::from_secs(2)).await;
        }
    }
}

/// The innermost cause of an error ("Connection refused (os error 111)"), which says more
/// to a person than the SDK's layered message.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let root = cur.to_string();
    let top = e.to_string();
    if root == top || top.len() < 80 {
        top
    } else {
        root
    }
}

/// The stderr tail of a server that failed, for the operator (never for callers).
fn log_stderr(server: &str, exit: Option<&str>, tail: &str) {
    tracing::warn!(
        server,
        exit = exit.unwrap_or("running"),
        stderr = tail,
        "an MCP server failed; the last lines of its stderr"
    );
}
