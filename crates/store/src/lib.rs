//! Baton's persistence layer.
//!
//! [`Store`] is the only way the rest of Baton reads or writes tasks; only this crate
//! knows SQL. Every method that changes a task's state does so in one transaction that
//! also appends the matching entries to the event log, and returns those entries so the
//! engine can publish them to live subscribers.
//!
//! Writes are batch-shaped (`create_tasks`, `claim`, `finish`, `record_progress` take
//! many items): the engine group-commits concurrent requests, so one fsync covers many
//! tasks. Writes made on behalf of a worker name the lease's fencing token and only apply
//! while that lease is current, so a worker that lost its lease can never overwrite the
//! task's new owner.
//!
//! Implementations: [`sqlite::SqliteStore`] (the embedded default) and
//! `postgres::PostgresStore` (feature `postgres`, on by default: several nodes sharing one
//! database). Every implementation passes the conformance suite in [`testsuite`]
//! (feature `testsuite`).
//!
//! # Layout
//!
//! - `lib.rs`: the [`Store`] trait and the types of its calls.
//! - `shared/`: the Rust both backends share, by topic (`tasks`, `claims`, `runs`,
//!   `leases`, `input`, `workflows`, `queues`, `servers`, `peers`), generic over the
//!   dialect (`dialect`): per topic, a `…Sql` trait naming the statements each dialect
//!   writes, and where the Rust must differ too, a `…Writes` trait a backend implements
//!   on its write transaction; plus row decoding (`rows`), list filters (`filters`) and
//!   the events writes append (`events`).
//! - `sqlite/`, `postgres/`: per topic, the dialect's SQL (an impl of the topic's `…Sql`
//!   trait, then the statements only this backend runs) and its `…Writes` impls; `mod.rs`
//!   holds the store and its `Store` impl, which routes each call; `rows` and `error` map
//!   the driver's values and errors. Only in SQLite: the single writer task (`writer`).
//!   Only in PostgreSQL: connection set-up and migrations (`connect`), the change feed
//!   (`listen`), singleton locks (`singletons`).
//! - `testsuite/`: the conformance suite, by topic; `fixtures`: fresh stores and a store
//!   that fails on demand, for tests.

use std::collections::BTreeMap;

use async_trait::async_trait;
use baton_core::policy::Transition;
use baton_core::task::NewTask;
use baton_core::{ErrorCode, Task, TaskEvent, TaskId, TaskStatus, Timestamp};
pub use baton_workflow::WorkflowStatus;
use serde::Serialize;
use serde_json::Value;

#[cfg(feature = "testsuite")]
pub mod fixtures;
#[cfg(feature = "postgres")]
pub mod postgres;
mod shared;
pub mod sqlite;
/// How large documents are stored (compressed); public for `baton bench payloads`.
pub use shared::payload;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub type StoreResult<T> = Result<T, StoreError>;

/// What can go wrong in the store. The variants that a client can wait out map to
/// `unavailable` (HTTP 503 with `Retry-After`); the rest are internal errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the database is locked by another connection or process ({0})")]
    Busy(String),
    #[error("the disk holding the database is full ({0})")]
    DiskFull(String),
    #[error("the database is read-only ({0})")]
    ReadOnly(String),
    #[error("the database is unreachable ({0})")]
    Unavailable(String),
    #[error("the database file is corrupt ({0})")]
    Corrupt(String),
    #[error("could not apply database migrations: {0}")]
    Migrate(String),
    #[error("unexpected data in the database: {0}")]
    Decode(String),
    #[error("database error: {0}")]
    Database(String),
    /// The write conflicts with what is stored (an idempotency key already used for a
    /// different request); nothing of the call was written.
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Busy(_)
            | StoreError::DiskFull(_)
            | StoreError::ReadOnly(_)
            | StoreError::Unavailable(_) => ErrorCode::Unavailable,
            StoreError::Corrupt(_)
            | StoreError::Migrate(_)
            | StoreError::Decode(_)
            | StoreError::Database(_) => ErrorCode::Internal,
            StoreError::Conflict(_) => ErrorCode::Conflict,
        }
    }
}

/// The result of storing one new task.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    Created(Task),
    /// A task with the same owner and idempotency key already exists; nothing was stored.
    Existing(Task),
}

impl CreateOutcome {
    pub fn task(&self) -> &Task {
        match self {
            CreateOutcome::Created(t) | CreateOutcome::Existing(t) => t,
        }
    }
}

/// What [`Store::create_and_claim`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedAndClaimed {
    pub outcomes: Vec<CreateOutcome>,
    /// `created` events, then `started` events of the claimed tasks.
    pub events: Vec<TaskEvent>,
    pub claimed: Vec<Task>,
}

/// Which tools a concurrency limit covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ToolSelector {
    /// One qualified tool name.
    Tool(String),
    /// Every tool whose qualified name starts with this prefix (e.g. `server__`).
    Prefix(String),
}

impl ToolSelector {
    pub fn matches(&self, tool: &str) -> bool {
        match self {
            ToolSelector::Tool(t) => t == tool,
            ToolSelector::Prefix(p) => tool.starts_with(p.as_str()),
        }
    }
}

/// At most `max` tasks matching `selector` may be `running` at once, across all workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyLimit {
    pub selector: ToolSelector,
    pub max: u32,
}

/// At most `rate.count` tasks matching `selector` start per `rate.per`, across all
/// workers: a token bucket kept in the store that holds up to `rate.count` tokens and
/// refills continuously, so a burst of `count` may start at once after a quiet spell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub selector: ToolSelector,
    pub rate: baton_core::auth::Rate,
}

impl RateLimit {
    /// The bucket's name in the store: limits with the same selector share one.
    pub fn key(&self) -> String {
        match &self.selector {
            ToolSelector::Tool(t) => format!("tool:{t}"),
            ToolSelector::Prefix(p) => format!("prefix:{p}"),
        }
    }

    /// A rate limit's bucket as it stands at `now`: what it held, plus what flowed in since,
    /// up to its capacity. A bucket never written starts full; a clock that went back adds
    /// nothing.
    pub fn refill(&self, stored: Option<&RateBucket>, now: Timestamp) -> RateBucket {
        let capacity = i64::from(self.rate.count) * 1000;
        let (milli_tokens, at) = match stored {
            None => (capacity, now),
            Some(b) => {
                let elapsed = (now.as_millis() - b.at.as_millis()).max(0) as i128;
                let per_ms = self.rate.per.as_millis().max(1) as i128;
                // count tokens per `per`, in thousandths of a token per millisecond.
                let inflow = elapsed * i128::from(self.rate.count) * 1000 / per_ms;
                let tokens = (i128::from(b.milli_tokens) + inflow).min(i128::from(capacity)) as i64;
                (tokens, now.max(b.at))
            }
        };
        RateBucket {
            key: self.key(),
            milli_tokens,
            at,
        }
    }

    /// How long until `bucket` (as refilled at its `at`) holds a whole token.
    pub fn next_token_in(&self, bucket: &RateBucket) -> std::time::Duration {
        let missing = (1000 - bucket.milli_tokens).max(0) as u128;
        let per_ms = self.rate.per.as_millis().max(1);
        let ms = (missing * per_ms).div_ceil(u128::from(self.rate.count) * 1000);
        std::time::Duration::from_millis(ms as u64)
    }
}

/// A rate limit's token bucket as the store keeps it: `milli_tokens` thousandths of a
/// token at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateBucket {
    pub key: String,
    pub milli_tokens: i64,
    pub at: Timestamp,
}

impl RateBucket {
    /// How many tasks may start on this bucket now.
    pub fn whole_tokens(&self) -> u32 {
        u32::try_from(self.milli_tokens.max(0) / 1000).unwrap_or(u32::MAX)
    }
}

/// A worker asking for up to `limit` tasks.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    pub owner: &'a str,
    pub limit: usize,
    pub now: Timestamp,
    pub lease_until: Timestamp,
    /// The fencing token written into every lease granted by this claim.
    pub token: i64,
    pub limits: &'a [ConcurrencyLimit],
    pub rates: &'a [RateLimit],
    /// At most this many tasks of one group (owner and group key) running at once.
    pub group_max: Option<u32>,
}

/// A progress report from the worker holding `token`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    pub id: TaskId,
    pub token: i64,
    pub progress: Option<f64>,
    pub message: Option<String>,
    pub at: Timestamp,
}

/// A finished run, applied only while `token` is the task's current lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub id: TaskId,
    pub token: i64,
    pub transition: Transition,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FinishOutcome {
    Applied(TaskEvent),
    /// The lease was no longer current (expired and rescued, or the task was cancelled):
    /// nothing was written.
    LeaseLost,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The task was pending and is now cancelled.
    Cancelled(Task, TaskEvent),
    /// The task is running; the request was recorded and the worker will be told.
    Requested(Task, TaskEvent),
    /// The task is running and cancellation was already requested.
    AlreadyRequested(Task),
    /// The task had already finished; nothing changed.
    AlreadyFinal(Task),
    NotFound,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RescheduleOutcome {
    /// Changed, with its `reprioritized` event.
    Rescheduled(Task, TaskEvent),
    /// Only pending tasks can be changed.
    NotPending(Task),
    NotFound,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    Retried(Task, TaskEvent),
    /// Only failed or cancelled tasks can be retried by hand.
    NotRetryable(Task),
    NotFound,
}

/// The result of answering a task's input requests.
#[derive(Debug, Clone, PartialEq)]
pub enum InputOutcome {
    /// Stored; the task is `running` again and its tool will pick the answers up.
    Accepted(Task, TaskEvent),
    /// The task is not waiting for input (any more).
    NotWaiting(Task),
    NotFound,
}

/// An MCP server registered at runtime; `config` is its definition as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredServer {
    pub name: String,
    pub config: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An API key as stored: never its secret, only the secret's hash.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    /// Public, 16 hex digits; also the middle of the secret (`bk_<key id>_…`).
    pub key_id: String,
    pub name: String,
    /// The tenant the key acts as.
    pub principal: String,
    /// Scope names (`tasks:read`, …).
    pub scopes: Vec<String>,
    pub secret_hash: String,
    /// After a rotation: the previous secret's hash, valid until `previous_until`.
    pub previous_hash: Option<String>,
    pub previous_until: Option<Timestamp>,
    /// Requests per period allowed for the key, e.g. `50/s`.
    pub rate_limit: Option<String>,
    /// Most active tasks the key's principal may have through it.
    pub max_active: Option<u64>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// An entry to append to the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewAuditEntry {
    pub at: Timestamp,
    /// Who asked (the principal the request acted as, or `-` when unknown).
    pub principal: String,
    /// How they proved it: `key:<id>`, `jwt:<subject>`, `none`, or what was offered.
    pub credential: String,
    /// What was asked, e.g. `tasks.submit`, `keys.revoke`, `auth.failed`.
    pub action: String,
    /// What it was asked of (a task id, a key id, a server name).
    pub target: Option<String>,
    /// `ok`, `denied`, `failed`, `rate_limited`, `unauthenticated`.
    pub outcome: String,
    /// The HTTP status answered, when there was one.
    pub status: Option<u16>,
    /// The peer's address.
    pub remote: Option<String>,
    pub request_id: Option<String>,
    /// Anything else worth keeping (never a secret).
    pub detail: Option<Value>,
}

/// An audit log entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: NewAuditEntry,
}

/// Filters for [`Store::list_audit`]; newest first, `before_seq` is the cursor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub principal: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// What a process of a deployment (a node, a worker) reports at each heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerReport {
    pub id: String,
    /// `node` (API and workers), `api` (no workers), `worker` (no API), `mcp` (stdio).
    pub role: String,
    /// Where its API listens, if it has one.
    pub address: Option<String>,
    pub version: String,
    pub started_at: Timestamp,
    pub now: Timestamp,
    /// Tasks it runs now.
    pub running: u64,
    /// Tasks it finished since it started.
    pub finished: u64,
    /// Tasks it finished per second, recently.
    pub throughput: f64,
}

/// How a peer is doing, as far as the store knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Heartbeating.
    Live,
    /// Stopped cleanly.
    Stopped,
    /// Its heartbeats stopped; its leases were rescued.
    Lost,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Live => "live",
            PeerState::Stopped => "stopped",
            PeerState::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<PeerState> {
        match s {
            "live" => Some(PeerState::Live),
            "stopped" => Some(PeerState::Stopped),
            "lost" => Some(PeerState::Lost),
            _ => None,
        }
    }
}

/// A peer as last reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peer {
    pub id: String,
    pub role: String,
    pub address: Option<String>,
    pub version: String,
    pub state: PeerState,
    pub started_at: Timestamp,
    pub last_heartbeat: Timestamp,
    pub running: u64,
    pub finished: u64,
    pub throughput: f64,
    /// Asked to stop claiming tasks (it finishes what it runs).
    pub draining: bool,
}

/// Something other processes sharing the store committed, as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteChange {
    /// Events another process wrote (in commit order per task).
    Events(Vec<TaskEvent>),
    /// The feed was interrupted (e.g. a reconnect): changes may have been missed, so
    /// whatever waits on them should look at the store again.
    Gap,
}

/// Proof of holding a deployment-wide singleton role (e.g. maintenance). Dropping it
/// gives the role up; so does losing the connection that holds it.
#[async_trait]
pub trait SingletonGuard: Send + Sync {
    /// Whether the role is still held (checks the connection holding it).
    async fn held(&self) -> bool;

    /// Gives the role up now, cleanly (closing what holds it), rather than when dropped.
    async fn release(self: Box<Self>) {}
}

/// What a worker's heartbeat learned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeartbeatReply {
    /// The leases extended, as (task, lease token): every unexpired lease the owner
    /// holds. A run (task and token) missing here has lost its lease, even when the same
    /// task is held again under a newer token.
    pub held: Vec<(TaskId, i64)>,
    /// Tasks this worker runs whose cancellation was requested (possibly through another
    /// node).
    pub cancel_requested: Vec<TaskId>,
}

/// Which leases to give back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LeaseSelector<'a> {
    /// Every lease that expired before this time.
    ExpiredBefore(Timestamp),
    /// Every lease held by this owner.
    Owner(&'a str),
}

/// How leases are given back by [`Store::requeue_leases`].
#[derive(Debug, Clone, PartialEq)]
pub struct Requeue<'a> {
    pub selector: LeaseSelector<'a>,
    pub now: Timestamp,
    /// Whether the interrupted run counts as an attempt. Expiry and crashes count (a task
    /// that kills its worker every time must not loop for ever); a graceful hand-back
    /// does not.
    pub count_attempt: bool,
    /// The event recorded for each task (`lease_expired` or `released`).
    pub kind: baton_core::EventKind,
    pub message: &'a str,
}

/// Filters for [`Store::list_tasks`]; newest first, `before_seq` is the cursor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskQuery {
    pub owner: Option<String>,
    pub status: Option<TaskStatus>,
    pub tool: Option<String>,
    pub queue: Option<String>,
    /// The steps of one workflow.
    pub workflow_id: Option<String>,
    /// The children of one task.
    pub parent_id: Option<TaskId>,
    /// One group key (`""`: tasks without one).
    pub group_key: Option<String>,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// A workflow about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkflow {
    pub id: String,
    pub name: String,
    pub owner: String,
    /// The definition as submitted (validated), as JSON.
    pub definition: Value,
    pub created_at: Timestamp,
}

/// A stored workflow. Its steps' tasks carry its id ([`baton_core::task::StepRef`]);
/// `steps` keeps what no task records: the state of steps that ended without one
/// (`skipped`, `cancelled` before they started, `failed` when their arguments could not
/// be built), by step id, as `{"state": …, "error": {…}}`. Its JSON is also how the
/// archive keeps a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Workflow {
    pub id: String,
    pub seq: i64,
    pub name: String,
    pub owner: String,
    pub definition: Value,
    pub status: WorkflowStatus,
    pub steps: serde_json::Map<String, Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When it last reached a final status.
    pub completed_at: Option<Timestamp>,
}

/// Filters for [`Store::list_workflows`]; newest first, `before_seq` is the cursor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowQuery {
    pub owner: Option<String>,
    pub status: Option<WorkflowStatus>,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// A change to a workflow, applied in one transaction only while its status is one of
/// `expect` (so a workflow cancelled meanwhile gets no new step).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowUpdate {
    pub id: String,
    pub expect: Vec<WorkflowStatus>,
    pub now: Timestamp,
    pub status: Option<WorkflowStatus>,
    pub steps: Option<serde_json::Map<String, Value>>,
    /// Step tasks to store with the change.
    pub tasks: Vec<NewTask>,
    /// Failed or cancelled step tasks to move back to `pending` with the change, in the
    /// same transaction (a workflow's retry: no reader ever sees the workflow running
    /// again with those steps still ended, or the steps pending under a workflow that
    /// is still over). Tasks in any other state are left as they are.
    pub retry: Vec<TaskId>,
    /// Unfinished step tasks to cancel (pending ones at once, running ones by request)
    /// with the change, in the same transaction: only while the workflow's status is one
    /// of `expect` (finishing a cancel never touches the steps of a workflow retried
    /// meanwhile).
    pub cancel: Vec<TaskId>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowUpdated {
    Applied {
        workflow: Workflow,
        outcomes: Vec<CreateOutcome>,
        events: Vec<TaskEvent>,
    },
    /// The workflow's status was not one of `expect`: nothing was written.
    Refused(Workflow),
    NotFound,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    pub name: String,
    pub paused: bool,
    /// Tasks per status (every status is present, zero included).
    pub counts: BTreeMap<String, u64>,
    /// Tasks completed in the last minute.
    pub completed_last_minute: u64,
    /// When the oldest runnable pending task became runnable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_pending_run_at: Option<Timestamp>,
}

/// A schedule as stored: a submission made on a cron, per principal.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSchedule {
    pub owner: String,
    pub name: String,
    pub cron: String,
    /// An IANA time zone name.
    pub timezone: String,
    /// The submission (`POST /v1/tasks`'s body), as JSON text.
    pub task: String,
    /// `allow` or `skip`.
    pub overlap: String,
    /// `none` or `latest`.
    pub catch_up: String,
    pub paused: bool,
    /// The next tick.
    pub next_at: Timestamp,
    /// The last tick that fired, and the task it made.
    pub last_at: Option<Timestamp>,
    pub last_task_id: Option<TaskId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A tick a schedule fired, and the task it made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleRun {
    pub tick_at: Timestamp,
    pub task_id: TaskId,
}

/// A webhook as stored: where a principal's events are sent.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWebhook {
    pub id: String,
    pub owner: String,
    pub url: String,
    /// Concrete event types (`task.completed`, …), wildcards expanded.
    pub events: Vec<String>,
    pub tool: Option<String>,
    pub queue: Option<String>,
    pub workflow: Option<String>,
    /// Events of every principal's tasks and workflows (made with an `admin` credential).
    pub all_owners: bool,
    /// `whsec_<base64>`.
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_until`.
    pub previous_secret: Option<String>,
    pub previous_until: Option<Timestamp>,
    pub description: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A delivery in the outbox: one event for one webhook (or a task's callback URL).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The `webhook-id` header, the same for every attempt.
    pub id: String,
    /// `None` for a task's own callback.
    pub webhook_id: Option<String>,
    /// The owner of the task or workflow (or webhook) the event is about.
    pub owner: String,
    /// A task's callback URL (`None` for a webhook's delivery: the webhook's URL).
    pub url: Option<String>,
    pub event_type: String,
    pub task_id: Option<String>,
    pub workflow_id: Option<String>,
    /// What else the event is about (a server's name).
    pub subject: Option<String>,
    pub event_at: Timestamp,
    /// The body, fixed by the first attempt that recorded its outcome.
    pub payload: Option<String>,
    /// `pending`, `delivered` or `failed` (dead-lettered).
    pub status: String,
    /// Attempts claimed so far (the current one included, while leased).
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub lease_until: Option<Timestamp>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<u64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub attempt: u32,
    pub at: Timestamp,
    /// The HTTP status, when an answer came.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeliveryNext {
    Delivered,
    RetryAt(Timestamp),
    /// Given up (dead letter).
    Failed,
}

/// The outcome of a claimed attempt ([`Store::record_delivery_attempt`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub delivery_id: String,
    /// The attempt number the claim handed out: the write applies only while it is the
    /// delivery's latest claim.
    pub attempt: u32,
    pub at: Timestamp,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// The body sent, kept for later attempts if none is kept yet.
    pub payload: Option<String>,
    pub next: DeliveryNext,
}

/// A webhook-wide event that is about no task (`server.down`, `server.up`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewOwnerlessEvent {
    /// Names the occurrence: processes noticing the same occurrence use the same key, and
    /// it is enqueued once per webhook.
    pub key: String,
    pub event_type: String,
    pub subject: Option<String>,
    pub payload: String,
    pub at: Timestamp,
}

/// What [`Store::analytics`] groups tasks by (a column of theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalyticsKey {
    Tool,
    Queue,
    Owner,
    /// Workflow steps only.
    Workflow,
}

/// What [`Store::analytics`] aggregates: the tasks that finished in `[since, until)`
/// (each finish when it happened), and those created in it that are still open, of
/// `owner` (every owner when `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsQuery {
    pub since: Timestamp,
    pub until: Timestamp,
    pub key: AnalyticsKey,
    pub owner: Option<String>,
    /// Width of the series' buckets, in milliseconds (from `since`). From a minute up,
    /// finishes in whole minutes count in the bucket their minute starts in.
    pub bucket_ms: i64,
}

/// How far back analytics keep their per-minute rollup.
pub const ANALYTICS_KEEP: std::time::Duration = std::time::Duration::from_secs(400 * 24 * 3600);

/// Upper bounds (exclusive, milliseconds) of the duration buckets of
/// [`AnalyticsCount::wait`] and [`AnalyticsCount::run`]; a last bucket holds everything
/// longer.
pub const DURATION_BOUNDS_MS: [i64; 22] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
    200_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000,
];

/// Tasks of one group and tool in one status: finished in the window with it, or still
/// in it (open statuses, no durations).
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsCount {
    pub group: Option<String>,
    pub tool: String,
    pub status: String,
    pub n: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// What those of them that reported a cost (`_meta["baton/cost"].usd`) cost, and how
    /// many did.
    pub cost_usd: f64,
    pub costed: u64,
    pub input_tokens: f64,
    pub output_tokens: f64,
    /// Of them, answered from the result cache (the cost and tokens above leave them
    /// out), and cacheable calls that ran.
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// What the calls the cache answered from reported they cost, and how many of the
    /// hits had such a report.
    pub saved_usd: f64,
    pub saved_costed: u64,
    /// How many waited (due to start) and ran (start to end) how long, per bucket of
    /// [`DURATION_BOUNDS_MS`] (one more for longer); tasks that never started count in
    /// neither.
    pub wait: Vec<u64>,
    pub run: Vec<u64>,
}

/// Tasks of one group and tool that reached `status` in series bucket `bucket`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsPoint {
    pub group: Option<String>,
    pub tool: String,
    pub status: String,
    pub bucket: i64,
    pub n: u64,
}

/// The aggregates of [`Store::analytics`], computed by the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalyticsRows {
    pub counts: Vec<AnalyticsCount>,
    pub series: Vec<AnalyticsPoint>,
}

/// What the archive keeps as one item: a task of no workflow, or a workflow with its
/// steps' tasks (a step is never archived apart from its workflow).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveKind {
    Task,
    Workflow,
}

impl ArchiveKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveKind::Task => "task",
            ArchiveKind::Workflow => "workflow",
        }
    }

    pub fn parse(s: &str) -> Option<ArchiveKind> {
        match s {
            "task" => Some(ArchiveKind::Task),
            "workflow" => Some(ArchiveKind::Workflow),
            _ => None,
        }
    }
}

/// An item retention would delete now and no archive batch holds yet
/// ([`Store::archivable`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Archivable {
    pub kind: ArchiveKind,
    /// A task id, or a workflow id.
    pub id: String,
    /// When it finished: its object is partitioned by this day (UTC).
    pub completed_at: Timestamp,
}

/// A batch of items archived together in one object, recorded before the object is
/// written ([`Store::begin_archive`]) so that a crash leaves it to be written again.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveBatch {
    pub id: String,
    pub kind: ArchiveKind,
    /// `YYYY-MM-DD`, the UTC day its items finished.
    pub day: String,
    /// The object's key, under the archive's prefix.
    pub path: String,
    pub created_at: Timestamp,
    /// The ids of its items.
    pub members: Vec<String>,
}

/// A task with its event log, as the archive keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub task: Task,
    pub events: Vec<TaskEvent>,
}

/// One item of a batch as the store has it now ([`Store::archive_contents`]).
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // most batches hold tasks, one per item
pub enum ArchivedItem {
    Task(TaskRecord),
    Workflow {
        workflow: Workflow,
        steps: Vec<TaskRecord>,
    },
}

impl ArchivedItem {
    /// What [`Store::complete_archive`] compares with the rows it deletes.
    pub fn written(&self) -> ArchiveWritten {
        match self {
            ArchivedItem::Task(r) => ArchiveWritten {
                kind: ArchiveKind::Task,
                id: r.task.id.to_string(),
                updated_at: r.task.updated_at,
                steps: Vec::new(),
            },
            ArchivedItem::Workflow { workflow, steps } => ArchiveWritten {
                kind: ArchiveKind::Workflow,
                id: workflow.id.clone(),
                updated_at: workflow.updated_at,
                steps: steps
                    .iter()
                    .map(|s| (s.task.id, s.task.updated_at))
                    .collect(),
            },
        }
    }
}

/// An item as a batch's object holds it: enough to tell whether its rows changed since.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveWritten {
    pub kind: ArchiveKind,
    pub id: String,
    pub updated_at: Timestamp,
    /// A workflow's steps' tasks and their `updated_at`.
    pub steps: Vec<(TaskId, Timestamp)>,
}

/// What [`Store::complete_archive`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchiveCompletion {
    /// The index was written, the items deleted and the batch marked done.
    Done { items: u64, tasks: u64 },
    /// Some items changed (retried by hand, say) or vanished since the object was
    /// written: they left the batch, nothing else was done, and the object must be
    /// written again without them before the batch can complete.
    Changed { dropped: Vec<String> },
    /// The batch was complete already (or never recorded).
    AlreadyDone,
}

/// Where an archived task or workflow is ([`Store::archived`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveEntry {
    pub kind: ArchiveKind,
    pub id: String,
    pub owner: String,
    pub path: String,
    pub day: String,
    pub archived_at: Timestamp,
}

/// The persistence contract. See the crate docs for the rules every method follows.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Stores new tasks (one transaction). A task whose owner and idempotency key match
    /// a stored task is not stored again: its outcome is `Existing` with the stored task.
    async fn create_tasks(
        &self,
        tasks: Vec<NewTask>,
    ) -> StoreResult<(Vec<CreateOutcome>, Vec<TaskEvent>)>;

    /// Stores new tasks and, in the same transaction where the store can, claims for the
    /// submitting node (`claim`), so a node with free workers starts work without another
    /// round trip. The claim follows the usual order, so new tasks jump no queue.
    async fn create_and_claim(
        &self,
        tasks: Vec<NewTask>,
        claim: Option<ClaimRequest<'_>>,
    ) -> StoreResult<CreatedAndClaimed> {
        let (outcomes, mut events) = self.create_tasks(tasks).await?;
        let claimed = match claim {
            Some(req) => {
                let (claimed, started) = self.claim(&req).await?;
                events.extend(started);
                claimed
            }
            None => Vec::new(),
        };
        Ok(CreatedAndClaimed {
            outcomes,
            events,
            claimed,
        })
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>>;

    async fn list_tasks(&self, query: &TaskQuery) -> StoreResult<Vec<Task>>;

    /// Leases up to `limit` runnable tasks to `owner`: pending, `run_at` reached, queue
    /// not paused, concurrency limits respected; highest priority first, then earliest
    /// `run_at`, then oldest. Each claimed task becomes `running` with `attempt + 1`.
    async fn claim(&self, req: &ClaimRequest<'_>) -> StoreResult<(Vec<Task>, Vec<TaskEvent>)>;

    /// Extends every unexpired lease `owner` holds to `lease_until`. An expired lease is
    /// lost even before it is rescued: it is not extended, and writes under it fail.
    async fn heartbeat(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<HeartbeatReply>;

    /// Records progress of running tasks; updates whose lease is no longer current (taken
    /// over, or expired at the update's time) are dropped. Returns the events written.
    async fn record_progress(&self, updates: Vec<ProgressUpdate>) -> StoreResult<Vec<TaskEvent>>;

    /// Applies finished runs (one transaction), each fenced by its lease token and
    /// applied only if the lease has not expired at the item's time. The outcomes are in
    /// the order of `items`.
    async fn finish(&self, items: Vec<Finish>) -> StoreResult<Vec<FinishOutcome>>;

    /// Cancels a pending task at once, or records a cancellation request for a running one.
    async fn request_cancel(&self, id: TaskId, now: Timestamp) -> StoreResult<CancelOutcome>;

    /// Moves a failed or cancelled task back to `pending` with its attempts reset.
    async fn retry_task(&self, id: TaskId, now: Timestamp) -> StoreResult<RetryOutcome>;

    /// Gives a pending task a new priority and/or due time (`None` keeps it), with a
    /// `reprioritized` event saying what changed.
    async fn reschedule(
        &self,
        id: TaskId,
        priority: Option<i32>,
        run_at: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<RescheduleOutcome>;

    /// Gives leases back: their tasks become `pending` again (or `failed`, when the
    /// interrupted run was the last attempt and counts).
    async fn requeue_leases(&self, req: &Requeue<'_>) -> StoreResult<Vec<TaskEvent>>;

    /// Deletes up to `limit` finished tasks (and their events) that finished before
    /// `before`, oldest first, and the workflows over since before `before` with all their
    /// steps' tasks. A workflow's steps are never deleted apart from it (a workflow that
    /// can still be retried keeps its completed steps' results), and a task's children stay
    /// while it runs. Tasks with a time to live of their own go, under the same rules,
    /// once finished and past `expires_at` (`now`). Returns how many tasks were deleted.
    async fn purge_finished(
        &self,
        before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<u64>;

    /// Up to `limit` items that [`Store::purge_finished`] would delete now, by the same
    /// rules (a workflow with its steps, a task of no workflow once its parent no longer
    /// runs, tasks past their own time to live), that no archive batch holds yet; oldest
    /// first.
    async fn archivable(
        &self,
        before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Archivable>>;

    /// Records archive batches in `writing` with their members (one transaction). An item
    /// another batch holds already is left out; a batch left with none is not recorded.
    /// Returns the batches recorded, with the members they got.
    async fn begin_archive(&self, batches: &[ArchiveBatch]) -> StoreResult<Vec<ArchiveBatch>>;

    /// The batches still `writing` (a crash or a failed write left them), oldest first.
    async fn archive_batches_writing(&self) -> StoreResult<Vec<ArchiveBatch>>;

    /// The batch's items as the store has them now, each task with its events, each
    /// workflow with its steps' tasks; items no longer finished, or gone, are left out.
    async fn archive_contents(&self, batch: &ArchiveBatch) -> StoreResult<Vec<ArchivedItem>>;

    /// After the batch's object was written with `written`: in one transaction, unless
    /// an item changed meanwhile (or a member is not in `written`), writes the index
    /// entries of its tasks (steps included) and workflows, deletes their rows (events
    /// and logs too) and marks the batch `done`. A changed item instead leaves the batch
    /// and nothing else is done ([`ArchiveCompletion::Changed`]).
    async fn complete_archive(
        &self,
        batch_id: &str,
        written: &[ArchiveWritten],
        now: Timestamp,
    ) -> StoreResult<ArchiveCompletion>;

    /// Where the archived task or workflow `id` is, if it was archived.
    async fn archived(&self, kind: ArchiveKind, id: &str) -> StoreResult<Option<ArchiveEntry>>;

    /// Appends lines to their tasks' logs, in order, and trims each of those logs to
    /// `keep` (its newest lines). Returns the lines numbered.
    async fn append_logs(
        &self,
        lines: Vec<baton_core::log::NewLogLine>,
        keep: baton_core::log::LogKeep,
    ) -> StoreResult<Vec<baton_core::log::LogLine>>;

    /// The task's log lines with `seq > after_seq`, oldest first.
    async fn task_logs(
        &self,
        id: TaskId,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<baton_core::log::LogLine>>;

    /// The task's events with `seq > after_seq`, oldest first.
    async fn task_events(
        &self,
        id: TaskId,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<TaskEvent>>;

    /// Counts, duration histograms and a time series of the tasks `q` selects, grouped by
    /// `q.key` and tool: whole minutes from the rollup [`Store::fold_analytics`] keeps, the
    /// rest (and series finer than a minute) from the tasks.
    async fn analytics(&self, q: &AnalyticsQuery) -> StoreResult<AnalyticsRows>;

    /// Stores a new schedule; `false` (nothing written) when its owner has one of that
    /// name.
    async fn insert_schedule(&self, s: &StoredSchedule) -> StoreResult<bool>;

    /// Replaces a schedule's definition, pause and next tick (its last fire and runs
    /// stay); `false` when there is none of that name.
    async fn update_schedule(&self, s: &StoredSchedule) -> StoreResult<bool>;

    async fn get_schedule(&self, owner: &str, name: &str) -> StoreResult<Option<StoredSchedule>>;

    /// The schedules of `owner` (of everyone when `None`), by name.
    async fn list_schedules(&self, owner: Option<&str>) -> StoreResult<Vec<StoredSchedule>>;

    /// Deletes a schedule and the record of its runs (not their tasks); `false` when there
    /// was none.
    async fn delete_schedule(&self, owner: &str, name: &str) -> StoreResult<bool>;

    /// Unpaused schedules due at `now`, earliest first, at most `limit`.
    async fn due_schedules(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<StoredSchedule>>;

    /// The earliest next tick of any unpaused schedule.
    async fn next_schedule_at(&self) -> StoreResult<Option<Timestamp>>;

    /// Moves a schedule's next tick from `from` to `to`, recording the run when one fired;
    /// `false`, with nothing written, when the next tick is no longer `from`.
    #[allow(clippy::too_many_arguments)]
    async fn advance_schedule(
        &self,
        owner: &str,
        name: &str,
        from: Timestamp,
        to: Timestamp,
        fired: Option<ScheduleRun>,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// The runs a schedule made, newest first.
    async fn schedule_runs(
        &self,
        owner: &str,
        name: &str,
        limit: u32,
    ) -> StoreResult<Vec<ScheduleRun>>;

    /// Stores a new webhook (its id must be new).
    async fn insert_webhook(&self, w: &StoredWebhook) -> StoreResult<()>;

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<StoredWebhook>>;

    /// The webhooks of `owner` (of everyone when `None`), oldest first.
    async fn list_webhooks(&self, owner: Option<&str>) -> StoreResult<Vec<StoredWebhook>>;

    /// Deletes a webhook of `owner` with its deliveries; `false` when there was none.
    async fn delete_webhook(&self, owner: &str, id: &str) -> StoreResult<bool>;

    /// Gives a webhook a new secret; the current one keeps signing until
    /// `previous_until`. `false` when `owner` has no such webhook.
    async fn rotate_webhook_secret(
        &self,
        owner: &str,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Leases up to `limit` pending deliveries due at `now` until `lease_until`, counting
    /// an attempt on each; a leased delivery is claimable again once its lease expired.
    /// Concurrent claimers never get the same delivery.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;

    /// Records a claimed attempt and what becomes of the delivery, only while the attempt
    /// is the delivery's latest claim and it is pending; `false` (nothing written)
    /// otherwise. Keeps the newest attempts of a delivery only.
    async fn record_delivery_attempt(&self, r: &AttemptRecord) -> StoreResult<bool>;

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>>;

    /// A webhook's deliveries, newest first, those before `before` (event time, id).
    async fn list_deliveries(
        &self,
        webhook_id: &str,
        before: Option<(Timestamp, String)>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;

    /// A delivery's attempts (the newest kept), oldest first.
    async fn delivery_attempts(&self, delivery_id: &str) -> StoreResult<Vec<DeliveryAttempt>>;

    /// Makes a delivery of webhook `webhook_id` pending and due at `now` again; `false`
    /// when there is no such delivery.
    async fn redeliver(
        &self,
        webhook_id: &str,
        delivery_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Enqueues an event about no task for every webhook (of any owner) subscribed to it;
    /// an event whose key was enqueued before is not enqueued again. Returns how many
    /// deliveries were made.
    async fn enqueue_ownerless_event(&self, e: &NewOwnerlessEvent) -> StoreResult<u64>;

    /// Records that MCP server `name` is up or down as of `at`. Only the call that changes
    /// the recorded health (or first records it down) enqueues `event` (whose key it
    /// completes with the change's time), so a change noticed by several processes is
    /// delivered once. Returns how many deliveries were made.
    async fn record_server_health(
        &self,
        name: &str,
        up: bool,
        event: &NewOwnerlessEvent,
    ) -> StoreResult<u64>;

    /// Deletes up to `limit` finished deliveries (and their attempts) last changed before
    /// `before`, and the callback URLs of tasks that are gone; returns how many deliveries.
    async fn purge_deliveries(&self, before: Timestamp, limit: u32) -> StoreResult<u64>;

    /// Folds what finished in whole minutes before `upto` into the analytics rollup, at
    /// most `max_minutes` minutes in one transaction, each minute once (across processes
    /// too); returns the instant folded up to. Called by the maintenance holder with
    /// `upto` a little in the past, so finishes still being written are not missed.
    async fn fold_analytics(&self, upto: Timestamp, max_minutes: u32) -> StoreResult<Timestamp>;

    /// Every queue of `owner` (of every owner when `None`) that holds tasks or has a
    /// setting, with its counts per status.
    async fn queue_stats(
        &self,
        now: Timestamp,
        owner: Option<&str>,
    ) -> StoreResult<Vec<QueueStats>>;

    /// Pauses or resumes `owner`'s queue: claims skip its tasks while it is paused.
    async fn set_queue_paused(
        &self,
        owner: &str,
        queue: &str,
        paused: bool,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Durations (ms) of the tool's most recent successful runs, newest first.
    async fn recent_durations(&self, tool: &str, limit: u32) -> StoreResult<Vec<u64>>;

    /// Tasks that are pending, running or waiting for input.
    async fn count_active(&self) -> StoreResult<u64>;

    /// Keeps handler state across attempts (e.g. an upstream task id), fenced by the lease.
    /// `false` when the lease is no longer current.
    async fn save_checkpoint(
        &self,
        id: TaskId,
        token: i64,
        checkpoint: Value,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// A running task's tool waits for input: status `input_required` with `requests`
    /// (JSON object, one entry per request), fenced by the lease. `None` when the lease is
    /// no longer current.
    async fn set_input_required(
        &self,
        id: TaskId,
        token: i64,
        requests: Value,
        now: Timestamp,
    ) -> StoreResult<Option<TaskEvent>>;

    /// A client answers: the responses are stored for the tool and the task is `running`
    /// again.
    async fn provide_input(
        &self,
        id: TaskId,
        responses: Value,
        now: Timestamp,
    ) -> StoreResult<InputOutcome>;

    /// The tool collects (and clears) stored responses, fenced by the lease.
    async fn take_input(&self, id: TaskId, token: i64) -> StoreResult<Option<Value>>;

    /// Stores a new API key (its id must be new).
    async fn put_key(&self, key: StoredKey) -> StoreResult<()>;

    async fn get_key(&self, key_id: &str) -> StoreResult<Option<StoredKey>>;

    /// Every key (revoked and expired ones included) changed at or after `since` (all
    /// when `None`), oldest change first: how nodes keep their key caches current.
    async fn list_keys(&self, since: Option<Timestamp>) -> StoreResult<Vec<StoredKey>>;

    /// Revokes a key; `false` when there is no such key or it was revoked already.
    async fn revoke_key(&self, key_id: &str, now: Timestamp) -> StoreResult<bool>;

    /// Gives a key a new secret hash; the previous one stays valid until
    /// `previous_until`. `false` when there is no such usable key.
    async fn rotate_key(
        &self,
        key_id: &str,
        new_hash: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Appends entries to the audit log (one transaction).
    async fn append_audit(&self, entries: Vec<NewAuditEntry>) -> StoreResult<()>;

    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;

    /// Deletes up to `limit` audit entries older than `before`, oldest first.
    async fn purge_audit(&self, before: Timestamp, limit: u32) -> StoreResult<u64>;

    /// Settles the tasks waiting for task `leader`, an identical call (the result
    /// cache's single-flight): once it has completed they complete with its result; once
    /// it has failed or been cancelled (or is gone) the oldest runs itself and the others
    /// wait for that one. Nothing happens while it is in flight. Returns the events
    /// written.
    async fn settle_followers(&self, leader: TaskId, now: Timestamp)
    -> StoreResult<Vec<TaskEvent>>;

    /// Settles (as [`Store::settle_followers`]) up to `limit` calls that ended while
    /// tasks still wait for them: the ones a crash or another path left.
    async fn settle_ended_followed(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<TaskEvent>>;

    /// Calls of `tool` (of every tool for `None`) completed before `now` stop answering
    /// from the result cache. Returns how many entries completed since `since` (the
    /// oldest that could still answer) were dropped.
    async fn invalidate_cache(
        &self,
        tool: Option<&str>,
        now: Timestamp,
        since: Timestamp,
    ) -> StoreResult<u64>;

    async fn list_servers(&self) -> StoreResult<Vec<StoredServer>>;

    /// Inserts or replaces a server definition.
    async fn put_server(&self, name: &str, config: Value, now: Timestamp) -> StoreResult<()>;

    /// `false` when there was no such server.
    async fn delete_server(&self, name: &str) -> StoreResult<bool>;

    /// Records a peer's heartbeat (inserting it, or making it live again).
    /// Keeps the planner's statistics of the task table fresh enough for claims to be
    /// planned well (PostgreSQL: `ANALYZE tasks` when it never ran, or many rows changed
    /// since); `true` if it refreshed them. Called by the maintenance holder.
    async fn refresh_statistics(&self) -> StoreResult<bool> {
        Ok(false)
    }

    /// The secret `name` every process of the deployment shares: `candidate` if this is
    /// the first call for it, else what the first call stored.
    async fn shared_secret(
        &self,
        name: &str,
        candidate: &str,
        now: Timestamp,
    ) -> StoreResult<String>;

    /// Records that a client session (identified by a hash of its id) ended.
    async fn end_session(&self, id_hash: &str, now: Timestamp) -> StoreResult<()>;

    /// Sessions ended at `since` or later (hash, when), oldest first.
    async fn ended_sessions(&self, since: Timestamp) -> StoreResult<Vec<(String, Timestamp)>>;

    /// Forgets sessions ended before `before`; returns how many.
    async fn forget_ended_sessions(&self, before: Timestamp) -> StoreResult<u64>;

    /// Records a peer's heartbeat; returns whether it was asked to drain
    /// ([`Store::drain_peer`]), so the heartbeat is also how it learns.
    async fn report_peer(&self, report: &PeerReport) -> StoreResult<bool>;

    /// Every known peer, by id.
    async fn list_peers(&self) -> StoreResult<Vec<Peer>>;

    /// Every rate limit bucket as last written (see [`RateLimit`]).
    async fn rate_buckets(&self) -> StoreResult<Vec<RateBucket>>;

    /// Asks live peer `id` to stop claiming tasks (it reads this with its next heartbeat);
    /// `false` if no live peer has that id.
    async fn drain_peer(&self, id: &str) -> StoreResult<bool>;

    /// A peer stopping cleanly says so; `false` if it was unknown.
    async fn peer_stopped(&self, id: &str, now: Timestamp) -> StoreResult<bool>;

    /// Marks live peers whose last heartbeat is older than `before` as lost, and returns
    /// them (their leases are the caller's to rescue). Forgets peers stopped or lost
    /// before `forget_before`. `caller` is never marked: a process that asks is alive,
    /// however long it stalled.
    async fn mark_lost_peers(
        &self,
        before: Timestamp,
        forget_before: Timestamp,
        caller: &str,
    ) -> StoreResult<Vec<Peer>>;

    /// The clock every process sharing this store should agree on: the database
    /// server's, for a store that several machines share; `None` when the store has one
    /// process (SQLite), whose own clock is then the only one. Lease deadlines, heartbeats
    /// and peer liveness compare times written by different processes, so with skewed
    /// machine clocks they must all be read from one clock.
    async fn clock(&self) -> StoreResult<Option<Timestamp>> {
        Ok(None)
    }

    /// Stores a workflow and the tasks of its first steps (one transaction).
    async fn create_workflow(
        &self,
        workflow: NewWorkflow,
        tasks: Vec<NewTask>,
    ) -> StoreResult<(Workflow, Vec<CreateOutcome>, Vec<TaskEvent>)>;

    async fn get_workflow(&self, id: &str) -> StoreResult<Option<Workflow>>;

    async fn list_workflows(&self, query: &WorkflowQuery) -> StoreResult<Vec<Workflow>>;

    /// Applies `update` if the workflow's status is one of `update.expect`.
    async fn update_workflow(&self, update: WorkflowUpdate) -> StoreResult<WorkflowUpdated>;

    /// Tries to take the deployment-wide singleton role `name` without waiting; `None`
    /// when another process holds it.
    async fn try_singleton(&self, name: &str) -> StoreResult<Option<Box<dyn SingletonGuard>>>;

    /// Changes other processes commit to this store, as they commit. `None` when no other
    /// process can write to it (SQLite: the data directory has one owner).
    async fn listen(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<RemoteChange>>> {
        Ok(None)
    }

    /// Flushes and closes connections.
    async fn close(&self);
}
