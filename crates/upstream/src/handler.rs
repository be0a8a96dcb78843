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
    ProgressNotificationParam, ProtocolVersion, RequestId, ResourceUpdatedNotificationParam,
};
#[expect(
    deprecated,
    reason = "sampling is deprecated by SEP-2577 but still relayed"
)]
use rmcp::model::{CreateMessageRequestParams, CreateMessageResult};
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
    /// Calls in flight on this connection, for relaying the server's log messages and
    /// the input it asks for during a plain call.
    calls: Mutex<HashMap<u64, CallRoute>>,
    next_call: std::sync::atomic::AtomicU64,
    /// How long a relayed input request waits for an answer.
    input_timeout: std::time::Duration,
    /// Where resource and prompt changes go (to the front doors' sessions).
    pub notices: Mutex<Option<crate::connection::Notices>>,
    /// Requests other than tool calls in flight (`prompts/get`, `resources/read`, …): a
    /// question the server asks may belong to one of them, so it cannot be attributed.
    pub forwarding: std::sync::atomic::AtomicUsize,
    /// Held while log messages are taken and relayed, so that two handlers running at
    /// once cannot interleave what they relay.
    log_order: Mutex<()>,
}

/// A call in flight: its task, and the token that ends it.
#[derive(Clone)]
struct CallRoute {
    task: baton_engine::tools::TaskHandle,
    cancel: tokio_util::sync::CancellationToken,
    /// The call has answered (its route lingers a moment for late log messages, but no
    /// request of the server can belong to it any more).
    ended: Arc<std::sync::atomic::AtomicBool>,
    /// One question at a time: a task waits for one set of input requests, so a second
    /// question the server asks meanwhile waits its turn instead of replacing the first.
    asking: Arc<tokio::sync::Mutex<()>>,
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
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for LogRoute {
    fn drop(&mut self) {
        // What the server logged before its answer, when its lines are observed, goes to
        // the call now: its task's log is written before its outcome.
        self.state.route_log(None);
        // Notifications are handled concurrently with responses: a message the server
        // sent just before its answer may be dispatched just after it. Keep routing a
        // moment longer.
        self.ended.store(true, std::sync::atomic::Ordering::Relaxed);
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
    pub fn new(
        server: &str,
        raw: Arc<RawCapture>,
        input_timeout: std::time::Duration,
    ) -> Arc<Self> {
        Arc::new(HandlerState {
            input_timeout,
            notices: Mutex::new(None),
            forwarding: std::sync::atomic::AtomicUsize::new(0),
            server: server.to_string(),
            raw,
            tools_changed: Notify::new(),
            progress: Mutex::new(HashMap::new()),
            elicitations: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            next_call: std::sync::atomic::AtomicU64::new(0),
            log_order: Mutex::new(()),
        })
    }

    /// Log messages the server sends while this call runs go to its task, and so does the
    /// input it asks for outside any upstream task (see [`HandlerState::relay_input`]).
    pub fn route_call(
        self: &Arc<Self>,
        task: baton_engine::tools::TaskHandle,
        cancel: tokio_util::sync::CancellationToken,
    ) -> LogRoute {
        let key = self
            .next_call
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(
            key,
            CallRoute {
                task,
                cancel,
                ended: ended.clone(),
                asking: Arc::default(),
            },
        );
        LogRoute {
            state: self.clone(),
            key,
            ended,
        }
    }

    /// MCP log messages carry no request id. One call in flight is surely the one that
    /// logged; with several, the message cannot be attributed and is only traced (relaying
    /// it to every caller would leak one caller's logs to another).
    #[expect(
        deprecated,
        reason = "logging is deprecated by SEP-2577 but still relayed"
    )]
    fn route_log(&self, params: Option<LoggingMessageNotificationParam>) {
        let _in_order = self.log_order.lock().unwrap_or_else(|e| e.into_inner());
        // In the order the server sent them when the raw stream is observed (the SDK's
        // handlers may run out of order), else this one message (if any).
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
            None => params
                .into_iter()
                .map(|params| {
                    (
                        serde_json::to_value(params.level)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_else(|| "info".into()),
                        params.logger,
                        params.data,
                    )
                })
                .collect(),
        };
        if messages.is_empty() {
            return;
        }
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        // The one call still running; else the one that just answered (a message sent
        // just before the answer may arrive just after it).
        let live: Vec<&CallRoute> = calls
            .values()
            .filter(|c| !c.ended.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        let owner = match (live.len(), calls.len()) {
            (1, _) => Some(live[0]),
            (0, 1) => calls.values().next(),
            _ => None,
        };
        for (level, logger, data) in messages {
            if let Some(call) = owner {
                call.task.log(&level, logger, data);
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
            // Asked during a plain call: relayed to whoever follows that call's task.
            return match self
                .relay_input("elicitation/create", params, json!({"action": "cancel"}))
                .await
            {
                Some(answer) => answer,
                None => json!({"action": "decline"}),
            };
        };
        let (tx, rx) = oneshot::channel();
        if route.send(Elicitation { params, reply: tx }).is_err() {
            return json!({"action": "cancel"});
        }
        rx.await.unwrap_or_else(|_| json!({"action": "cancel"}))
    }
}

impl HandlerState {
    /// The params of the server's request `id` as it sent them (the SDK's typed model
    /// rounds numbers and drops fields it does not know), else as the SDK parsed them.
    fn params_as_sent(&self, id: &RequestId, parsed: impl serde::Serialize) -> Value {
        let id = serde_json::to_value(id).unwrap_or(Value::Null);
        self.raw
            .take_request(&id)
            .unwrap_or_else(|| serde_json::to_value(parsed).unwrap_or_default())
    }

    /// Relays a `sampling/createMessage` to the call's client; the client's result, or
    /// why there is none.
    async fn sample(&self, params: Value) -> Result<Value, ErrorData> {
        let timed_out = json!({"error": "no answer to the sampling request in time"});
        let Some(answer) = self
            .relay_input("sampling/createMessage", params, timed_out)
            .await
        else {
            return Err(ErrorData::invalid_request(
                "Baton could not relay this sampling request to a client",
                None,
            ));
        };
        if let Some(e) = answer.get("error") {
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .or(e.as_str())
                .unwrap_or("the client refused the sampling request");
            return Err(ErrorData::invalid_request(message.to_string(), None));
        }
        Ok(answer)
    }

    fn notice(&self, notice: crate::relay::Notice) {
        let tx = self
            .notices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(tx) = tx {
            let _ = tx.send(crate::relay::ServerNotice {
                server: self.server.clone(),
                notice,
            });
        }
    }

    /// Relays a request the server sent during a plain call (`elicitation/create`,
    /// `sampling/createMessage`) as an input request of that call's task: the MCP client
    /// following the task answers it (if it declared the capability), or anyone through
    /// `POST /v1/tasks/{id}/input` or `tasks/update`. After the input timeout the answer is
    /// `on_timeout`. `None` when the request cannot be tied to one call: with several
    /// calls in flight on this connection, MCP does not say which one asks, and relaying
    /// to the wrong caller would leak one caller's request to another.
    async fn relay_input(&self, method: &str, params: Value, on_timeout: Value) -> Option<Value> {
        let call = {
            let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            let live: Vec<&CallRoute> = calls
                .values()
                .filter(|c| !c.ended.load(std::sync::atomic::Ordering::Relaxed))
                .collect();
            let forwarding = self.forwarding.load(std::sync::atomic::Ordering::Relaxed);
            if live.is_empty() && forwarding == 0 {
                tracing::debug!(server = %self.server, method, "a server request outside any call; not relayed");
                return None;
            }
            if live.len() != 1 || forwarding > 0 {
                tracing::warn!(server = %self.server, method, calls = live.len(), forwarding, "cannot tell which call a server request belongs to; refusing it (give the server max_concurrency = 1 to relay such requests)");
                return None;
            }
            live[0].clone()
        };
        let _turn = tokio::select! {
            t = call.asking.lock() => t,
            _ = call.cancel.cancelled() => return None,
        };
        let n = self
            .next_call
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let kind = method.split('/').next().unwrap_or("input");
        let key = format!("{kind}-{n}");
        let requests = json!({ key.clone(): {"method": method, "params": params} });
        let timeout = json!({ key.clone(): on_timeout });
        match call
            .task
            .request_input_within(requests, &call.cancel, self.input_timeout, timeout)
            .await
        {
            Ok(mut answers) => Some(answers.get_mut(&key).map(Value::take).unwrap_or_default()),
            Err(e) => {
                tracing::info!(server = %self.server, method, error = %e.message, "a relayed request got no answer");
                None
            }
        }
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
        self.state.route_log(Some(params));
    }

    async fn on_tool_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.state.tools_changed.notify_one();
    }

    async fn on_resource_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.state.notice(crate::relay::Notice::ResourcesChanged);
    }

    async fn on_prompt_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.state.notice(crate::relay::Notice::PromptsChanged);
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.state
            .notice(crate::relay::Notice::ResourceUpdated { uri: params.uri });
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let params = self.state.params_as_sent(&ctx.id, &request);
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

    #[expect(
        deprecated,
        reason = "sampling is deprecated by SEP-2577 but still relayed"
    )]
    async fn create_message(
        &self,
        request: CreateMessageRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let params = self.state.params_as_sent(&ctx.id, &request);
        let answer = self.state.sample(params).await?;
        serde_json::from_value(answer).map_err(|e| {
            ErrorData::internal_error(
                format!(
                    "the client's answer to the sampling request is not a CreateMessageResult: {e}"
                ),
                None,
            )
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
        if request.method == "sampling/createMessage" {
            let answer = self
                .state
                .sample(request.params.unwrap_or_default())
                .await?;
            return Ok(CustomResult(answer));
        }
        Err(ErrorData::method_not_found::<
            rmcp::model::ListToolsRequestMethod,
        >())
    }

    #[expect(
        deprecated,
        reason = "sampling is deprecated by SEP-2577 but still relayed"
    )]
    fn get_info(&self) -> ClientConfig {
        // Baton relays sampling and elicitation to the clients whose calls are running.
        let capabilities = ClientCapabilities::builder()
            .enable_elicitation()
            .enable_sampling()
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
        let state = HandlerState::new(
            "s",
            Arc::new(RawCapture::default()),
            std::time::Duration::from_secs(60),
        );
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
