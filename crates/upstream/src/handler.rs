//! Baton's side of each upstream connection: what rmcp calls when the server sends
//! progress, asks for input, or changes its tool list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::ClientHandler;
#[expect(
    deprecated,
    reason = "logging is deprecated by SEP-2577 but still relayed"
)]
use rmcp::model::LoggingMessageNotificationParam;
use rmcp::model::{
    ClientCapabilities, ClientConfig, CustomRequest, CustomResult, ElicitRequestParams,
    ElicitResult, ElicitationAction, ErrorData, Implementation, NumberOrString,
    ProgressNotificationParam, ProtocolVersion,
};
use rmcp::service::{NotificationContext, RequestContext, RoleClient};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::raw::RawCapture;

/// The metadata key that ties a request to the task it belongs to (2025-11-25).
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// An input request from the server for one of its tasks, and where the answer goes.
pub struct Elicitation {
    /// The `elicitation/create` params, as the server sent them.
    pub params: Value,
    /// The `ElicitResult` (JSON) to send back.
    pub reply: oneshot::Sender<Value>,
}

enum ProgressRoute {
    /// Notifications that arrived before their call was registered (rmcp picks the token
    /// when it sends the request, so the first ones can win the race).
    Early(Vec<ProgressNotificationParam>),
    Live(mpsc::UnboundedSender<ProgressNotificationParam>),
}

pub struct HandlerState {
    pub server: String,
    pub raw: Arc<RawCapture>,
    pub tools_changed: Notify,
    progress: Mutex<HashMap<String, ProgressRoute>>,
    /// By upstream task id: the route's generation (a task followed again replaces the
    /// route; the older route's end must not remove the newer one) and its sender.
    elicitations: Mutex<HashMap<String, (u64, mpsc::UnboundedSender<Elicitation>)>>,
    /// Calls in flight on this connection, for relaying the server's log messages.
    calls: Mutex<HashMap<u64, baton_engine::tools::TaskHandle>>,
    next_call: std::sync::atomic::AtomicU64,
}

/// Keeps a call registered for log relaying while it runs.
/// The progress route of one call (see [`HandlerState::subscribe_progress`]).
pub struct ProgressSubscription {
    state: Arc<HandlerState>,
    key: String,
    pub rx: mpsc::UnboundedReceiver<ProgressNotificationParam>,
}

impl Drop for ProgressSubscription {
    fn drop(&mut self) {
        self.state
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// The elicitation route of one upstream task (see [`HandlerState::route_elicitations`]).
pub struct ElicitationRoute {
    state: Arc<HandlerState>,
    task_id: String,
    generation: u64,
    pub rx: mpsc::UnboundedReceiver<Elicitation>,
}

impl Drop for ElicitationRoute {
    fn drop(&mut self) {
        let mut routes = self
            .state
            .elicitations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if routes
            .get(&self.task_id)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            routes.remove(&self.task_id);
        }
    }
}

pub struct LogRoute {
    state: Arc<HandlerState>,
    key: u64,
}

impl Drop for LogRoute {
    fn drop(&mut self) {
        // Notifications are handled concurrently with responses: a message the server
        // sent just before its answer may be dispatched just after it. Keep routing a
        // moment longer.
        let state = self.state.clone();
        let key = self.key;
        let forget = move || {
            state
                .calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    forget();
                });
            }
            Err(_) => forget(),
        }
    }
}

pub fn token_key(t: &NumberOrString) -> String {
    match t {
        NumberOrString::Number(n) => format!("n:{n}"),
        NumberOrString::String(s) => format!("s:{s}"),
    }
}

impl HandlerState {
    pub fn new(server: &str, raw: Arc<RawCapture>) -> Arc<Self> {
        Arc::new(HandlerState {
            server: server.to_string(),
            raw,
            tools_changed: Notify::new(),
            progress: Mutex::new(HashMap::new()),
            elicitations: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            next_call: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Log messages the server sends while this call runs go to its task.
    pub fn route_logs(self: &Arc<Self>, task: baton_engine::tools::TaskHandle) -> LogRoute {
        let key = self
            .next_call
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, task);
        LogRoute {
            state: self.clone(),
            key,
        }
    }

    /// MCP log messages carry no request id. One call in flight is surely the one that
    /// logged; with several, the message cannot be attributed and is only traced (relaying
    /// it to every caller would leak one caller's logs to another).
    #[expect(
        deprecated,
        reason = "logging is deprecated by SEP-2577 but still relayed"
    )]
    fn route_log(&self, params: LoggingMessageNotificationParam) {
        // In the order the server sent them when the raw stream is observed (the SDK's
        // handlers may run out of order), else this one message.
        let messages: Vec<(String, Option<String>, serde_json::Value)> = match self.raw.take_logs()
        {
            Some(raw) => raw
                .into_iter()
                .map(|p| {
                    (
                        p["level"].as_str().unwrap_or("info").to_string(),
                        p["logger"].as_str().map(String::from),
                        p.get("data").cloned().unwrap_or_default(),
                    )
                })
                .collect(),
            None => vec![(
                serde_json::to_value(params.level)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_else(|| "info".into()),
                params.logger,
                params.data,
            )],
        };
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        for (level, logger, data) in messages {
            if calls.len() == 1
                && let Some(task) = calls.values().next()
            {
                task.log(&level, logger, data);
            } else {
                tracing::debug!(server = %self.server, level, ?logger, %data, "log message from the server (not attributable to one call)");
            }
        }
    }

    /// Progress of the call with this token, from now on (including any that came early).
    /// The route lasts as long as the returned subscription: a call that ends, fails or is
    /// abandoned (its future dropped) leaves nothing behind.
    pub fn subscribe_progress(self: &Arc<Self>, token: &NumberOrString) -> ProgressSubscription {
        let (tx, rx) = mpsc::unbounded_channel();
        let key = token_key(token);
        let mut routes = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ProgressRoute::Early(early)) = routes.remove(&key) {
            for p in early {
                let _ = tx.send(p);
            }
        }
        routes.insert(key.clone(), ProgressRoute::Live(tx));
        ProgressSubscription {
            state: self.clone(),
            key,
            rx,
        }
    }

    fn route_progress(&self, p: ProgressNotificationParam) {
        let mut routes = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let key = token_key(&p.progress_token.0);
        match routes.get_mut(&key) {
            Some(ProgressRoute::Live(tx)) => {
                let _ = tx.send(p);
            }
            Some(ProgressRoute::Early(buf)) => {
                if buf.len() < 64 {
                    buf.push(p);
                }
            }
            None => {
                // Bounded: tokens nobody claims (late notifications of finished calls).
                if routes.len() > 10_000 {
                    routes.retain(|_, r| matches!(r, ProgressRoute::Live(_)));
                }
                routes.insert(key, ProgressRoute::Early(vec![p]));
            }
        }
    }

    /// Input requests of the upstream task `task_id` go to the returned route, for as long
    /// as it lives.
    pub fn route_elicitations(self: &Arc<Self>, task_id: &str) -> ElicitationRoute {
        let (tx, rx) = mpsc::unbounded_channel();
        let generation = self
            .next_call
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.elicitations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(task_id.to_string(), (generation, tx));
        ElicitationRoute {
            state: self.clone(),
            task_id: task_id.to_string(),
            generation,
            rx,
        }
    }

    /// How many progress and elicitation routes are open (for tests: nothing leaks).
    pub fn open_routes(&self) -> usize {
        let progress = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|r| matches!(r, ProgressRoute::Live(_)))
            .count();
        progress
            + self
                .elicitations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len()
    }

    /// Hands an elicitation to the task waiting for it, and waits for the answer. Without
    /// a task to answer it (nobody asked for this input through Baton) it is declined.
    async fn elicit(&self, params: Value) -> Value {
        let related = params
            .get("_meta")
            .and_then(|m| m.get(RELATED_TASK))
            .and_then(|r| r.get("taskId"))
            .and_then(Value::as_str)
            .map(String::from);
        let route = related.and_then(|t| {
            self.elicitations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&t)
                .map(|(_, tx)| tx.clone())
        });
        let Some(route) = route else {
            tracing::info!(server = %self.server, "declining an elicitation that belongs to no task run through Baton");
            return json!({"action": "decline"});
        };
        let (tx, rx) = oneshot::channel();
        if route.send(Elicitation { params, reply: tx }).is_err() {
            return json!({"action": "cancel"});
        }
        rx.await.unwrap_or_else(|_| json!({"action": "cancel"}))
    }
}

#[derive(Clone)]
pub struct UpstreamHandler {
    pub state: Arc<HandlerState>,
    pub protocol: ProtocolVersion,
}

impl ClientHandler for UpstreamHandler {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.state.route_progress(params);
    }

    #[expect(
        deprecated,
        reason = "logging is deprecated by SEP-2577 but still relayed"
    )]
    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.state.route_log(params);
    }

    async fn on_tool_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.state.tools_changed.notify_one();
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let id = serde_json::to_value(&ctx.id).unwrap_or(Value::Null);
        let params = self
            .state
            .raw
            .take_request(&id)
            .unwrap_or_else(|| serde_json::to_value(&request).unwrap_or_default());
        let answer = self.state.elicit(params).await;
        serde_json::from_value(answer.clone()).or_else(|_| {
            Ok(ElicitResult::new(
                match answer.get("action").and_then(Value::as_str) {
                    Some("accept") => ElicitationAction::Accept,
                    Some("cancel") => ElicitationAction::Cancel,
                    _ => ElicitationAction::Decline,
                },
            ))
        })
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<CustomResult, ErrorData> {
        // An elicitation the SDK could not parse into its typed model arrives here raw.
        if request.method == "elicitation/create" {
            let answer = self.state.elicit(request.params.unwrap_or_default()).await;
            return Ok(CustomResult(answer));
        }
        Err(ErrorData::method_not_found::<
            rmcp::model::ListToolsRequestMethod,
        >())
    }

    fn get_info(&self) -> ClientConfig {
        let capabilities = ClientCapabilities::builder()
            .enable_elicitation()
            .enable_tasks()
            .build();
        ClientConfig::new(
            capabilities,
            Implementation::new("baton", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(self.protocol.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call abandoned mid-way (its future dropped: the engine gave up on a tool that
    /// would not stop) used to leave its progress route behind, and an upstream task
    /// followed again kept the old elicitation route; routes end with their owner.
    #[test]
    fn routes_end_with_their_call() {
        let state = HandlerState::new("s", Arc::new(RawCapture::default()));
        let call = async {
            let _progress = state.subscribe_progress(&NumberOrString::Number(7));
            let _elicitations = state.route_elicitations("task-1");
            std::future::pending::<()>().await;
        };
        let mut call = Box::pin(call);
        let waker = std::task::Waker::noop();
        let _ = call
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker));
        assert_eq!(state.open_routes(), 2);
        drop(call);
        assert_eq!(state.open_routes(), 0, "an abandoned call leaves no route");
        // A route replaced by a newer one for the same task: the older one's end leaves
        // the newer one in place.
        let old = state.route_elicitations("task-2");
        let new = state.route_elicitations("task-2");
        drop(old);
        assert_eq!(state.open_routes(), 1);
        drop(new);
        assert_eq!(state.open_routes(), 0);
    }
}
