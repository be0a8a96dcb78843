//! The MCP server: shared state and the `ServerHandler` implementation.
//!
//! Over Streamable HTTP rmcp builds one `TestServer` per legacy session and
//! one per 2026-07-28 request, so everything that must outlive a request
//! (tasks, runtime-added tools, flaky counters, who to notify) lives in
//! `Shared`, behind one `Arc`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use rmcp::{
    ErrorData as McpError, Peer, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CancelTaskParams, GetTaskParams, GetTaskResult,
        Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
        SubscriptionFilter, UpdateTaskParams,
    },
    service::{NotificationContext, RequestContext, SubscriptionContext, SubscriptionSink},
    task_manager::TaskManager,
};

use crate::{
    state::StateDir,
    tools::{self, DynamicTools},
};

/// Locks a mutex, ignoring poisoning: every critical section here is a
/// plain collection update that cannot leave the data half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct Shared {
    name: String,
    state: Option<StateDir>,
    pub tasks: TaskManager,
    dynamic_tools: Mutex<DynamicTools>,
    /// `flaky` counters when there is no state dir.
    flaky_counts: Mutex<HashMap<String, u64>>,
    /// Initialized legacy sessions (< 2026-07-28); they get list_changed
    /// as a plain notification.
    legacy_peers: Mutex<Vec<Peer<RoleServer>>>,
    /// Open 2026-07-28 `subscriptions/listen` streams that asked for
    /// tools/list_changed, keyed by a local id (JSON-RPC ids can repeat
    /// across connections).
    listeners: Mutex<HashMap<u64, SubscriptionSink>>,
    next_listener: AtomicU64,
    /// When the tool list last changed. rmcp acknowledges a subscription before
    /// `listen` registers its sink, so a change can fall in between; a new
    /// listener re-announces recent changes (a spurious list_changed only costs
    /// the client a re-list).
    last_tools_change: Mutex<Option<std::time::Instant>>,
}

impl Shared {
    pub fn new(name: String, state: Option<StateDir>) -> Arc<Self> {
        Arc::new(Self {
            name,
            state,
            tasks: TaskManager::new(),
            dynamic_tools: Mutex::default(),
            flaky_counts: Mutex::default(),
            legacy_peers: Mutex::default(),
            listeners: Mutex::default(),
            next_listener: AtomicU64::new(0),
            last_tools_change: Mutex::default(),
        })
    }

    pub fn state(&self) -> Option<&StateDir> {
        self.state.as_ref()
    }

    pub fn flaky_count(&self, key: &str) -> u64 {
        lock(&self.flaky_counts).get(key).copied().unwrap_or(0)
    }

    pub fn set_flaky_count(&self, key: &str, count: u64) {
        lock(&self.flaky_counts).insert(key.to_owned(), count);
    }

    pub fn has_dynamic_tool(&self, name: &str) -> bool {
        lock(&self.dynamic_tools).contains_key(name)
    }

    /// Returns false if the tool already existed in this version.
    pub fn add_dynamic_tool(&self, name: &str, version: u32) -> bool {
        lock(&self.dynamic_tools).insert(name.to_owned(), version) != Some(version)
    }

    /// Tells every connected client that the tool list changed: legacy
    /// sessions by plain notification, 2026-07-28 clients on their listen
    /// streams (the only place that protocol allows it).
    pub async fn notify_tool_list_changed(&self) {
        *lock(&self.last_tools_change) = Some(std::time::Instant::now());
        let peers: Vec<_> = {
            let mut peers = lock(&self.legacy_peers);
            peers.retain(|p| !p.is_transport_closed());
            peers.clone()
        };
        for peer in peers {
            if let Err(error) = peer.notify_tool_list_changed().await {
                tracing::debug!(%error, "cannot notify a legacy session");
            }
        }
        let sinks: Vec<_> = lock(&self.listeners).values().cloned().collect();
        for sink in sinks {
            if let Err(error) = sink.notify_tool_list_changed().await {
                tracing::debug!(%error, "cannot notify a listen stream");
            }
        }
    }
}

#[derive(Clone)]
pub struct TestServer {
    shared: Arc<Shared>,
    /// Minimum level set by `logging/setLevel` on this legacy session.
    #[expect(
        deprecated,
        reason = "logging is deprecated by SEP-2577 but still served"
    )]
    log_level: Arc<Mutex<Option<rmcp::model::LoggingLevel>>>,
}

impl TestServer {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            log_level: Arc::default(),
        }
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    #[expect(
        deprecated,
        reason = "logging is deprecated by SEP-2577 but still served"
    )]
    pub fn log_level(&self) -> Option<rmcp::model::LoggingLevel> {
        *lock(&self.log_level)
    }
}

#[expect(
    deprecated,
    reason = "logging is deprecated by SEP-2577 but still served"
)]
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_logging()
            .enable_tasks()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                self.shared.name.clone(),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Test upstream for Baton. Every tool is deterministic.")
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut peers = lock(&self.shared.legacy_peers);
        // Drop sessions that have gone away, so HTTP churn does not pile up.
        peers.retain(|p| !p.is_transport_closed());
        peers.push(context.peer);
    }

    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        *lock(&self.log_level) = Some(request.level);
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut all = tools::BUILTIN_TOOLS.clone();
        all.extend(
            lock(&self.shared.dynamic_tools)
                .iter()
                .map(|(name, version)| tools::dynamic_tool(name, *version)),
        );
        // rmcp adds ttlMs 0 / cacheScope on 2026-07-28: the list can change
        // at runtime, so it must not be cached.
        Ok(ListToolsResult::with_all_items(all))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        if let Some(tool) = tools::BUILTIN_TOOLS.iter().find(|t| t.name == name) {
            return Some(tool.clone());
        }
        lock(&self.shared.dynamic_tools)
            .get(name)
            .map(|version| tools::dynamic_tool(name, *version))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        tools::call(self, request, context).await
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        Ok(GetTaskResult::new(
            self.shared.tasks.get_task(&request.task_id)?,
        ))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.shared
            .tasks
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.shared.tasks.cancel_task(&request.task_id)
    }

    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Only tool list changes happen here; rmcp intersects this with
        // what the client asked for.
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let key = self.shared.next_listener.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.listeners).insert(key, context.sink().clone());
        let recent = lock(&self.shared.last_tools_change)
            .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(5));
        if recent {
            let _ = context.sink().notify_tool_list_changed().await;
        }
        context.cancelled().await;
        lock(&self.shared.listeners).remove(&key);
        Ok(())
    }
}
