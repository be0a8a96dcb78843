//! Engine settings. The server's TOML config maps onto this; every field has a default
//! that suits a laptop.

use std::time::Duration;

use baton_core::policy::RetryPolicy;
use baton_core::submit::SubmitDefaults;
use baton_store::ConcurrencyLimit;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This node's stable identity: the owner name of the leases it takes. Kept across
    /// restarts so a node can re-queue at once what its previous run held.
    pub node_id: String,
    /// Whether this node runs tasks (an API-only node does not).
    pub run_workers: bool,
    /// How many tasks this node runs at once.
    pub workers: usize,
    /// Most tasks claimed in one store call.
    pub claim_batch: usize,
    /// How long a lease lasts without a heartbeat.
    pub lease: Duration,
    /// How often held leases are extended (default: a third of the lease).
    pub heartbeat: Duration,
    /// How often an idle dispatcher looks for due tasks (new submissions wake it at once).
    pub poll_interval: Duration,
    /// How often buffered progress reports are written (latest value per task wins).
    pub progress_flush: Duration,
    /// Most submissions group-committed in one transaction.
    pub submit_batch_max: usize,
    pub retry: RetryPolicy,
    pub submit_defaults: SubmitDefaults,
    /// Cap on pending + running + input_required tasks; beyond it submissions get 429.
    pub max_active_tasks: u64,
    /// Finished tasks are deleted this long after they finished.
    pub retention: Duration,
    /// Where finished tasks and workflows are archived before retention deletes them
    /// (none: they are only deleted).
    pub archive: Option<crate::objects::Objects>,
    /// Large results: where they go, and the limits.
    pub payloads: crate::payloads::PayloadConfig,
    /// How much of each task's log is kept (the newest lines).
    pub log_keep: baton_core::log::LogKeep,
    /// What a call costs in US dollars when its tool reports no cost, by qualified tool
    /// name or by server name (the tool's own price wins).
    pub prices: std::collections::BTreeMap<String, f64>,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// How often expired leases are looked for (default: a quarter of the lease, so a
    /// dead worker's task is re-queued within 1.25 leases of its last heartbeat).
    pub rescue_interval: Duration,
    /// On shutdown, how long running tasks may take to finish before they are handed back.
    pub shutdown_grace: Duration,
    /// After a cancel or timeout, how long a tool may take to stop before it is abandoned.
    pub cancel_grace: Duration,
    pub concurrency_limits: Vec<ConcurrencyLimit>,
    /// Rates at which tasks of a tool or server may start, across the cluster.
    pub rate_limits: Vec<baton_store::RateLimit>,
    /// Most running tasks of one group (principal and group key), across the cluster.
    pub group_max: Option<u32>,
    /// Between server and tool in qualified names.
    pub separator: String,
    /// Audit entries are deleted this long after they were written.
    pub audit_retention: Duration,
    /// Most audit entries waiting to be written; past it, entries are dropped and the
    /// gap is recorded when the store takes entries again.
    pub audit_queue: usize,
    /// How this process shows in the list of peers.
    pub presence: Presence,
    /// Webhook deliveries: reachable networks, timeouts, retries.
    pub webhooks: crate::webhooks::WebhookConfig,
    /// Which tools' results answer identical calls, and for how long.
    pub cache: crate::cache::CacheConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let lease = Duration::from_secs(30);
        EngineConfig {
            node_id: "node".into(),
            run_workers: true,
            workers: 64,
            claim_batch: 256,
            lease,
            heartbeat: lease / 3,
            poll_interval: Duration::from_millis(500),
            progress_flush: Duration::from_millis(100),
            submit_batch_max: 2048,
            retry: RetryPolicy::default(),
            submit_defaults: SubmitDefaults::default(),
            max_active_tasks: 100_000,
            retention: Duration::from_secs(24 * 3600),
            archive: None,
            payloads: crate::payloads::PayloadConfig::default(),
            log_keep: baton_core::log::LogKeep::default(),
            prices: Default::default(),
            retention_interval: Duration::from_secs(60),
            rescue_interval: lease / 4,
            shutdown_grace: Duration::from_secs(10),
            cancel_grace: Duration::from_secs(5),
            concurrency_limits: Vec::new(),
            rate_limits: Vec::new(),
            group_max: None,
            separator: baton_core::tool::DEFAULT_SEPARATOR.into(),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            audit_queue: crate::audit::queue::CAPACITY,
            presence: Presence {
                role: "node".into(),
                address: None,
                version: env!("CARGO_PKG_VERSION").into(),
            },
            webhooks: crate::webhooks::WebhookConfig::default(),
            cache: crate::cache::CacheConfig::default(),
        }
    }
}

/// How this process describes itself to the others.
#[derive(Debug, Clone)]
pub struct Presence {
    /// `node`, `api`, `worker` or `mcp`.
    pub role: String,
    /// Where its API listens, if it has one.
    pub address: Option<String>,
    pub version: String,
}

impl EngineConfig {
    /// The configured price of a call of `tool`: its own, else its server's.
    pub fn price_of(&self, tool: &str) -> Option<f64> {
        self.prices.get(tool).copied().or_else(|| {
            let (server, _) = baton_core::tool::split_qualified(tool, &self.separator)?;
            self.prices.get(server).copied()
        })
    }
}
