//! The shared store: PostgreSQL, for several Baton nodes working off one database.
//!
//! Unlike SQLite there is no writer task: PostgreSQL takes concurrent writers, and the
//! nodes of a cluster write concurrently anyway, so every store call runs as its own
//! transaction on a pooled connection (READ COMMITTED), and correctness under
//! concurrency comes from row locks rather than from a single writer:
//!
//! - Claims pick candidates with `FOR UPDATE SKIP LOCKED`: concurrent claimers (threads
//!   or nodes) never get the same task and never wait for each other. Without
//!   concurrency limits a claim is one statement (`WITH c AS (SELECT … FOR UPDATE SKIP
//!   LOCKED) UPDATE … FROM c RETURNING …`).
//! - Claims with concurrency limits count running tasks, so they first take a
//!   transaction-scoped advisory lock (one per schema): two limited claimers never count
//!   the same free slot. Claims without limits never take it.
//! - Writes fenced by a lease (`finish`, `record_progress`, checkpoints, input) test the
//!   token and the expiry in the `WHERE` of the statement that locks the row, which
//!   PostgreSQL re-checks against the newest row version after waiting for a concurrent
//!   writer: a lease taken over in the meantime fails the test.
//! - Multi-row writes on running tasks (heartbeats, completions, progress, rescues) lock
//!   their rows first, in task-id order (`… ORDER BY id FOR UPDATE` in a CTE, then the
//!   `UPDATE`), so two of them cannot deadlock whatever join order the planner picks;
//!   should PostgreSQL still report a deadlock or a serialization failure, the
//!   transaction is retried.
//!
//! Every statement that takes many rows binds arrays (`unnest($1::uuid[], …)`), so a
//! batch of any size is one prepared statement. A store call is acknowledged only after
//! its `COMMIT` returned, which with PostgreSQL's defaults means the commit is durable.
//!
//! Migrations are embedded (`migrations/postgres`) and applied on connect by sqlx's
//! migrator, which holds a PostgreSQL advisory lock while it works, so nodes starting
//! together migrate one at a time.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::event::NewEvent;
use baton_core::task::{Lease, NewTask, StepRef};
use baton_core::{EventKind, Task, TaskError, TaskEvent, TaskId, TaskStatus, Timestamp};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::types::{Json, Uuid};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::{
    CancelOutcome, ClaimRequest, CreateOutcome, CreatedAndClaimed, Finish, FinishOutcome,
    HeartbeatReply, InputOutcome, LeaseSelector, NewWorkflow, Peer, PeerReport, PeerState,
    ProgressUpdate, QueueStats, RemoteChange, Requeue, RetryOutcome, SingletonGuard, Store,
    StoreError, StoreResult, StoredServer, TaskQuery, Workflow, WorkflowQuery, WorkflowStatus,
    WorkflowUpdate, WorkflowUpdated, created_event, json_or_null, transition_event, workflow_after,
    workflow_status_from,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The task columns, in the order `task_from_row` expects them. A macro so that queries
/// can be assembled with `concat!` into `&'static str` (sqlx's safe SQL type, and one
/// prepared statement per query).
macro_rules! task_columns {
    () => {
        "seq, id, tool, arguments, queue, priority, status, progress, progress_message, \
         attempt, max_attempts, run_at, timeout_ms, idempotency_key, owner, parent_id, \
         metadata, created_at, started_at, updated_at, completed_at, result, error, \
         cancel_requested, lease_owner, lease_token, lease_expires_at, input_requests, \
         checkpoint, workflow_id, step_id"
    };
}

/// The statuses under a lease.
macro_rules! leased {
    () => {
        "status IN ('running', 'input_required')"
    };
}

/// The shared candidate filter of a claim: pending, due (`$1`), queue not paused. The
/// `ORDER BY … LIMIT` that follows it walks the partial index `tasks_pending`.
macro_rules! runnable {
    () => {
        "FROM tasks WHERE status = 'pending' AND run_at <= $1 \
         AND queue NOT IN (SELECT name FROM queues WHERE paused)"
    };
}

/// What a claim writes into each claimed task; `$1` is `now`, `$2..$4` the lease.
macro_rules! claim_set {
    () => {
        "UPDATE tasks SET status = 'running', attempt = attempt + 1, started_at = $1, \
         updated_at = $1, progress = NULL, progress_message = NULL, lease_owner = $2, \
         lease_token = $3, lease_expires_at = $4"
    };
}

/// The session setting that tags a connection's notifications with its store's origin.
const ORIGIN_SETTING: &str = "baton.origin";

/// NOTIFY payloads must stay under 8000 bytes; the origin tag takes a few.
const MAX_PAYLOAD: usize = 7900;

/// The channel events are announced on: one per schema, so deployments in different
/// schemas of one database do not hear each other (md5 keeps it under 63 characters).
const CHANNEL_SQL: &str = "'baton_' || md5(current_schema())";

/// First key of the advisory locks of singleton roles (the second hashes the schema and
/// the role's name).
const SINGLETON_LOCK: i32 = 0x6261_7473; // "bats"

/// How often a transaction that lost a deadlock or serialization conflict is run again.
const MAX_CONFLICT_RETRIES: u32 = 8;

/// The prefix of a `StoreError::Busy` that stands for a conflict worth retrying.
const CONFLICT: &str = "transaction conflict";

/// First key of the advisory lock that serialises claims with concurrency limits (the
/// second is the hash of the schema, so Baton instances in different schemas of one
/// database do not wait for each other). Arbitrary, but fixed: every node must agree.
const CLAIM_LIMITS_LOCK: i32 = 0x6261_746e; // "batn"

#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Pool size. Each store call holds one connection for its transaction.
    pub max_connections: u32,
    /// How long a call waits for a free connection before failing as busy.
    pub acquire_timeout: Duration,
    /// The schema holding Baton's tables (created if missing). `None` uses the
    /// connection's default `search_path` (normally `public`).
    pub schema: Option<String>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
            schema: None,
        }
    }
}

/// A [`Store`] on PostgreSQL. Cloning shares the connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// `host:port/database`, for messages (never the URL: it may hold a password).
    target: String,
    /// For the connections that live outside the pool (the listener, singleton locks).
    connect: PgConnectOptions,
    /// Tags this store's notifications, so that its own listener skips them.
    origin: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish()
    }
}

impl PostgresStore {
    /// Connects, creates the schema if one is configured, and applies pending migrations.
    /// Fails with [`StoreError::Unavailable`] when the server cannot be reached.
    pub async fn connect(url: &str, opts: &PostgresOptions) -> StoreResult<Self> {
        let (connect, target) = connect_options(url, opts)?;
        let origin = format!("{:016x}", rand::random::<u64>());
        // Every pooled connection names the origin, which the NOTIFY of its transactions
        // carries (see `notify_events`).
        let pooled = connect.clone().options([(ORIGIN_SETTING, origin.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(pooled)
            .await
            .map_err(|e| connect_error(&target, e))?;
        if let Err(e) = prepare_schema(&pool, opts).await {
            pool.close().await;
            return Err(e);
        }
        Ok(PostgresStore {
            pool,
            target,
            connect,
            origin,
        })
    }

    /// Applies pending migrations and disconnects (`baton migrate`).
    pub async fn migrate_only(url: &str) -> StoreResult<()> {
        Self::migrate_only_with(url, &PostgresOptions::default()).await
    }

    /// [`migrate_only`](Self::migrate_only) into the schema named in `opts`.
    pub async fn migrate_only_with(url: &str, opts: &PostgresOptions) -> StoreResult<()> {
        let opts = PostgresOptions {
            max_connections: 1,
            ..opts.clone()
        };
        let store = Self::connect(url, &opts).await?;
        store.pool.close().await;
        Ok(())
    }

    /// `host:port/database` of the server this store talks to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The change a notification announces; `None` for this store's own (or garbage).
    async fn decode_notification(&self, payload: &str) -> Option<RemoteChange> {
        let (origin, json) = payload.split_once('|')?;
        if origin == self.origin {
            return None;
        }
        let items: Vec<Announced> = match serde_json::from_str(json) {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable notification");
                return None;
            }
        };
        let mut events = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Announced::Event(e) => events.push(e),
                Announced::Fetch { fetch: (id, seq) } => {
                    match self.task_events(id, seq - 1, 1).await {
                        Ok(mut e) if !e.is_empty() => events.push(e.remove(0)),
                        // Purged meanwhile, or the store is unreachable: the caller rereads.
                        _ => return Some(RemoteChange::Gap),
                    }
                }
            }
        }
        Some(RemoteChange::Events(events))
    }
}

fn connect_options(url: &str, opts: &PostgresOptions) -> StoreResult<(PgConnectOptions, String)> {
    // The parse error is not shown: it could echo the URL, password included.
    let mut connect = PgConnectOptions::from_str(url).map_err(|_| {
        StoreError::Unavailable(
            "the PostgreSQL URL is invalid (expected postgres://user[:password]@host[:port]/database)"
                .into(),
        )
    })?;
    if connect.get_application_name().is_none() {
        connect = connect.application_name("baton");
    }
    if let Some(schema) = &opts.schema {
        check_schema_name(schema)?;
        // Per connection, so migrations and every query land in the schema.
        connect = connect.options([("search_path", schema.as_str())]);
    }
    let target = format!(
        "{}:{}/{}",
        connect.get_host(),
        connect.get_port(),
        connect.get_database().unwrap_or(connect.get_username())
    );
    Ok((connect, target))
}

/// Schema names are spliced into SQL (`CREATE SCHEMA`) and into the `search_path`
/// startup option, so only plain identifiers are accepted.
fn check_schema_name(schema: &str) -> StoreResult<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Migrate(format!(
            "invalid schema name `{schema}`: use lowercase letters, digits and _"
        )))
    }
}

async fn prepare_schema(pool: &PgPool, opts: &PostgresOptions) -> StoreResult<()> {
    if let Some(schema) = &opts.schema {
        let created = sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .execute(pool)
        .await;
        match created {
            Ok(_) => {}
            // Two nodes creating it at once: one of them loses the race, harmlessly.
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("23505")) => {}
            Err(e) => return Err(db_err(e)),
        }
    }
    MIGRATOR.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(e) => match db_err(e) {
            StoreError::Database(m) => StoreError::Migrate(m),
            other => other,
        },
        other => StoreError::Migrate(other.to_string()),
    })
}

fn connect_error(target: &str, e: sqlx::Error) -> StoreError {
    match db_err(e) {
        StoreError::Database(m) | StoreError::Unavailable(m) => {
            StoreError::Unavailable(format!("cannot connect to PostgreSQL at {target}: {m}"))
        }
        other => other,
    }
}

/// Maps PostgreSQL's SQLSTATE codes to the errors a client can act on.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let msg = db.message().to_string();
            match code.as_str() {
                // serialization_failure, deadlock_detected: run the transaction again.
                "40001" | "40P01" => StoreError::Busy(format!("{CONFLICT}: {msg}")),
                // lock_not_available, query_canceled (lock or statement timeout).
                "55P03" | "57014" => StoreError::Busy(msg),
                "53100" => StoreError::DiskFull(msg),
                // read_only_sql_transaction: a standby, or default_transaction_read_only.
                "25006" => StoreError::ReadOnly(msg),
                "XX001" | "XX002" => StoreError::Corrupt(msg),
                // Connection exceptions, shutdowns and restarts (57P01..57P04), lack of
                // resources (too many connections, out of memory), failed logins, a
                // missing database: nothing a retry of the same request could not fix
                // once the server is back or reconfigured.
                c if c.starts_with("08")
                    || c.starts_with("57P")
                    || c.starts_with("53")
                    || c.starts_with("28")
                    || c == "3D000" =>
                {
                    StoreError::Unavailable(msg)
                }
                _ => StoreError::Database(msg),
            }
        }
        sqlx::Error::PoolTimedOut => {
            StoreError::Busy("timed out waiting for a database connection".into())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the store is closed".into()),
        sqlx::Error::Io(io) => StoreError::Unavailable(io.to_string()),
        sqlx::Error::Tls(t) => StoreError::Unavailable(format!("TLS: {t}")),
        _ => StoreError::Database(e.to_string()),
    }
}

fn is_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Busy(m) if m.starts_with(CONFLICT))
}

/// A short random pause before running a conflicting transaction again, growing with
/// each retry, so that the transactions that collided do not collide again.
async fn conflict_backoff(retry: u32) {
    let cap = 2u64 << retry.min(6);
    tokio::time::sleep(Duration::from_millis(rand::random_range(1..=cap))).await;
}

/// Evaluates `$attempt` (an expression yielding a `StoreResult`) again while it fails
/// with a conflict (deadlock, serialization failure), a few times.
macro_rules! retry_conflicts {
    ($attempt:expr) => {{
        let mut retries = 0u32;
        loop {
            match $attempt {
                Err(e) if is_conflict(&e) && retries < MAX_CONFLICT_RETRIES => {
                    retries += 1;
                    tracing::debug!(retries, error = %e, "retrying a conflicting transaction");
                    conflict_backoff(retries).await;
                }
                other => break other,
            }
        }
    }};
}

/// Runs `$body` (a future using `$c: &mut PgConnection`) in a transaction and commits it;
/// rolled back on error and run again on conflicts. A macro rather than a function taking
/// a closure, so the body can borrow the caller's arguments across the retry loop.
macro_rules! transaction {
    ($pool:expr, |$c:ident| $body:expr) => {
        retry_conflicts!({
            let attempt: StoreResult<_> = async {
                let mut tx = $pool.begin().await.map_err(db_err)?;
                let value = {
                    let $c: &mut PgConnection = &mut tx;
                    $body.await
                };
                match value {
                    Ok(v) => {
                        tx.commit().await.map_err(db_err)?;
                        Ok(v)
                    }
                    Err(e) => {
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                }
            }
            .await;
            attempt
        })
    };
}

fn decode_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Decode(e.to_string())
}

fn get<'r, T>(r: &'r PgRow, col: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    r.try_get(col)
        .map_err(|e| decode_err(format!("column {col}: {e}")))
}

fn get_json(r: &PgRow, col: &str) -> StoreResult<Option<Value>> {
    Ok(get::<Option<Json<Value>>>(r, col)?.map(|j| j.0))
}

fn get_ts(r: &PgRow, col: &str) -> StoreResult<Option<Timestamp>> {
    Ok(get::<Option<i64>>(r, col)?.map(Timestamp::from_millis))
}

fn task_from_row(r: &PgRow) -> StoreResult<Task> {
    let status: String = get(r, "status")?;
    let error = get_json(r, "error")?
        .map(serde_json::from_value::<TaskError>)
        .transpose()
        .map_err(decode_err)?;
    let lease = match (
        get::<Option<String>>(r, "lease_owner")?,
        get::<Option<i64>>(r, "lease_token")?,
        get_ts(r, "lease_expires_at")?,
    ) {
        (Some(owner), Some(token), Some(expires_at)) => Some(Lease {
            owner,
            token,
            expires_at,
        }),
        _ => None,
    };
    Ok(Task {
        id: TaskId::from_uuid(get(r, "id")?),
        seq: get(r, "seq")?,
        tool: get(r, "tool")?,
        arguments: get_json(r, "arguments")?.unwrap_or(Value::Null),
        queue: get(r, "queue")?,
        priority: get(r, "priority")?,
        status: TaskStatus::from_str(&status).map_err(decode_err)?,
        progress: get(r, "progress")?,
        progress_message: get(r, "progress_message")?,
        attempt: get::<i64>(r, "attempt")? as u32,
        max_attempts: get::<i64>(r, "max_attempts")? as u32,
        run_at: get_ts(r, "run_at")?.unwrap_or_default(),
        timeout_ms: get::<Option<i64>>(r, "timeout_ms")?.map(|v| v as u64),
        idempotency_key: get(r, "idempotency_key")?,
        owner: get(r, "owner")?,
        parent_id: get::<Option<Uuid>>(r, "parent_id")?.map(TaskId::from_uuid),
        step: match (
            get::<Option<String>>(r, "workflow_id")?,
            get::<Option<String>>(r, "step_id")?,
        ) {
            (Some(workflow_id), Some(step_id)) => Some(StepRef {
                workflow_id,
                step_id,
            }),
            _ => None,
        },
        metadata: get_json(r, "metadata")?,
        created_at: get_ts(r, "created_at")?.unwrap_or_default(),
        started_at: get_ts(r, "started_at")?,
        updated_at: get_ts(r, "updated_at")?.unwrap_or_default(),
        completed_at: get_ts(r, "completed_at")?,
        result: get_json(r, "result")?,
        error,
        cancel_requested: get(r, "cancel_requested")?,
        lease,
        input_requests: get_json(r, "input_requests")?,
        checkpoint: get_json(r, "checkpoint")?,
    })
}

fn event_from_row(r: &PgRow) -> StoreResult<TaskEvent> {
    let kind: String = get(r, "kind")?;
    let status: String = get(r, "status")?;
    Ok(TaskEvent {
        seq: get(r, "seq")?,
        task_id: TaskId::from_uuid(get(r, "task_id")?),
        at: Timestamp::from_millis(get(r, "at")?),
        kind: EventKind::parse(&kind).ok_or_else(|| decode_err(format!("event kind {kind}")))?,
        status: TaskStatus::from_str(&status).map_err(decode_err)?,
        attempt: get::<Option<i64>>(r, "attempt")?.map(|a| a as u32),
        progress: get(r, "progress")?,
        message: get(r, "message")?,
        data: get_json(r, "data")?,
        result: None,
    })
}

fn uuid(id: TaskId) -> Uuid {
    *id.as_uuid()
}

/// Appends events in one statement and returns them numbered.
///
/// The numbers are drawn in the statement itself (`nextval` once per event, in a
/// materialised CTE) and handed to the events in ascending order of their position in
/// `events`, whatever order PostgreSQL evaluates rows in; so a task's events within one
/// call are numbered in order. Across calls, a task's next event is always written after
/// its row was locked by a later transaction than the one that wrote the previous event,
/// hence after that one's `nextval`: numbers grow per task. (Across tasks, number order
/// need not be commit order.)
async fn insert_events(c: &mut PgConnection, events: Vec<NewEvent>) -> StoreResult<Vec<TaskEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let events = crate::storable_events(events);
    let n = events.len();
    let mut task_ids = Vec::with_capacity(n);
    let mut at = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut attempt = Vec::with_capacity(n);
    let mut progress = Vec::with_capacity(n);
    let mut message = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n);
    for e in &events {
        task_ids.push(uuid(e.task_id));
        at.push(e.at.as_millis());
        kind.push(e.kind.as_str());
        status.push(e.status.as_str());
        attempt.push(e.attempt.map(i64::from));
        progress.push(e.progress);
        message.push(e.message.as_deref());
        data.push(json_or_null(&e.data));
    }
    let mut seqs: Vec<i64> = sqlx::query_scalar(
        "WITH s AS MATERIALIZED (SELECT nextval('task_event_seq') AS seq FROM generate_series(1, $1)), \
         r AS (SELECT seq, row_number() OVER (ORDER BY seq) AS ord FROM s) \
         INSERT INTO task_events (seq, task_id, at, kind, status, attempt, progress, message, data) \
         SELECT r.seq, v.task_id, v.at, v.kind, v.status, v.attempt, v.progress, v.message, v.data::json \
         FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::float8[], \
                     $8::text[], $9::text[]) \
              WITH ORDINALITY AS v(task_id, at, kind, status, attempt, progress, message, data, ord) \
         JOIN r ON r.ord = v.ord \
         RETURNING seq",
    )
    .bind(n as i32)
    .bind(task_ids)
    .bind(at)
    .bind(kind)
    .bind(status)
    .bind(attempt)
    .bind(progress)
    .bind(message)
    .bind(data)
    .fetch_all(&mut *c)
    .await
    .map_err(db_err)?;
    if seqs.len() != n {
        return Err(StoreError::Database(format!(
            "{n} events written but {} numbered",
            seqs.len()
        )));
    }
    seqs.sort_unstable();
    let events: Vec<TaskEvent> = events
        .into_iter()
        .zip(seqs)
        .map(|(e, seq)| e.with_seq(seq))
        .collect();
    notify_events(c, &events).await?;
    Ok(events)
}

/// Announces events to the other processes sharing the database. Inside the writing
/// transaction, so they hear of exactly what committed, when it committed. An event too
/// large for a notification travels as a reference the listener reads back.
async fn notify_events(c: &mut PgConnection, events: &[TaskEvent]) -> StoreResult<()> {
    let mut payloads: Vec<String> = Vec::new();
    let mut current = String::from("[");
    for e in events {
        let mut item = serde_json::to_string(e).map_err(decode_err)?;
        if item.len() + 2 > MAX_PAYLOAD - 32 {
            item = serde_json::json!({"fetch": [e.task_id, e.seq]}).to_string();
        }
        if current.len() + item.len() + 2 > MAX_PAYLOAD - 32 {
            current.push(']');
            payloads.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&item);
    }
    if current.len() > 1 {
        current.push(']');
        payloads.push(current);
    }
    sqlx::query(concat!(
        "SELECT pg_notify(",
        "'baton_' || md5(current_schema())",
        ", coalesce(current_setting('baton.origin', true), '') || '|' || p) FROM unnest($1::text[]) AS p"
    ))
    .bind(payloads)
    .execute(&mut *c)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// One announced event: in full, or a reference to read back.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Announced {
    Fetch { fetch: (TaskId, i64) },
    Event(TaskEvent),
}

/// Forwards the notifications of other processes until `tx`'s receiver is dropped or
/// the pool is closed. Reconnects (with a pause) whenever the connection is lost, and
/// reports each interruption as a [`RemoteChange::Gap`].
async fn listen_loop(store: PostgresStore, tx: tokio::sync::mpsc::Sender<RemoteChange>) {
    use sqlx::postgres::PgListener;
    let mut first = true;
    loop {
        if tx.is_closed() || store.pool.is_closed() {
            return;
        }
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        first = false;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(store.connect.clone());
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for other nodes' changes yet");
                continue;
            }
        };
        listener.ignore_pool_close_event(true);
        let channel: String =
            match sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {CHANNEL_SQL}")))
                .fetch_one(&mut listener)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot listen for other nodes' changes yet");
                    continue;
                }
            };
        if let Err(e) = listener.listen(&channel).await {
            tracing::debug!(error = %e, "cannot listen for other nodes' changes yet");
            continue;
        }
        // Whatever happened while not listening is unknown to the caller.
        if tx.send(RemoteChange::Gap).await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                r = listener.try_recv() => r,
                _ = tx.closed() => return,
            };
            match received {
                Ok(Some(n)) => {
                    let Some(change) = store.decode_notification(n.payload()).await else {
                        continue;
                    };
                    if tx.send(change).await.is_err() {
                        return;
                    }
                }
                // The connection dropped; the listener reconnected.
                Ok(None) => {
                    if tx.send(RemoteChange::Gap).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the feed of other nodes' changes; reconnecting");
                    break;
                }
            }
        }
    }
}

/// Drops a schema and everything in it (benchmarks clean up with it).
pub async fn drop_schema(url: &str, schema: &str) -> StoreResult<()> {
    use sqlx::Connection;
    check_schema_name(schema)?;
    let (connect, target) = connect_options(url, &PostgresOptions::default())?;
    let mut conn = PgConnection::connect_with(&connect)
        .await
        .map_err(|e| connect_error(&target, e))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut conn)
    .await
    .map_err(db_err)?;
    let _ = conn.close().await;
    Ok(())
}

/// The connection holding a singleton's advisory lock; the lock goes with it.
struct PgSingleton {
    conn: tokio::sync::Mutex<PgConnection>,
}

#[async_trait]
impl SingletonGuard for PgSingleton {
    async fn held(&self) -> bool {
        let mut conn = self.conn.lock().await;
        let check = sqlx::query("SELECT 1").execute(&mut *conn);
        matches!(
            tokio::time::timeout(Duration::from_secs(5), check).await,
            Ok(Ok(_))
        )
    }

    /// Ends the session holding the lock (PostgreSQL releases it at once), instead of
    /// dropping the socket and leaving the server to notice: after a failed check the
    /// connection may be half-open, and the lock held until the server times it out.
    async fn release(self: Box<Self>) {
        use sqlx::Connection;
        let conn = self.conn.into_inner();
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
    }
}

fn peer_from_row(r: &PgRow) -> StoreResult<Peer> {
    let state: String = get(r, "state")?;
    Ok(Peer {
        id: get(r, "id")?,
        role: get(r, "role")?,
        address: get(r, "address")?,
        version: get(r, "version")?,
        state: PeerState::parse(&state)
            .ok_or_else(|| StoreError::Decode(format!("unknown peer state `{state}`")))?,
        started_at: Timestamp::from_millis(get(r, "started_at")?),
        last_heartbeat: Timestamp::from_millis(get(r, "last_heartbeat")?),
        running: get::<i64>(r, "running")?.max(0) as u64,
        finished: get::<i64>(r, "finished")?.max(0) as u64,
        throughput: get(r, "throughput")?,
    })
}

const WORKFLOW_COLUMNS: &str =
    "seq, id, name, owner, definition, status, steps, created_at, updated_at, completed_at";

fn workflow_from_row(r: &PgRow) -> StoreResult<Workflow> {
    let status: String = get(r, "status")?;
    let steps = match get_json(r, "steps")? {
        Some(Value::Object(m)) => m,
        _ => Default::default(),
    };
    Ok(Workflow {
        seq: get(r, "seq")?,
        id: get(r, "id")?,
        name: get(r, "name")?,
        owner: get(r, "owner")?,
        definition: get_json(r, "definition")?.unwrap_or(Value::Null),
        status: workflow_status_from(&status)?,
        steps,
        created_at: get_ts(r, "created_at")?.unwrap_or_default(),
        updated_at: get_ts(r, "updated_at")?.unwrap_or_default(),
        completed_at: get_ts(r, "completed_at")?,
    })
}

async fn create_workflow_tx(
    c: &mut PgConnection,
    wf: &NewWorkflow,
    tasks: &[NewTask],
) -> StoreResult<(Workflow, Vec<CreateOutcome>, Vec<TaskEvent>)> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO workflows (id, name, owner, definition, status, steps, created_at, updated_at) \
         VALUES ($1, $2, $3, $4::json, 'running', '{}', $5, $5) RETURNING seq",
    )
    .bind(&wf.id)
    .bind(&wf.name)
    .bind(&wf.owner)
    .bind(wf.definition.to_string())
    .bind(wf.created_at.as_millis())
    .fetch_one(&mut *c)
    .await
    .map_err(db_err)?;
    let (outcomes, events) = create_tasks_tx(c, tasks).await?;
    let workflow = Workflow {
        id: wf.id.clone(),
        seq,
        name: wf.name.clone(),
        owner: wf.owner.clone(),
        definition: wf.definition.clone(),
        status: WorkflowStatus::Running,
        steps: Default::default(),
        created_at: wf.created_at,
        updated_at: wf.created_at,
        completed_at: None,
    };
    Ok((workflow, outcomes, events))
}

/// Locks the workflow's row for the transaction, so that concurrent updates (a cancel
/// and the coordinator adding steps) apply one after the other.
async fn update_workflow_tx(
    c: &mut PgConnection,
    u: &WorkflowUpdate,
) -> StoreResult<WorkflowUpdated> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = $1 FOR UPDATE"
    )))
    .bind(&u.id)
    .fetch_optional(&mut *c)
    .await
    .map_err(db_err)?;
    let Some(current) = row.as_ref().map(workflow_from_row).transpose()? else {
        return Ok(WorkflowUpdated::NotFound);
    };
    if !u.expect.contains(&current.status) {
        return Ok(WorkflowUpdated::Refused(current));
    }
    let workflow = workflow_after(current, u);
    sqlx::query(
        "UPDATE workflows SET status = $1, steps = $2::json, updated_at = $3, completed_at = $4 \
         WHERE id = $5",
    )
    .bind(workflow.status.as_str())
    .bind(Value::Object(workflow.steps.clone()).to_string())
    .bind(workflow.updated_at.as_millis())
    .bind(workflow.completed_at.map(|t| t.as_millis()))
    .bind(&u.id)
    .execute(&mut *c)
    .await
    .map_err(db_err)?;
    let (outcomes, events) = create_tasks_tx(c, &u.tasks).await?;
    Ok(WorkflowUpdated::Applied {
        workflow,
        outcomes,
        events,
    })
}

const PEER_COLUMNS: &str =
    "id, role, address, version, state, started_at, last_heartbeat, running, finished, throughput";

fn task_from_new(t: &NewTask, seq: i64) -> Task {
    Task {
        id: t.id,
        seq,
        tool: t.tool.clone(),
        arguments: t.arguments.clone(),
        queue: t.queue.clone(),
        priority: t.priority,
        status: TaskStatus::Pending,
        progress: None,
        progress_message: None,
        attempt: 0,
        max_attempts: t.max_attempts,
        run_at: t.run_at,
        timeout_ms: t.timeout_ms,
        idempotency_key: t.idempotency_key.clone(),
        owner: t.owner.clone(),
        parent_id: t.parent_id,
        step: t.step.clone(),
        metadata: t.metadata.clone(),
        created_at: t.created_at,
        started_at: None,
        updated_at: t.created_at,
        completed_at: None,
        result: None,
        error: None,
        cancel_requested: false,
        lease: None,
        input_requests: None,
        checkpoint: None,
    }
}

async fn create_tasks_tx(
    c: &mut PgConnection,
    tasks: &[NewTask],
) -> StoreResult<(Vec<CreateOutcome>, Vec<TaskEvent>)> {
    let (outcomes, events) = create_tasks_deferred(c, tasks).await?;
    Ok((outcomes, insert_events(c, events).await?))
}

/// Stores the tasks; their `created` events are returned for the caller to append (so a
/// caller doing more in the same transaction appends all its events in one statement).
///
/// Idempotency is left to the unique index: every new key is inserted with `ON CONFLICT
/// DO NOTHING`, and the keys that were not inserted are looked up afterwards. That is
/// one statement when no key repeats, and correct when another node stores the same key
/// at the same moment (the insert waits for that node's transaction, then yields to it).
async fn create_tasks_deferred(
    c: &mut PgConnection,
    tasks: &[NewTask],
) -> StoreResult<(Vec<CreateOutcome>, Vec<NewEvent>)> {
    if tasks.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // Later items repeating an earlier item's key become that item's task.
    let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
    let same_as: Vec<Option<usize>> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let key = t.idempotency_key.as_deref()?;
            match first_with_key.entry((t.owner.as_str(), key)) {
                std::collections::hash_map::Entry::Occupied(o) => Some(*o.get()),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                    None
                }
            }
        })
        .collect();
    let to_insert: Vec<&NewTask> = tasks
        .iter()
        .zip(&same_as)
        .filter(|(_, s)| s.is_none())
        .map(|(t, _)| t)
        .collect();
    let n = to_insert.len();
    let mut ids = Vec::with_capacity(n);
    let mut tools = Vec::with_capacity(n);
    let mut arguments = Vec::with_capacity(n);
    let mut queues = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut run_at = Vec::with_capacity(n);
    let mut timeouts = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut owners = Vec::with_capacity(n);
    let mut parents = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut workflows = Vec::with_capacity(n);
    let mut steps = Vec::with_capacity(n);
    for t in &to_insert {
        workflows.push(t.step.as_ref().map(|s| s.workflow_id.as_str()));
        steps.push(t.step.as_ref().map(|s| s.step_id.as_str()));
        ids.push(uuid(t.id));
        tools.push(t.tool.as_str());
        arguments.push(t.arguments.to_string());
        queues.push(t.queue.as_str());
        priorities.push(t.priority);
        max_attempts.push(i64::from(t.max_attempts));
        run_at.push(t.run_at.as_millis());
        timeouts.push(t.timeout_ms.map(|v| v as i64));
        keys.push(t.idempotency_key.as_deref());
        owners.push(t.owner.as_str());
        parents.push(t.parent_id.map(uuid));
        metadata.push(json_or_null(&t.metadata));
        created.push(t.created_at.as_millis());
    }
    // Task numbers follow the order of `tasks` (the CTE hands them out by position, as in
    // `insert_events`), while rows go in in key order: two batches inserting the same
    // keys in different orders would otherwise deadlock on the unique index.
    let rows = sqlx::query(
        "WITH s AS MATERIALIZED (SELECT nextval('task_seq') AS seq FROM generate_series(1, $1)), \
         r AS (SELECT seq, row_number() OVER (ORDER BY seq) AS ord FROM s) \
         INSERT INTO tasks (seq, id, tool, arguments, queue, priority, status, attempt, max_attempts, \
             run_at, timeout_ms, idempotency_key, owner, parent_id, metadata, created_at, updated_at, \
             workflow_id, step_id) \
         SELECT r.seq, v.id, v.tool, v.arguments::json, v.queue, v.priority, 'pending', 0, \
             v.max_attempts, v.run_at, v.timeout_ms, v.key, v.owner, v.parent_id, v.metadata::json, \
             v.created_at, v.created_at, v.workflow_id, v.step_id \
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::bigint[], \
                     $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::uuid[], $13::text[], \
                     $14::bigint[], $15::text[], $16::text[]) \
              WITH ORDINALITY AS v(id, tool, arguments, queue, priority, max_attempts, run_at, \
                                   timeout_ms, key, owner, parent_id, metadata, created_at, \
                                   workflow_id, step_id, ord) \
         JOIN r ON r.ord = v.ord \
         ORDER BY v.owner, v.key \
         ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING seq, id",
    )
    .bind(n as i32)
    .bind(ids)
    .bind(tools)
    .bind(arguments)
    .bind(queues)
    .bind(priorities)
    .bind(max_attempts)
    .bind(run_at)
    .bind(timeouts)
    .bind(keys)
    .bind(owners)
    .bind(parents)
    .bind(metadata)
    .bind(created)
    .bind(workflows)
    .bind(steps)
    .fetch_all(&mut *c)
    .await
    .map_err(db_err)?;
    let mut seq_of: HashMap<TaskId, i64> = HashMap::with_capacity(rows.len());
    for row in &rows {
        seq_of.insert(TaskId::from_uuid(get(row, "id")?), get(row, "seq")?);
    }
    // Keys that were already taken, by an earlier call or a concurrent one.
    let taken: Vec<&NewTask> = to_insert
        .iter()
        .copied()
        .filter(|t| !seq_of.contains_key(&t.id))
        .collect();
    let mut existing: HashMap<(String, String), Task> = HashMap::with_capacity(taken.len());
    if !taken.is_empty() {
        let owners: Vec<&str> = taken.iter().map(|t| t.owner.as_str()).collect();
        let keys: Vec<Option<&str>> = taken.iter().map(|t| t.idempotency_key.as_deref()).collect();
        let rows = sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE (owner, idempotency_key) IN \
             (SELECT * FROM unnest($1::text[], $2::text[])) AND idempotency_key IS NOT NULL"
        ))
        .bind(owners)
        .bind(keys)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
        for row in &rows {
            let t = task_from_row(row)?;
            if let Some(k) = t.idempotency_key.clone() {
                existing.insert((t.owner.clone(), k), t);
            }
        }
    }
    let mut outcomes: Vec<CreateOutcome> = Vec::with_capacity(tasks.len());
    let mut events = Vec::with_capacity(seq_of.len());
    for (t, same) in tasks.iter().zip(same_as) {
        let outcome = if let Some(j) = same {
            CreateOutcome::Existing(outcomes[j].task().clone())
        } else if let Some(&seq) = seq_of.get(&t.id) {
            events.push(created_event(t));
            CreateOutcome::Created(task_from_new(t, seq))
        } else {
            let key = (
                t.owner.clone(),
                t.idempotency_key.clone().unwrap_or_default(),
            );
            match existing.remove(&key) {
                Some(found) => {
                    // Another item of this batch may name the same stored task.
                    existing.insert(key, found.clone());
                    CreateOutcome::Existing(found)
                }
                // The conflicting task vanished between the insert and the lookup (purged
                // or its inserting transaction rolled back): run the whole call again.
                None => {
                    return Err(StoreError::Busy(format!(
                        "{CONFLICT}: the task holding idempotency key of task {} vanished",
                        t.id
                    )));
                }
            }
        };
        outcomes.push(outcome);
    }
    crate::check_idempotent(tasks, &outcomes)?;
    Ok((outcomes, events))
}

async fn claim_tx(
    c: &mut PgConnection,
    req: &ClaimRequest<'_>,
) -> StoreResult<(Vec<Task>, Vec<TaskEvent>)> {
    let (claimed, events) = claim_deferred(c, req).await?;
    Ok((claimed, insert_events(c, events).await?))
}

/// Claims; the `started` events are returned for the caller to append.
async fn claim_deferred(
    c: &mut PgConnection,
    req: &ClaimRequest<'_>,
) -> StoreResult<(Vec<Task>, Vec<NewEvent>)> {
    if req.limit == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    if req.limits.is_empty() {
        return claim_unlimited(c, req).await;
    }
    // Limited claims count running tasks; only one at a time may count, or two nodes
    // would both see the same free slot. The lock is held until this transaction ends,
    // after its claims are visible to the next holder.
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(CLAIM_LIMITS_LOCK)
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
    let running: Vec<(String, i64)> =
        sqlx::query_as("SELECT tool, count(*) FROM tasks WHERE status = 'running' GROUP BY tool")
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?;
    // Free capacity of each concurrency limit, from what is running now.
    let mut room: Vec<u32> = req
        .limits
        .iter()
        .map(|l| {
            let used: i64 = running
                .iter()
                .filter(|(t, _)| l.selector.matches(t))
                .map(|(_, n)| n)
                .sum();
            l.max
                .saturating_sub(u32::try_from(used).unwrap_or(u32::MAX))
        })
        .collect();
    // Greedy rounds, as in SQLite: take the best runnable candidates that no saturated
    // limit covers; a candidate that would overfill a limit saturates it, and the next
    // round excludes that limit's tools. Each round fills the batch, runs out of
    // candidates, or saturates one more limit, so there are at most `limits + 1`.
    // Candidates are locked (`SKIP LOCKED`) as they are read, so no concurrent claimer,
    // limited or not, can take them; the ones passed over stay locked until commit,
    // which only makes other claimers skip them for that long.
    let mut chosen: Vec<i64> = Vec::with_capacity(req.limit);
    loop {
        let want = req.limit - chosen.len();
        let mut tools: Vec<&str> = Vec::new();
        let mut prefixes: Vec<&str> = Vec::new();
        for (l, _) in req.limits.iter().zip(&room).filter(|(_, r)| **r == 0) {
            match &l.selector {
                crate::ToolSelector::Tool(t) => tools.push(t),
                crate::ToolSelector::Prefix(p) => prefixes.push(p),
            }
        }
        let rows: Vec<(i64, String)> = sqlx::query_as(concat!(
            "SELECT seq, tool ",
            runnable!(),
            " AND tool <> ALL($2::text[]) \
             AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) AS p(prefix) WHERE starts_with(tasks.tool, p.prefix)) \
             AND seq <> ALL($4::bigint[]) \
             ORDER BY priority DESC, run_at, seq LIMIT $5 FOR UPDATE SKIP LOCKED"
        ))
        .bind(req.now.as_millis())
        .bind(tools)
        .bind(prefixes)
        .bind(&chosen)
        .bind(want as i64)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
        let fetched = rows.len();
        let mut saturated_one = false;
        for (seq, tool) in rows {
            let matching: Vec<usize> = req
                .limits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.selector.matches(&tool))
                .map(|(i, _)| i)
                .collect();
            if matching.iter().any(|&i| room[i] == 0) {
                saturated_one = true;
                continue;
            }
            for i in matching {
                room[i] -= 1;
            }
            chosen.push(seq);
        }
        if chosen.len() >= req.limit || fetched < want || !saturated_one {
            break;
        }
    }
    if chosen.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let rows = sqlx::query(concat!(
        claim_set!(),
        " WHERE seq = ANY($5) AND status = 'pending' RETURNING ",
        task_columns!()
    ))
    .bind(req.now.as_millis())
    .bind(req.owner)
    .bind(req.token)
    .bind(req.lease_until.as_millis())
    .bind(&chosen)
    .fetch_all(&mut *c)
    .await
    .map_err(db_err)?;
    claimed_events(req, &rows)
}

/// Without concurrency limits a claim is one statement.
async fn claim_unlimited(
    c: &mut PgConnection,
    req: &ClaimRequest<'_>,
) -> StoreResult<(Vec<Task>, Vec<NewEvent>)> {
    let rows = sqlx::query(concat!(
        "WITH c AS (SELECT seq AS claim_seq ",
        runnable!(),
        " ORDER BY priority DESC, run_at, seq LIMIT $5 FOR UPDATE SKIP LOCKED) ",
        claim_set!(),
        " FROM c WHERE tasks.seq = c.claim_seq AND tasks.status = 'pending' RETURNING ",
        task_columns!()
    ))
    .bind(req.now.as_millis())
    .bind(req.owner)
    .bind(req.token)
    .bind(req.lease_until.as_millis())
    .bind(req.limit as i64)
    .fetch_all(&mut *c)
    .await
    .map_err(db_err)?;
    claimed_events(req, &rows)
}

/// The claimed tasks in claim order (`RETURNING` has none) and their `started` events.
fn claimed_events(
    req: &ClaimRequest<'_>,
    rows: &[PgRow],
) -> StoreResult<(Vec<Task>, Vec<NewEvent>)> {
    let mut claimed = rows
        .iter()
        .map(task_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    claimed.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.seq.cmp(&b.seq))
    });
    let events = claimed
        .iter()
        .map(|t| {
            let mut ev = NewEvent::new(t.id, req.now, EventKind::Started, TaskStatus::Running);
            ev.attempt = Some(t.attempt);
            ev
        })
        .collect();
    Ok((claimed, events))
}

async fn record_progress_tx(
    c: &mut PgConnection,
    updates: &[ProgressUpdate],
) -> StoreResult<Vec<TaskEvent>> {
    let mut events = Vec::with_capacity(updates.len());
    // The last update of a run wins; a stale run's update never displaces the current one's.
    for round in crate::rounds(updates, |u| (u.id, u.token), true) {
        let by_id: HashMap<TaskId, &ProgressUpdate> = round.iter().map(|u| (u.id, *u)).collect();
        let rows = sqlx::query(
            "WITH l AS (SELECT tasks.seq AS lock_seq, v.* \
               FROM unnest($1::uuid[], $2::bigint[], $3::float8[], $4::text[], $5::bigint[]) \
                    AS v(id, token, progress, message, at) \
               JOIN tasks ON tasks.id = v.id \
               WHERE tasks.lease_token = v.token AND tasks.status = 'running' AND tasks.lease_expires_at >= v.at \
               ORDER BY tasks.id FOR UPDATE OF tasks) \
             UPDATE tasks SET progress = coalesce(l.progress, tasks.progress), \
             progress_message = coalesce(l.message, tasks.progress_message), updated_at = l.at \
             FROM l WHERE tasks.seq = l.lock_seq \
             RETURNING tasks.id, tasks.attempt, tasks.progress, tasks.progress_message",
        )
        .bind(round.iter().map(|u| uuid(u.id)).collect::<Vec<_>>())
        .bind(round.iter().map(|u| u.token).collect::<Vec<_>>())
        .bind(round.iter().map(|u| u.progress).collect::<Vec<_>>())
        .bind(
            round
                .iter()
                .map(|u| crate::storable_message(u.message.as_deref()))
                .collect::<Vec<_>>(),
        )
        .bind(round.iter().map(|u| u.at.as_millis()).collect::<Vec<_>>())
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
        for row in &rows {
            let id = TaskId::from_uuid(get(row, "id")?);
            let at = by_id.get(&id).map_or(Timestamp::ZERO, |u| u.at);
            let mut ev = NewEvent::new(id, at, EventKind::Progress, TaskStatus::Running);
            ev.attempt = Some(get::<i64>(row, "attempt")? as u32);
            ev.progress = get(row, "progress")?;
            ev.message = get(row, "progress_message")?;
            events.push(ev);
        }
    }
    insert_events(c, events).await
}

async fn finish_tx(c: &mut PgConnection, items: &[Finish]) -> StoreResult<Vec<FinishOutcome>> {
    // A run (task, token) is applied at most once; a stale run of a task and its current
    // run go to separate statements, so the stale one cannot push the current one out.
    let mut applied: HashMap<(TaskId, i64), u32> = HashMap::with_capacity(items.len());
    let rounds = crate::rounds(items, |f| (f.id, f.token), false);
    for round in &rounds {
        finish_round(c, round, &mut applied).await?;
    }
    let new_events: Vec<NewEvent> = rounds
        .iter()
        .flatten()
        .filter_map(|f| {
            let attempt = *applied.get(&(f.id, f.token))?;
            Some(transition_event(f.id, f.at, &f.transition, attempt))
        })
        .collect();
    let events = insert_events(c, new_events).await?;
    Ok(crate::finish_outcomes(items, &applied, events))
}

async fn finish_round(
    c: &mut PgConnection,
    round: &[&Finish],
    applied: &mut HashMap<(TaskId, i64), u32>,
) -> StoreResult<()> {
    let n = round.len();
    let mut ids = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut results = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut completed = Vec::with_capacity(n);
    let mut run_at = Vec::with_capacity(n);
    let mut at = Vec::with_capacity(n);
    for f in round {
        let (result, error, retry_at) = crate::finish_columns(&f.transition);
        ids.push(uuid(f.id));
        tokens.push(f.token);
        statuses.push(f.transition.status().as_str());
        results.push(result);
        errors.push(error);
        completed.push(f.transition.status().is_final().then(|| f.at.as_millis()));
        run_at.push(retry_at);
        at.push(f.at.as_millis());
    }
    let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "WITH l AS (SELECT tasks.seq AS lock_seq, v.* \
           FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
                       $7::bigint[], $8::bigint[]) \
                AS v(id, token, status, result, error, completed_at, run_at, at) \
           JOIN tasks ON tasks.id = v.id \
           WHERE tasks.lease_token = v.token AND tasks.status IN ('running', 'input_required') \
             AND tasks.lease_expires_at >= v.at \
           ORDER BY tasks.id FOR UPDATE OF tasks) \
         UPDATE tasks SET status = l.status, result = l.result::json, error = l.error::json, \
         completed_at = l.completed_at, run_at = coalesce(l.run_at, tasks.run_at), updated_at = l.at, \
         progress = CASE l.status WHEN 'completed' THEN 1.0 WHEN 'pending' THEN NULL ELSE tasks.progress END, \
         progress_message = CASE l.status WHEN 'pending' THEN NULL ELSE tasks.progress_message END, \
         cancel_requested = (l.status = 'cancelled') OR tasks.cancel_requested, \
         input_requests = NULL, input_responses = NULL, checkpoint = NULL, \
         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
         FROM l WHERE tasks.seq = l.lock_seq \
         RETURNING tasks.id, tasks.attempt, l.token",
    )
    .bind(ids)
    .bind(tokens)
    .bind(statuses)
    .bind(results)
    .bind(errors)
    .bind(completed)
    .bind(run_at)
    .bind(at)
    .fetch_all(&mut *c)
    .await
    .map_err(db_err)?;
    for (id, attempt, token) in rows {
        applied.insert((TaskId::from_uuid(id), token), attempt as u32);
    }
    Ok(())
}

/// The task, locked for the rest of the transaction.
async fn lock_task(c: &mut PgConnection, id: TaskId) -> StoreResult<Option<Task>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE id = $1 FOR UPDATE"
    ))
    .bind(uuid(id))
    .fetch_optional(&mut *c)
    .await
    .map_err(db_err)?;
    row.as_ref().map(task_from_row).transpose()
}

async fn request_cancel_tx(
    c: &mut PgConnection,
    id: TaskId,
    now: Timestamp,
) -> StoreResult<CancelOutcome> {
    let Some(mut task) = lock_task(c, id).await? else {
        return Ok(CancelOutcome::NotFound);
    };
    let outcome = match task.status {
        TaskStatus::Pending => {
            sqlx::query(
                "UPDATE tasks SET status = 'cancelled', cancel_requested = true, completed_at = $1, \
                 updated_at = $1 WHERE id = $2",
            )
            .bind(now.as_millis())
            .bind(uuid(id))
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
            task.status = TaskStatus::Cancelled;
            task.cancel_requested = true;
            task.completed_at = Some(now);
            task.updated_at = now;
            let mut ev = NewEvent::new(id, now, EventKind::Cancelled, TaskStatus::Cancelled);
            ev.message = Some("cancelled before it started".into());
            let ev = insert_events(c, vec![ev]).await?.remove(0);
            CancelOutcome::Cancelled(task, ev)
        }
        TaskStatus::Running | TaskStatus::InputRequired if task.cancel_requested => {
            CancelOutcome::AlreadyRequested(task)
        }
        TaskStatus::Running | TaskStatus::InputRequired => {
            sqlx::query("UPDATE tasks SET cancel_requested = true, updated_at = $1 WHERE id = $2")
                .bind(now.as_millis())
                .bind(uuid(id))
                .execute(&mut *c)
                .await
                .map_err(db_err)?;
            task.cancel_requested = true;
            task.updated_at = now;
            let mut ev = NewEvent::new(id, now, EventKind::CancelRequested, task.status);
            ev.attempt = Some(task.attempt);
            let ev = insert_events(c, vec![ev]).await?.remove(0);
            CancelOutcome::Requested(task, ev)
        }
        _ => CancelOutcome::AlreadyFinal(task),
    };
    Ok(outcome)
}

async fn retry_task_tx(
    c: &mut PgConnection,
    id: TaskId,
    now: Timestamp,
) -> StoreResult<RetryOutcome> {
    let Some(mut task) = lock_task(c, id).await? else {
        return Ok(RetryOutcome::NotFound);
    };
    if !matches!(task.status, TaskStatus::Failed | TaskStatus::Cancelled) {
        return Ok(RetryOutcome::NotRetryable(task));
    }
    sqlx::query(
        "UPDATE tasks SET status = 'pending', attempt = 0, run_at = $1, updated_at = $1, \
         completed_at = NULL, result = NULL, error = NULL, cancel_requested = false, progress = NULL, \
         progress_message = NULL, input_requests = NULL, input_responses = NULL, checkpoint = NULL WHERE id = $2",
    )
    .bind(now.as_millis())
    .bind(uuid(id))
    .execute(&mut *c)
    .await
    .map_err(db_err)?;
    let mut ev = NewEvent::new(id, now, EventKind::Retried, TaskStatus::Pending);
    ev.message = Some(format!("retried by hand after it {}", task.status));
    ev.data = crate::step_data(task.step.as_ref());
    let ev = insert_events(c, vec![ev]).await?.remove(0);
    task.status = TaskStatus::Pending;
    task.attempt = 0;
    task.run_at = now;
    task.updated_at = now;
    task.completed_at = None;
    task.result = None;
    task.error = None;
    task.cancel_requested = false;
    task.progress = None;
    task.progress_message = None;
    task.input_requests = None;
    Ok(RetryOutcome::Retried(task, ev))
}

async fn requeue_leases_tx(c: &mut PgConnection, req: &Requeue<'_>) -> StoreResult<Vec<TaskEvent>> {
    // Locked in id order (see the module docs). Rescuers on several nodes skip each
    // other's rows instead of queueing behind them; a hand-back by owner waits, since
    // it must return every lease the node holds.
    let query = match req.selector {
        LeaseSelector::ExpiredBefore(t) => sqlx::query(concat!(
            "SELECT seq, id, attempt, max_attempts, lease_owner FROM tasks WHERE ",
            leased!(),
            " AND lease_expires_at < $1 ORDER BY id FOR UPDATE SKIP LOCKED"
        ))
        .bind(t.as_millis()),
        LeaseSelector::Owner(o) => sqlx::query(concat!(
            "SELECT seq, id, attempt, max_attempts, lease_owner FROM tasks WHERE ",
            leased!(),
            " AND lease_owner = $1 ORDER BY id FOR UPDATE"
        ))
        .bind(o),
    };
    let rows = query.fetch_all(&mut *c).await.map_err(db_err)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut seqs = Vec::with_capacity(rows.len());
    let mut statuses = Vec::with_capacity(rows.len());
    let mut attempts = Vec::with_capacity(rows.len());
    let mut errors = Vec::with_capacity(rows.len());
    let mut events = Vec::with_capacity(rows.len());
    for r in &rows {
        let id = TaskId::from_uuid(get(r, "id")?);
        let attempt = get::<i64>(r, "attempt")? as u32;
        let max_attempts = get::<i64>(r, "max_attempts")? as u32;
        let lease_owner: Option<String> = get(r, "lease_owner")?;
        let worker = lease_owner.as_deref().unwrap_or("unknown");
        seqs.push(get::<i64>(r, "seq")?);
        if req.count_attempt && attempt >= max_attempts {
            let error = TaskError::new(
                "lease_expired",
                format!(
                    "{} (worker {worker}); that was attempt {attempt} of {max_attempts}",
                    req.message
                ),
                false,
            );
            statuses.push(TaskStatus::Failed.as_str());
            attempts.push(i64::from(attempt));
            errors.push(Some(serde_json::to_string(&error).map_err(decode_err)?));
            let mut ev = NewEvent::new(id, req.now, EventKind::Failed, TaskStatus::Failed);
            ev.attempt = Some(attempt);
            ev.message = Some(error.message.clone());
            ev.data = serde_json::to_value(&error).ok();
            events.push(ev);
        } else {
            let new_attempt = if req.count_attempt {
                attempt
            } else {
                attempt.saturating_sub(1)
            };
            statuses.push(TaskStatus::Pending.as_str());
            attempts.push(i64::from(new_attempt));
            errors.push(None);
            let mut ev = NewEvent::new(id, req.now, req.kind, TaskStatus::Pending);
            ev.attempt = Some(attempt);
            ev.message = Some(format!("{} (worker {worker}); queued again", req.message));
            events.push(ev);
        }
    }
    sqlx::query(
        "UPDATE tasks SET status = v.status, attempt = v.attempt, updated_at = $1, \
         error = CASE WHEN v.status = 'failed' THEN v.error::json ELSE tasks.error END, \
         completed_at = CASE WHEN v.status = 'failed' THEN $1 ELSE tasks.completed_at END, \
         run_at = CASE WHEN v.status = 'pending' THEN $1 ELSE tasks.run_at END, \
         progress = CASE WHEN v.status = 'pending' THEN NULL ELSE tasks.progress END, \
         progress_message = CASE WHEN v.status = 'pending' THEN NULL ELSE tasks.progress_message END, \
         input_requests = NULL, input_responses = NULL, \
         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
         FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[]) AS v(seq, status, attempt, error) \
         WHERE tasks.seq = v.seq",
    )
    .bind(req.now.as_millis())
    .bind(seqs)
    .bind(statuses)
    .bind(attempts)
    .bind(errors)
    .execute(&mut *c)
    .await
    .map_err(db_err)?;
    insert_events(c, events).await
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn create_tasks(
        &self,
        tasks: Vec<NewTask>,
    ) -> StoreResult<(Vec<CreateOutcome>, Vec<TaskEvent>)> {
        if tasks.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        transaction!(self.pool, |c| create_tasks_tx(c, &tasks))
    }

    async fn create_and_claim(
        &self,
        tasks: Vec<NewTask>,
        claim: Option<ClaimRequest<'_>>,
    ) -> StoreResult<CreatedAndClaimed> {
        let claim = claim.filter(|c| c.limit > 0);
        if tasks.is_empty() && claim.is_none() {
            return Ok(CreatedAndClaimed {
                outcomes: Vec::new(),
                events: Vec::new(),
                claimed: Vec::new(),
            });
        }
        transaction!(self.pool, |c| async {
            let (outcomes, mut events) = create_tasks_deferred(c, &tasks).await?;
            let mut claimed = Vec::new();
            if let Some(req) = &claim {
                let (tasks, started) = claim_deferred(c, req).await?;
                claimed = tasks;
                events.extend(started);
            }
            // One statement for the created and started events alike.
            let events = insert_events(c, events).await?;
            Ok(CreatedAndClaimed {
                outcomes,
                events,
                claimed,
            })
        })
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE id = $1"
        ))
        .bind(uuid(id))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn list_tasks(&self, q: &TaskQuery) -> StoreResult<Vec<Task>> {
        let mut qb = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE true"
        ));
        if let Some(owner) = &q.owner {
            qb.push(" AND owner = ").push_bind(owner.clone());
        }
        if let Some(status) = q.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(tool) = &q.tool {
            qb.push(" AND tool = ").push_bind(tool.clone());
        }
        if let Some(queue) = &q.queue {
            qb.push(" AND queue = ").push_bind(queue.clone());
        }
        if let Some(wf) = &q.workflow_id {
            qb.push(" AND workflow_id = ").push_bind(wf.clone());
        }
        if let Some(parent) = q.parent_id {
            qb.push(" AND parent_id = ").push_bind(uuid(parent));
        }
        if let Some(before) = q.before_seq {
            qb.push(" AND seq < ").push_bind(before);
        }
        qb.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(task_from_row).collect()
    }

    async fn claim(&self, req: &ClaimRequest<'_>) -> StoreResult<(Vec<Task>, Vec<TaskEvent>)> {
        if req.limit == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        transaction!(self.pool, |c| claim_tx(c, req))
    }

    async fn heartbeat(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<HeartbeatReply> {
        // One statement (so no explicit transaction): lock the unexpired leases in id
        // order, extend them, and list the owner's tasks with a cancellation request.
        let rows: Vec<(Uuid, Option<i64>, bool)> = retry_conflicts!(
            sqlx::query_as(concat!(
                "WITH l AS (SELECT seq FROM tasks WHERE lease_owner = $1 AND ",
                leased!(),
                " AND lease_expires_at >= $2 ORDER BY id FOR UPDATE), \
                 u AS (UPDATE tasks SET lease_expires_at = $3 FROM l WHERE tasks.seq = l.seq \
                       RETURNING tasks.id, tasks.lease_token) \
                 SELECT id, lease_token, true FROM u \
                 UNION ALL SELECT id, NULL, false FROM tasks WHERE lease_owner = $1 AND ",
                leased!(),
                " AND cancel_requested"
            ))
            .bind(owner)
            .bind(now.as_millis())
            .bind(lease_until.as_millis())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
        )?;
        let mut reply = HeartbeatReply::default();
        for (id, token, held) in rows {
            if held {
                reply
                    .held
                    .push((TaskId::from_uuid(id), token.unwrap_or_default()));
            } else {
                reply.cancel_requested.push(TaskId::from_uuid(id));
            }
        }
        Ok(reply)
    }

    async fn record_progress(&self, updates: Vec<ProgressUpdate>) -> StoreResult<Vec<TaskEvent>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        transaction!(self.pool, |c| record_progress_tx(c, &updates))
    }

    async fn finish(&self, items: Vec<Finish>) -> StoreResult<Vec<FinishOutcome>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        transaction!(self.pool, |c| finish_tx(c, &items))
    }

    async fn request_cancel(&self, id: TaskId, now: Timestamp) -> StoreResult<CancelOutcome> {
        transaction!(self.pool, |c| request_cancel_tx(c, id, now))
    }

    async fn retry_task(&self, id: TaskId, now: Timestamp) -> StoreResult<RetryOutcome> {
        transaction!(self.pool, |c| retry_task_tx(c, id, now))
    }

    async fn requeue_leases(&self, req: &Requeue<'_>) -> StoreResult<Vec<TaskEvent>> {
        transaction!(self.pool, |c| requeue_leases_tx(c, req))
    }

    async fn purge_finished(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        // One statement each: the oldest completions of tasks of no workflow (skipping
        // rows another node is purging or retrying right now, and children of tasks still
        // running), their events, then the tasks.
        let tasks = retry_conflicts!(
            sqlx::query(
                "WITH d AS (SELECT seq, id FROM tasks WHERE completed_at IS NOT NULL AND completed_at < $1 \
                   AND workflow_id IS NULL AND (parent_id IS NULL OR NOT EXISTS \
                       (SELECT 1 FROM tasks p WHERE p.id = tasks.parent_id \
                        AND p.status IN ('pending', 'running', 'input_required'))) \
                   ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
                 e AS (DELETE FROM task_events USING d WHERE task_events.task_id = d.id) \
                 DELETE FROM tasks USING d WHERE tasks.seq = d.seq",
            )
            .bind(before.as_millis())
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(db_err)
        )?
        .rows_affected();
        // A workflow and its steps are one decision (see the trait): workflows over since
        // before the cut, with all their steps' tasks and events.
        let steps: i64 = retry_conflicts!(
            sqlx::query_scalar(
                "WITH w AS (SELECT seq, id FROM workflows WHERE completed_at IS NOT NULL \
                   AND completed_at < $1 AND status <> 'running' AND NOT EXISTS \
                       (SELECT 1 FROM tasks t WHERE t.workflow_id = workflows.id AND t.completed_at IS NULL) \
                   ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
                 d AS (SELECT tasks.seq, tasks.id FROM tasks JOIN w ON tasks.workflow_id = w.id \
                   ORDER BY tasks.id FOR UPDATE OF tasks), \
                 e AS (DELETE FROM task_events USING d WHERE task_events.task_id = d.id), \
                 t AS (DELETE FROM tasks USING d WHERE tasks.seq = d.seq RETURNING 1), \
                 x AS (DELETE FROM workflows USING w WHERE workflows.seq = w.seq) \
                 SELECT count(*) FROM t",
            )
            .bind(before.as_millis())
            .bind(i64::from(crate::workflow_purge_batch(limit)))
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
        )?;
        Ok(tasks + steps as u64)
    }

    async fn task_events(
        &self,
        id: TaskId,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<TaskEvent>> {
        let rows = sqlx::query(
            "SELECT seq, task_id, at, kind, status, attempt, progress, message, data FROM task_events \
             WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(uuid(id))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn queue_stats(&self, now: Timestamp) -> StoreResult<Vec<QueueStats>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let mut stats: std::collections::BTreeMap<String, QueueStats> = Default::default();
        let blank = |name: &str| QueueStats {
            name: name.to_string(),
            counts: TaskStatus::ALL
                .iter()
                .map(|s| (s.as_str().to_string(), 0))
                .collect(),
            ..Default::default()
        };
        let rows: Vec<(String, bool)> = sqlx::query_as("SELECT name, paused FROM queues")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        for (name, paused) in rows {
            stats
                .entry(name.clone())
                .or_insert_with(|| blank(&name))
                .paused = paused;
        }
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT queue, status, count(*) FROM tasks GROUP BY status, queue")
                .fetch_all(&mut *conn)
                .await
                .map_err(db_err)?;
        for (queue, status, n) in rows {
            stats
                .entry(queue.clone())
                .or_insert_with(|| blank(&queue))
                .counts
                .insert(status, n as u64);
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT queue, count(*) FROM tasks \
             WHERE completed_at IS NOT NULL AND completed_at >= $1 AND status = 'completed' GROUP BY queue",
        )
        .bind(now.as_millis() - 60_000)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        for (queue, n) in rows {
            if let Some(s) = stats.get_mut(&queue) {
                s.completed_last_minute = n as u64;
            }
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT queue, min(run_at) FROM tasks WHERE status = 'pending' AND run_at <= $1 GROUP BY queue",
        )
        .bind(now.as_millis())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        for (queue, at) in rows {
            if let Some(s) = stats.get_mut(&queue) {
                s.oldest_pending_run_at = Some(Timestamp::from_millis(at));
            }
        }
        Ok(stats.into_values().collect())
    }

    async fn set_queue_paused(&self, queue: &str, paused: bool, now: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO queues (name, paused, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
        )
        .bind(queue)
        .bind(paused)
        .bind(now.as_millis())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn recent_durations(&self, tool: &str, limit: u32) -> StoreResult<Vec<u64>> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT completed_at - started_at FROM tasks \
             WHERE status = 'completed' AND tool = $1 AND started_at IS NOT NULL \
             ORDER BY completed_at DESC LIMIT $2",
        )
        .bind(tool)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(|d| d.max(0) as u64).collect())
    }

    async fn count_active(&self) -> StoreResult<u64> {
        // Two counts, so each is answered from its partial index (`tasks_pending`,
        // `tasks_leased`) instead of a scan over every task ever stored.
        let n: i64 = sqlx::query_scalar(concat!(
            "SELECT (SELECT count(*) FROM tasks WHERE status = 'pending') \
             + (SELECT count(*) FROM tasks WHERE ",
            leased!(),
            ")"
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(n as u64)
    }

    async fn save_checkpoint(
        &self,
        id: TaskId,
        token: i64,
        checkpoint: Value,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let n = sqlx::query(concat!(
            "UPDATE tasks SET checkpoint = $1::json, updated_at = $2 WHERE id = $3 AND lease_token = $4 AND ",
            leased!(),
            " AND lease_expires_at >= $2"
        ))
        .bind(checkpoint.to_string())
        .bind(now.as_millis())
        .bind(uuid(id))
        .bind(token)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn set_input_required(
        &self,
        id: TaskId,
        token: i64,
        requests: Value,
        now: Timestamp,
    ) -> StoreResult<Option<TaskEvent>> {
        transaction!(self.pool, |c| async {
            let attempt: Option<i64> = sqlx::query_scalar(concat!(
                "UPDATE tasks SET status = 'input_required', input_requests = $1::json, \
                 input_responses = NULL, updated_at = $2 WHERE id = $3 AND lease_token = $4 AND ",
                leased!(),
                " AND lease_expires_at >= $2 RETURNING attempt"
            ))
            .bind(requests.to_string())
            .bind(now.as_millis())
            .bind(uuid(id))
            .bind(token)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_err)?;
            let Some(attempt) = attempt else {
                return Ok(None);
            };
            let mut ev =
                NewEvent::new(id, now, EventKind::InputRequired, TaskStatus::InputRequired);
            ev.attempt = Some(attempt as u32);
            ev.data = Some(requests.clone());
            Ok(insert_events(c, vec![ev]).await?.pop())
        })
    }

    async fn provide_input(
        &self,
        id: TaskId,
        responses: Value,
        now: Timestamp,
    ) -> StoreResult<InputOutcome> {
        transaction!(self.pool, |c| async {
            let Some(mut task) = lock_task(c, id).await? else {
                return Ok(InputOutcome::NotFound);
            };
            if task.status != TaskStatus::InputRequired {
                return Ok(InputOutcome::NotWaiting(task));
            }
            sqlx::query(
                "UPDATE tasks SET status = 'running', input_requests = NULL, input_responses = $1::json, \
                 updated_at = $2 WHERE id = $3",
            )
            .bind(responses.to_string())
            .bind(now.as_millis())
            .bind(uuid(id))
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
            task.status = TaskStatus::Running;
            task.input_requests = None;
            task.updated_at = now;
            let keys: Vec<Value> = responses
                .as_object()
                .map(|m| m.keys().map(|k| Value::String(k.clone())).collect())
                .unwrap_or_default();
            let mut ev = NewEvent::new(id, now, EventKind::InputReceived, TaskStatus::Running);
            ev.attempt = Some(task.attempt);
            ev.data = Some(serde_json::json!({ "keys": keys }));
            let ev = insert_events(c, vec![ev]).await?.remove(0);
            Ok(InputOutcome::Accepted(task, ev))
        })
    }

    async fn take_input(&self, id: TaskId, token: i64) -> StoreResult<Option<Value>> {
        // Read and clear in one statement: the CTE sees the row before the update.
        let taken: Option<Json<Value>> = sqlx::query_scalar(
            "WITH old AS (SELECT seq, input_responses FROM tasks WHERE id = $1 AND lease_token = $2 \
               AND input_responses IS NOT NULL FOR UPDATE) \
             UPDATE tasks SET input_responses = NULL FROM old WHERE tasks.seq = old.seq \
             RETURNING old.input_responses",
        )
        .bind(uuid(id))
        .bind(token)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(taken.map(|j| j.0))
    }

    async fn list_servers(&self) -> StoreResult<Vec<StoredServer>> {
        let rows: Vec<(String, Json<Value>, i64, i64)> = sqlx::query_as(
            "SELECT name, config, created_at, updated_at FROM servers ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(name, config, created, updated)| StoredServer {
                name,
                config: config.0,
                created_at: Timestamp::from_millis(created),
                updated_at: Timestamp::from_millis(updated),
            })
            .collect())
    }

    async fn put_server(&self, name: &str, config: Value, now: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO servers (name, config, created_at, updated_at) VALUES ($1, $2::json, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(config.to_string())
        .bind(now.as_millis())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_server(&self, name: &str) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM servers WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(n > 0)
    }

    async fn report_peer(&self, r: &PeerReport) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO peers (id, role, address, version, state, started_at, last_heartbeat, \
             running, finished, throughput) VALUES ($1, $2, $3, $4, 'live', $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET role = excluded.role, address = excluded.address, \
             version = excluded.version, state = 'live', started_at = excluded.started_at, \
             last_heartbeat = excluded.last_heartbeat, running = excluded.running, \
             finished = excluded.finished, throughput = excluded.throughput",
        )
        .bind(&r.id)
        .bind(&r.role)
        .bind(&r.address)
        .bind(&r.version)
        .bind(r.started_at.as_millis())
        .bind(r.now.as_millis())
        .bind(r.running as i64)
        .bind(r.finished as i64)
        .bind(r.throughput)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_peers(&self) -> StoreResult<Vec<Peer>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PEER_COLUMNS} FROM peers ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(peer_from_row).collect()
    }

    async fn peer_stopped(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE peers SET state = 'stopped', running = 0, last_heartbeat = $1 WHERE id = $2",
        )
        .bind(now.as_millis())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(n > 0)
    }

    async fn clock(&self) -> StoreResult<Option<Timestamp>> {
        let ms: i64 =
            sqlx::query_scalar("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(Some(Timestamp::from_millis(ms)))
    }

    async fn mark_lost_peers(
        &self,
        before: Timestamp,
        forget_before: Timestamp,
        caller: &str,
    ) -> StoreResult<Vec<Peer>> {
        transaction!(self.pool, |c| async {
            sqlx::query("DELETE FROM peers WHERE state <> 'live' AND last_heartbeat < $1")
                .bind(forget_before.as_millis())
                .execute(&mut *c)
                .await
                .map_err(db_err)?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE peers SET state = 'lost' WHERE state = 'live' AND last_heartbeat < $1 \
                 AND id <> $2 RETURNING {PEER_COLUMNS}"
            )))
            .bind(before.as_millis())
            .bind(caller)
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?;
            rows.iter()
                .map(peer_from_row)
                .collect::<StoreResult<Vec<_>>>()
        })
    }

    async fn create_workflow(
        &self,
        workflow: NewWorkflow,
        tasks: Vec<NewTask>,
    ) -> StoreResult<(Workflow, Vec<CreateOutcome>, Vec<TaskEvent>)> {
        transaction!(self.pool, |c| create_workflow_tx(c, &workflow, &tasks))
    }

    async fn get_workflow(&self, id: &str) -> StoreResult<Option<Workflow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    async fn list_workflows(&self, q: &WorkflowQuery) -> StoreResult<Vec<Workflow>> {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE true"
        ));
        if let Some(owner) = &q.owner {
            qb.push(" AND owner = ").push_bind(owner.clone());
        }
        if let Some(status) = q.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(before) = q.before_seq {
            qb.push(" AND seq < ").push_bind(before);
        }
        qb.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(workflow_from_row).collect()
    }

    async fn update_workflow(&self, update: WorkflowUpdate) -> StoreResult<WorkflowUpdated> {
        transaction!(self.pool, |c| update_workflow_tx(c, &update))
    }

    async fn try_singleton(&self, name: &str) -> StoreResult<Option<Box<dyn SingletonGuard>>> {
        use sqlx::Connection;
        // A connection of its own: the session-level lock lives exactly as long as it,
        // and PostgreSQL releases it when the connection (or this process) dies.
        let mut conn = PgConnection::connect_with(&self.connect)
            .await
            .map_err(|e| connect_error(&self.target, e))?;
        let got: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock($1, hashtext(current_schema() || '/' || $2))",
        )
        .bind(SINGLETON_LOCK)
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .map_err(db_err)?;
        if !got {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Some(Box::new(PgSingleton {
            conn: tokio::sync::Mutex::new(conn),
        })))
    }

    async fn listen(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<RemoteChange>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(listen_loop(self.clone(), tx));
        Ok(Some(rx))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
