//! The embedded store: one SQLite file in WAL mode.
//!
//! One writer connection (SQLite allows one writer at a time; a single connection avoids
//! lock hand-offs inside the process) and a small pool of readers (WAL readers never block
//! the writer). Every write transaction starts with `BEGIN IMMEDIATE`, so it takes the
//! write lock up front and waits `busy_timeout` for another process holding it instead
//! of failing half-way.
//!
//! Durability: with `synchronous = NORMAL` (the default) a commit is in the WAL file
//! when it returns, so it survives the process being killed (`kill -9`); the last
//! commits before a power loss or OS crash may be rolled back (never corrupted). With
//! `synchronous = FULL` the WAL is fsynced at every commit and commits survive power loss
//! too; group commit keeps that affordable.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::event::NewEvent;
use baton_core::task::{Lease, NewTask, StepRef};
use baton_core::{EventKind, Task, TaskError, TaskEvent, TaskId, TaskStatus, Timestamp};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::{
    CancelOutcome, ClaimRequest, CreateOutcome, CreatedAndClaimed, Finish, FinishOutcome,
    HeartbeatReply, InputOutcome, LeaseSelector, NewWorkflow, Peer, PeerReport, PeerState,
    ProgressUpdate, QueueStats, Requeue, RetryOutcome, SingletonGuard, Store, StoreError,
    StoreResult, StoredServer, TaskQuery, Workflow, WorkflowQuery, WorkflowStatus, WorkflowUpdate,
    WorkflowUpdated, created_event, json_or_null, transition_event, workflow_after,
    workflow_status_from,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const TASK_COLUMNS: &str = "seq, id, tool, arguments, queue, priority, status, progress, \
    progress_message, attempt, max_attempts, run_at, timeout_ms, idempotency_key, owner, \
    parent_id, metadata, created_at, started_at, updated_at, completed_at, result, error, \
    cancel_requested, lease_owner, lease_token, lease_expires_at, input_requests, checkpoint, \
    workflow_id, step_id";

/// Rows per multi-row statement: keeps bound parameters well under SQLite's limit.
const CHUNK: usize = 500;

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Survives `kill -9`; a power loss may roll back the last commits.
    #[default]
    Normal,
    /// fsync at every commit: survives power loss too.
    Full,
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    pub synchronous: Synchronous,
    /// How long a write waits for a lock held by another process before failing.
    pub busy_timeout: Duration,
    pub readers: u32,
}

impl SqliteOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteOptions {
            path: path.into(),
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            readers: 4,
        }
    }
}

pub struct SqliteStore {
    /// Requests to the writer task, which owns the only write connection.
    writer: mpsc::UnboundedSender<Msg>,
    reader: SqlitePool,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

type AnyResult = StoreResult<Box<dyn Any + Send>>;
type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;
type RunFn = Box<dyn for<'c> FnOnce(&'c mut Writer) -> BoxFuture<'c, AnyResult> + Send>;

/// The write connection, owned by the writer task.
pub(crate) struct Writer {
    conn: SqliteConnection,
    /// The last event number handed out, while known. Only this connection writes
    /// events, so it can count them itself instead of asking `sqlite_sequence` every
    /// time; it forgets the number whenever a write or a commit is rolled back.
    last_event_seq: Option<i64>,
}

/// A write and where its result goes once it is committed.
struct Command {
    run: RunFn,
    reply: oneshot::Sender<AnyResult>,
}

enum Msg {
    Cmd(Command),
    /// Finish queued writes, checkpoint, close the connection, then answer.
    Close(oneshot::Sender<()>),
}

/// Most writes sharing one transaction.
const MAX_GROUP: usize = 256;

impl SqliteStore {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub async fn open(opts: &SqliteOptions) -> StoreResult<Self> {
        let connect = SqliteConnectOptions::new()
            .filename(&opts.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match opts.synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            .busy_timeout(opts.busy_timeout)
            .foreign_keys(false)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-32000")
            // Claims and completions return hundreds of rows; with sqlx's small default
            // buffer the connection thread and the async side wake each other per row.
            .row_buffer_size(4096);
        let mut conn = <SqliteConnection as sqlx::Connection>::connect_with(&connect)
            .await
            .map_err(|e| open_error(&opts.path, e))?;
        MIGRATOR.run(&mut conn).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => open_error(&opts.path, e),
            other => StoreError::Migrate(other.to_string()),
        })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(opts.readers.max(1))
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await
            .map_err(|e| open_error(&opts.path, e))?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer_loop(conn, rx));
        Ok(SqliteStore {
            writer: tx,
            reader,
            path: opts.path.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in the writer task's current transaction and returns its result once that
    /// transaction has committed.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Writer) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run: RunFn = Box::new(move |c| {
            Box::pin(async move { f(c).await.map(|v| Box::new(v) as Box<dyn Any + Send>) })
        });
        self.writer
            .send(Msg::Cmd(Command { run, reply: tx }))
            .map_err(|_| closed())?;
        let any = rx.await.map_err(|_| closed())??;
        Ok(*any
            .downcast::<T>()
            .expect("the writer returns each command's own result"))
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

/// The writer task. SQLite has one writer at a time; owning the write connection here
/// avoids handing it between callers, and running every queued write in one transaction
/// (each under its own savepoint, so one failing write does not undo the others) makes
/// one commit cover submissions, claims, completions and progress alike. Callers hear
/// back only after the commit: an acknowledged write is a durable write.
async fn writer_loop(conn: SqliteConnection, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut w = Writer {
        conn,
        last_event_seq: None,
    };
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = rx.recv().await else { break };
        let mut cmds = Vec::new();
        match first {
            Msg::Cmd(c) => cmds.push(c),
            Msg::Close(t) => closing = Some(t),
        }
        while closing.is_none() && cmds.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Msg::Cmd(c)) => cmds.push(c),
                Ok(Msg::Close(t)) => closing = Some(t),
                Err(_) => break,
            }
        }
        if !cmds.is_empty() {
            let (n, t) = (cmds.len(), std::time::Instant::now());
            run_group(&mut w, cmds).await;
            tracing::trace!(
                writes = n,
                ms = t.elapsed().as_secs_f64() * 1e3,
                "write group committed"
            );
        }
    }
    // Fold the WAL into the main file so a copied database file is complete on its own.
    let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut w.conn)
        .await;
    let _ = sqlx::Connection::close(w.conn).await;
    if let Some(t) = closing {
        let _ = t.send(());
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> StoreResult<()> {
    sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(db_err)
}

/// Runs a group of writes in one transaction. With more than one write, each runs after
/// a savepoint, so a failing write is rolled back alone; savepoint bookkeeping is folded
/// into neighbouring statements (`RELEASE w; SAVEPOINT w` is one round trip, and COMMIT
/// releases the last one) because every round trip to SQLite's thread costs more than
/// the statements themselves.
async fn run_group(w: &mut Writer, cmds: Vec<Command>) {
    let single = cmds.len() == 1;
    let begin = if single {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN IMMEDIATE; SAVEPOINT w"
    };
    if let Err(e) = exec(&mut w.conn, begin).await {
        let _ = exec(&mut w.conn, "ROLLBACK").await;
        for c in cmds {
            let _ = c.reply.send(Err(e.clone()));
        }
        return;
    }
    let n = cmds.len();
    let mut done: Vec<(oneshot::Sender<AnyResult>, AnyResult)> = Vec::with_capacity(n);
    // Set when the transaction itself is lost (SQLite rolls back the whole transaction
    // on some errors, e.g. a full disk): nothing of the group can be kept.
    let mut broken: Option<StoreError> = None;
    for (i, c) in cmds.into_iter().enumerate() {
        if let Some(e) = &broken {
            let _ = c.reply.send(Err(e.clone()));
            continue;
        }
        let result = (c.run)(w).await;
        if !single {
            let last = i + 1 == n;
            let end = match (&result, last) {
                // The savepoint now marks the state after this write, for the next one.
                (Ok(_), false) => exec(&mut w.conn, "RELEASE w; SAVEPOINT w").await,
                (Ok(_), true) => Ok(()),
                // ROLLBACK TO keeps the savepoint, at the state before this write.
                (Err(_), _) => {
                    w.last_event_seq = None;
                    exec(&mut w.conn, "ROLLBACK TO w").await
                }
            };
            if let Err(e) = end {
                broken = Some(e);
            }
        }
        done.push((c.reply, result));
    }
    let failed_alone = single && done.first().is_some_and(|(_, r)| r.is_err());
    let commit_error = if broken.is_some() || failed_alone {
        w.last_event_seq = None;
        let _ = exec(&mut w.conn, "ROLLBACK").await;
        broken
    } else {
        match exec(&mut w.conn, "COMMIT").await {
            Ok(()) => None,
            Err(e) => {
                w.last_event_seq = None;
                let _ = exec(&mut w.conn, "ROLLBACK").await;
                Some(e)
            }
        }
    };
    for (reply, result) in done {
        let result = match (&commit_error, result) {
            (Some(e), Ok(_)) => Err(e.clone()),
            (_, r) => r,
        };
        let _ = reply.send(result);
    }
}

fn open_error(path: &Path, e: sqlx::Error) -> StoreError {
    match db_err(e) {
        StoreError::Database(m) => {
            StoreError::Unavailable(format!("cannot open {}: {m}", path.display()))
        }
        other => other,
    }
}

/// Maps SQLite's result codes to the errors a client can act on.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            let msg = db.message().to_string();
            match primary {
                Some(5) | Some(6) => StoreError::Busy(msg),
                Some(13) => StoreError::DiskFull(msg),
                Some(8) => StoreError::ReadOnly(msg),
                Some(11) | Some(26) => StoreError::Corrupt(msg),
                Some(10) if msg.contains("full") => StoreError::DiskFull(msg),
                Some(10) | Some(14) => StoreError::Unavailable(msg),
                _ => StoreError::Database(msg),
            }
        }
        sqlx::Error::PoolTimedOut => {
            StoreError::Busy("timed out waiting for a database connection".into())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the store is closed".into()),
        sqlx::Error::Io(io) => StoreError::Unavailable(io.to_string()),
        _ => StoreError::Database(e.to_string()),
    }
}

fn decode_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Decode(e.to_string())
}

fn parse_json(s: Option<String>) -> StoreResult<Option<Value>> {
    s.map(|s| serde_json::from_str(&s).map_err(decode_err))
        .transpose()
}

fn task_from_row(r: &SqliteRow) -> StoreResult<Task> {
    let get_ts = |col: &str| -> StoreResult<Option<Timestamp>> {
        Ok(r.try_get::<Option<i64>, _>(col)
            .map_err(decode_err)?
            .map(Timestamp::from_millis))
    };
    let id: String = r.try_get("id").map_err(decode_err)?;
    let status: String = r.try_get("status").map_err(decode_err)?;
    let error = parse_json(r.try_get("error").map_err(decode_err)?)?
        .map(serde_json::from_value::<TaskError>)
        .transpose()
        .map_err(decode_err)?;
    let lease_owner: Option<String> = r.try_get("lease_owner").map_err(decode_err)?;
    let lease_token: Option<i64> = r.try_get("lease_token").map_err(decode_err)?;
    let lease = match (lease_owner, lease_token, get_ts("lease_expires_at")?) {
        (Some(owner), Some(token), Some(expires_at)) => Some(Lease {
            owner,
            token,
            expires_at,
        }),
        _ => None,
    };
    let parent: Option<String> = r.try_get("parent_id").map_err(decode_err)?;
    let step = match (
        r.try_get::<Option<String>, _>("workflow_id")
            .map_err(decode_err)?,
        r.try_get::<Option<String>, _>("step_id")
            .map_err(decode_err)?,
    ) {
        (Some(workflow_id), Some(step_id)) => Some(StepRef {
            workflow_id,
            step_id,
        }),
        _ => None,
    };
    Ok(Task {
        id: id.parse().map_err(decode_err)?,
        seq: r.try_get("seq").map_err(decode_err)?,
        tool: r.try_get("tool").map_err(decode_err)?,
        arguments: parse_json(Some(r.try_get("arguments").map_err(decode_err)?))?
            .unwrap_or(Value::Null),
        queue: r.try_get("queue").map_err(decode_err)?,
        priority: r.try_get("priority").map_err(decode_err)?,
        status: TaskStatus::from_str(&status).map_err(decode_err)?,
        progress: r.try_get("progress").map_err(decode_err)?,
        progress_message: r.try_get("progress_message").map_err(decode_err)?,
        attempt: r.try_get::<i64, _>("attempt").map_err(decode_err)? as u32,
        max_attempts: r.try_get::<i64, _>("max_attempts").map_err(decode_err)? as u32,
        run_at: get_ts("run_at")?.unwrap_or_default(),
        timeout_ms: r
            .try_get::<Option<i64>, _>("timeout_ms")
            .map_err(decode_err)?
            .map(|v| v as u64),
        idempotency_key: r.try_get("idempotency_key").map_err(decode_err)?,
        owner: r.try_get("owner").map_err(decode_err)?,
        parent_id: parent.map(|p| p.parse()).transpose().map_err(decode_err)?,
        step,
        metadata: parse_json(r.try_get("metadata").map_err(decode_err)?)?,
        created_at: get_ts("created_at")?.unwrap_or_default(),
        started_at: get_ts("started_at")?,
        updated_at: get_ts("updated_at")?.unwrap_or_default(),
        completed_at: get_ts("completed_at")?,
        result: parse_json(r.try_get("result").map_err(decode_err)?)?,
        error,
        cancel_requested: r
            .try_get::<i64, _>("cancel_requested")
            .map_err(decode_err)?
            != 0,
        lease,
        input_requests: parse_json(r.try_get("input_requests").map_err(decode_err)?)?,
        checkpoint: parse_json(r.try_get("checkpoint").map_err(decode_err)?)?,
    })
}

fn event_from_row(r: &SqliteRow) -> StoreResult<TaskEvent> {
    let task_id: String = r.try_get("task_id").map_err(decode_err)?;
    let kind: String = r.try_get("kind").map_err(decode_err)?;
    let status: String = r.try_get("status").map_err(decode_err)?;
    Ok(TaskEvent {
        seq: r.try_get("seq").map_err(decode_err)?,
        task_id: task_id.parse().map_err(decode_err)?,
        at: Timestamp::from_millis(r.try_get("at").map_err(decode_err)?),
        kind: EventKind::parse(&kind).ok_or_else(|| decode_err(format!("event kind {kind}")))?,
        status: TaskStatus::from_str(&status).map_err(decode_err)?,
        attempt: r
            .try_get::<Option<i64>, _>("attempt")
            .map_err(decode_err)?
            .map(|a| a as u32),
        progress: r.try_get("progress").map_err(decode_err)?,
        message: r.try_get("message").map_err(decode_err)?,
        data: parse_json(r.try_get("data").map_err(decode_err)?)?,
        result: None,
    })
}

/// Appends events. Runs inside the caller's write transaction, which holds SQLite's write
/// lock, so the numbers after `sqlite_sequence` are ours to hand out in order.
async fn insert_events(w: &mut Writer, events: Vec<NewEvent>) -> StoreResult<Vec<TaskEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let events = crate::storable_events(events);
    let last: i64 = match w.last_event_seq {
        Some(n) => n,
        None => sqlx::query_scalar(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'task_events'), 0)",
        )
        .fetch_one(&mut w.conn)
        .await
        .map_err(db_err)?,
    };
    let stored: Vec<TaskEvent> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| e.with_seq(last + 1 + i as i64))
        .collect();
    for chunk in stored.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO task_events (seq, task_id, at, kind, status, attempt, progress, message, data) ",
        );
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(e.seq)
                .push_bind(e.task_id.to_string())
                .push_bind(e.at.as_millis())
                .push_bind(e.kind.as_str())
                .push_bind(e.status.as_str())
                .push_bind(e.attempt.map(i64::from))
                .push_bind(e.progress)
                .push_bind(e.message.clone())
                .push_bind(json_or_null(&e.data));
        });
        qb.build().execute(&mut w.conn).await.map_err(db_err)?;
    }
    if let Some(e) = stored.last() {
        w.last_event_seq = Some(e.seq);
    }
    Ok(stored)
}

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

/// The shared candidate filter of a claim: pending, due, queue not paused. The partial
/// index is named because, left to itself, the planner prefers `tasks_status` and then
/// sorts every pending row on each claim (17 ms at 100k pending, against 2 ms).
fn push_runnable(qb: &mut QueryBuilder<Sqlite>, columns: &str, now: Timestamp) {
    qb.push(format!(
        "SELECT {columns} FROM tasks INDEXED BY tasks_pending \
         WHERE status = 'pending' AND run_at <= "
    ))
    .push_bind(now.as_millis())
    .push(" AND queue NOT IN (SELECT name FROM queues WHERE paused = 1)");
}

fn push_selector(qb: &mut QueryBuilder<Sqlite>, sel: &crate::ToolSelector) {
    match sel {
        crate::ToolSelector::Tool(t) => {
            qb.push("tool = ").push_bind(t.clone());
        }
        crate::ToolSelector::Prefix(p) => {
            qb.push("substr(tool, 1, ")
                .push_bind(p.chars().count() as i64)
                .push(") = ")
                .push_bind(p.clone());
        }
    }
}

struct Candidate {
    seq: i64,
    tool: String,
}

impl Candidate {
    fn from_row(r: &SqliteRow) -> StoreResult<Self> {
        Ok(Candidate {
            seq: r.try_get("seq").map_err(decode_err)?,
            tool: r.try_get("tool").map_err(decode_err)?,
        })
    }
}

const LEASED: &str = "status IN ('running', 'input_required')";

// The writes: each runs inside the writer task's transaction (see `writer_loop`).

async fn create_tasks_tx(
    w: &mut Writer,
    tasks: &[NewTask],
) -> StoreResult<(Vec<CreateOutcome>, Vec<TaskEvent>)> {
    let (outcomes, events) = create_tasks_deferred(w, tasks).await?;
    Ok((outcomes, insert_events(w, events).await?))
}

/// Stores the tasks; their `created` events are returned for the caller to append (so a
/// caller doing more in the same transaction appends all its events in one statement).
async fn create_tasks_deferred(
    w: &mut Writer,
    tasks: &[NewTask],
) -> StoreResult<(Vec<CreateOutcome>, Vec<NewEvent>)> {
    if tasks.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // Idempotency: tasks already stored under the same (owner, key).
    let keyed: Vec<(&str, &str)> = tasks
        .iter()
        .filter_map(|t| Some((t.owner.as_str(), t.idempotency_key.as_deref()?)))
        .collect();
    let mut existing: HashMap<(String, String), Task> = HashMap::new();
    for chunk in keyed.chunks(CHUNK) {
        // A join from the keys, so each is one lookup in the unique index (an
        // `(owner, key) IN (...)` test would scan the whole index).
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT ");
        qb.push(
            TASK_COLUMNS
                .split(", ")
                .map(|c| format!("tasks.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        qb.push(" FROM (");
        qb.push_values(chunk, |mut b, (owner, key)| {
            b.push_bind(owner.to_string()).push_bind(key.to_string());
        });
        qb.push(
            ") AS k JOIN tasks ON tasks.owner = k.column1 AND tasks.idempotency_key = k.column2 \
             WHERE tasks.idempotency_key IS NOT NULL",
        );
        for row in qb.build().fetch_all(&mut w.conn).await.map_err(db_err)? {
            let t = task_from_row(&row)?;
            if let Some(k) = t.idempotency_key.clone() {
                existing.insert((t.owner.clone(), k), t);
            }
        }
    }
    // Which items to insert; later items repeating an earlier key get that task.
    enum Plan {
        Insert,
        Existing(Box<Task>),
        SameAs(usize),
    }
    let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut plans = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        let plan = match t.idempotency_key.as_deref() {
            Some(key) => {
                if let Some(found) = existing.get(&(t.owner.clone(), key.to_string())) {
                    Plan::Existing(Box::new(found.clone()))
                } else if let Some(&j) = first_with_key.get(&(t.owner.as_str(), key)) {
                    Plan::SameAs(j)
                } else {
                    first_with_key.insert((t.owner.as_str(), key), i);
                    Plan::Insert
                }
            }
            None => Plan::Insert,
        };
        plans.push(plan);
    }
    let to_insert: Vec<&NewTask> = tasks
        .iter()
        .zip(&plans)
        .filter(|(_, p)| matches!(p, Plan::Insert))
        .map(|(t, _)| t)
        .collect();
    let mut seq_of: HashMap<TaskId, i64> = HashMap::with_capacity(to_insert.len());
    for chunk in to_insert.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO tasks (id, tool, arguments, queue, priority, status, attempt, \
             max_attempts, run_at, timeout_ms, idempotency_key, owner, parent_id, metadata, \
             created_at, updated_at, workflow_id, step_id) ",
        );
        qb.push_values(chunk, |mut b, t| {
            b.push_bind(t.id.to_string())
                .push_bind(t.tool.clone())
                .push_bind(t.arguments.to_string())
                .push_bind(t.queue.clone())
                .push_bind(t.priority)
                .push_bind("pending")
                .push_bind(0i64)
                .push_bind(i64::from(t.max_attempts))
                .push_bind(t.run_at.as_millis())
                .push_bind(t.timeout_ms.map(|v| v as i64))
                .push_bind(t.idempotency_key.clone())
                .push_bind(t.owner.clone())
                .push_bind(t.parent_id.map(|p| p.to_string()))
                .push_bind(json_or_null(&t.metadata))
                .push_bind(t.created_at.as_millis())
                .push_bind(t.created_at.as_millis())
                .push_bind(t.step.as_ref().map(|s| s.workflow_id.clone()))
                .push_bind(t.step.as_ref().map(|s| s.step_id.clone()));
        });
        qb.push(" RETURNING seq, id");
        for row in qb.build().fetch_all(&mut w.conn).await.map_err(db_err)? {
            let id: String = row.try_get("id").map_err(decode_err)?;
            seq_of.insert(
                id.parse().map_err(decode_err)?,
                row.try_get("seq").map_err(decode_err)?,
            );
        }
    }
    let events: Vec<NewEvent> = to_insert.iter().map(|t| created_event(t)).collect();

    let mut outcomes: Vec<CreateOutcome> = Vec::with_capacity(tasks.len());
    for (t, plan) in tasks.iter().zip(plans) {
        let outcome = match plan {
            Plan::Insert => {
                let seq = *seq_of.get(&t.id).ok_or_else(|| {
                    StoreError::Database(format!("task {} was not inserted", t.id))
                })?;
                CreateOutcome::Created(task_from_new(t, seq))
            }
            Plan::Existing(found) => CreateOutcome::Existing(*found),
            Plan::SameAs(j) => CreateOutcome::Existing(outcomes[j].task().clone()),
        };
        outcomes.push(outcome);
    }
    crate::check_idempotent(tasks, &outcomes)?;
    Ok((outcomes, events))
}

async fn claim_tx(
    w: &mut Writer,
    req: &ClaimRequest<'_>,
) -> StoreResult<(Vec<Task>, Vec<TaskEvent>)> {
    let (claimed, events) = claim_deferred(w, req).await?;
    Ok((claimed, insert_events(w, events).await?))
}

/// Claims; the `started` events are returned for the caller to append.
async fn claim_deferred(
    w: &mut Writer,
    req: &ClaimRequest<'_>,
) -> StoreResult<(Vec<Task>, Vec<NewEvent>)> {
    if req.limit == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    if req.limits.is_empty() {
        return claim_unlimited(w, req).await;
    }
    // Free capacity of each concurrency limit, from what is running now.
    let mut free: Vec<u32> = Vec::with_capacity(req.limits.len());
    if !req.limits.is_empty() {
        let rows = sqlx::query(
            "SELECT tool, count(*) AS n FROM tasks WHERE status = 'running' GROUP BY tool",
        )
        .fetch_all(&mut w.conn)
        .await
        .map_err(db_err)?;
        let mut running: Vec<(String, i64)> = Vec::with_capacity(rows.len());
        for r in rows {
            running.push((
                r.try_get("tool").map_err(decode_err)?,
                r.try_get("n").map_err(decode_err)?,
            ));
        }
        for l in req.limits {
            let used: i64 = running
                .iter()
                .filter(|(t, _)| l.selector.matches(t))
                .map(|(_, n)| n)
                .sum();
            free.push(l.max.saturating_sub(used as u32));
        }
    }
    // Greedy rounds: take the best runnable candidates that no saturated limit
    // covers; a candidate that would overfill a limit saturates it, and the next
    // round excludes that limit's tools. Each round fills the batch, runs out of
    // candidates, or saturates one more limit, so there are at most `limits + 1`.
    let mut room = free;
    let mut chosen: Vec<i64> = Vec::with_capacity(req.limit);
    loop {
        let want = req.limit - chosen.len();
        let mut qb = QueryBuilder::<Sqlite>::new("");
        push_runnable(&mut qb, "seq, tool", req.now);
        for (l, _) in req.limits.iter().zip(&room).filter(|(_, r)| **r == 0) {
            qb.push(" AND NOT (");
            push_selector(&mut qb, &l.selector);
            qb.push(")");
        }
        if !chosen.is_empty() {
            qb.push(" AND seq NOT IN (");
            let mut sep = qb.separated(", ");
            for s in &chosen {
                sep.push_bind(*s);
            }
            qb.push(")");
        }
        qb.push(" ORDER BY priority DESC, run_at, seq LIMIT ")
            .push_bind(want as i64);
        let rows = qb.build().fetch_all(&mut w.conn).await.map_err(db_err)?;
        let fetched = rows.len();
        let mut saturated_one = false;
        for row in rows {
            let c = Candidate::from_row(&row)?;
            let matching: Vec<usize> = req
                .limits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.selector.matches(&c.tool))
                .map(|(i, _)| i)
                .collect();
            if matching.iter().any(|&i| room[i] == 0) {
                saturated_one = true;
                continue;
            }
            for i in matching {
                room[i] -= 1;
            }
            chosen.push(c.seq);
        }
        if chosen.len() >= req.limit || fetched < want || !saturated_one {
            break;
        }
    }
    if chosen.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut claimed: Vec<Task> = Vec::with_capacity(chosen.len());
    for chunk in chosen.chunks(CHUNK) {
        let mut qb = claim_update(req);
        let mut sep = qb.separated(", ");
        for s in chunk {
            sep.push_bind(*s);
        }
        qb.push(format!(") RETURNING {TASK_COLUMNS}"));
        for row in qb.build().fetch_all(&mut w.conn).await.map_err(db_err)? {
            claimed.push(task_from_row(&row)?);
        }
    }
    claimed_events(req, claimed)
}

/// `UPDATE … WHERE seq IN (`, to be followed by the chosen rows and `) RETURNING …`.
fn claim_update(req: &ClaimRequest<'_>) -> QueryBuilder<Sqlite> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "UPDATE tasks SET status = 'running', attempt = attempt + 1, started_at = ",
    );
    qb.push_bind(req.now.as_millis())
        .push(", updated_at = ")
        .push_bind(req.now.as_millis())
        .push(", progress = NULL, progress_message = NULL, lease_owner = ")
        .push_bind(req.owner.to_string())
        .push(", lease_token = ")
        .push_bind(req.token)
        .push(", lease_expires_at = ")
        .push_bind(req.lease_until.as_millis())
        // `+status`: look rows up by seq; an index on status would walk every pending row.
        .push(" WHERE +status = 'pending' AND seq IN (");
    qb
}

/// Without concurrency limits a claim is one statement.
async fn claim_unlimited(
    w: &mut Writer,
    req: &ClaimRequest<'_>,
) -> StoreResult<(Vec<Task>, Vec<NewEvent>)> {
    let mut qb = claim_update(req);
    push_runnable(&mut qb, "seq", req.now);
    qb.push(" ORDER BY priority DESC, run_at, seq LIMIT ")
        .push_bind(req.limit as i64)
        .push(format!(") RETURNING {TASK_COLUMNS}"));
    let rows = qb.build().fetch_all(&mut w.conn).await.map_err(db_err)?;
    let claimed = rows
        .iter()
        .map(task_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    claimed_events(req, claimed)
}

fn claimed_events(
    req: &ClaimRequest<'_>,
    mut claimed: Vec<Task>,
) -> StoreResult<(Vec<Task>, Vec<NewEvent>)> {
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

async fn heartbeat_tx(
    w: &mut Writer,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> StoreResult<HeartbeatReply> {
    let held: Vec<(String, i64)> = sqlx::query_as(
        "UPDATE tasks SET lease_expires_at = ? WHERE lease_owner = ? \
         AND status IN ('running', 'input_required') AND lease_expires_at >= ? \
         RETURNING id, lease_token",
    )
    .bind(lease_until.as_millis())
    .bind(owner)
    .bind(now.as_millis())
    .fetch_all(&mut w.conn)
    .await
    .map_err(db_err)?;
    let cancel: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM tasks WHERE lease_owner = ? AND status IN ('running', 'input_required') AND cancel_requested = 1",
    )
    .bind(owner)
    .fetch_all(&mut w.conn)
    .await
    .map_err(db_err)?;
    let parse = |ids: Vec<String>| -> StoreResult<Vec<TaskId>> {
        ids.iter().map(|s| s.parse().map_err(decode_err)).collect()
    };
    Ok(HeartbeatReply {
        held: held
            .into_iter()
            .map(|(id, token)| Ok((id.parse().map_err(decode_err)?, token)))
            .collect::<StoreResult<_>>()?,
        cancel_requested: parse(cancel)?,
    })
}

async fn record_progress_tx(
    w: &mut Writer,
    updates: &[ProgressUpdate],
) -> StoreResult<Vec<TaskEvent>> {
    if updates.is_empty() {
        return Ok(Vec::new());
    }
    let mut events = Vec::with_capacity(updates.len());
    for round in crate::rounds(updates, |u| (u.id, u.token), true) {
        let by_id: HashMap<TaskId, &ProgressUpdate> = round.iter().map(|u| (u.id, *u)).collect();
        record_progress_round(w, &round, &by_id, &mut events).await?;
    }
    let events = insert_events(w, events).await?;
    Ok(events)
}

async fn record_progress_round(
    w: &mut Writer,
    unique: &[&ProgressUpdate],
    by_id: &HashMap<TaskId, &ProgressUpdate>,
    events: &mut Vec<NewEvent>,
) -> StoreResult<()> {
    for chunk in unique.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "UPDATE tasks SET progress = coalesce(v.column3, progress), \
             progress_message = coalesce(v.column4, progress_message), updated_at = v.column5 FROM (",
        );
        qb.push_values(chunk, |mut b, u| {
            b.push_bind(u.id.to_string())
                .push_bind(u.token)
                .push_bind(u.progress)
                .push_bind(crate::storable_message(u.message.as_deref()).map(|m| m.into_owned()))
                .push_bind(u.at.as_millis());
        });
        qb.push(
            ") AS v WHERE tasks.id = v.column1 AND tasks.lease_token = v.column2 \
             AND tasks.status = 'running' AND tasks.lease_expires_at >= v.column5 \
             RETURNING id, attempt, progress, progress_message",
        );
        for row in qb.build().fetch_all(&mut w.conn).await.map_err(db_err)? {
            let id: TaskId = row
                .try_get::<String, _>("id")
                .map_err(decode_err)?
                .parse()
                .map_err(decode_err)?;
            let at = by_id.get(&id).map_or(Timestamp::ZERO, |u| u.at);
            let mut ev = NewEvent::new(id, at, EventKind::Progress, TaskStatus::Running);
            ev.attempt = Some(row.try_get::<i64, _>("attempt").map_err(decode_err)? as u32);
            ev.progress = row.try_get("progress").map_err(decode_err)?;
            ev.message = row.try_get("progress_message").map_err(decode_err)?;
            events.push(ev);
        }
    }
    Ok(())
}

async fn finish_tx(w: &mut Writer, items: &[Finish]) -> StoreResult<Vec<FinishOutcome>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    // A run (task, token) is applied at most once; a stale run of a task and its current
    // run go to separate statements, so the stale one cannot push the current one out.
    let mut applied: HashMap<(TaskId, i64), u32> = HashMap::with_capacity(items.len());
    let rounds = crate::rounds(items, |f| (f.id, f.token), false);
    for round in &rounds {
        for chunk in round.chunks(CHUNK) {
            finish_chunk(w, chunk, &mut applied).await?;
        }
    }
    let new_events: Vec<NewEvent> = rounds
        .iter()
        .flatten()
        .filter_map(|f| {
            let attempt = *applied.get(&(f.id, f.token))?;
            Some(transition_event(f.id, f.at, &f.transition, attempt))
        })
        .collect();
    let events = insert_events(w, new_events).await?;
    Ok(crate::finish_outcomes(items, &applied, events))
}

async fn finish_chunk(
    w: &mut Writer,
    chunk: &[&Finish],
    applied: &mut HashMap<(TaskId, i64), u32>,
) -> StoreResult<()> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "UPDATE tasks SET status = v.column3, result = v.column4, error = v.column5, \
         completed_at = v.column6, run_at = coalesce(v.column7, run_at), updated_at = v.column8, \
         progress = CASE v.column3 WHEN 'completed' THEN 1.0 WHEN 'pending' THEN NULL ELSE progress END, \
         progress_message = CASE v.column3 WHEN 'pending' THEN NULL ELSE progress_message END, \
         cancel_requested = CASE v.column3 WHEN 'cancelled' THEN 1 ELSE cancel_requested END, \
         input_requests = NULL, input_responses = NULL, checkpoint = NULL, \
         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL FROM (",
    );
    qb.push_values(chunk, |mut b, f| {
        let (result, error, run_at) = crate::finish_columns(&f.transition);
        let completed_at = f.transition.status().is_final().then(|| f.at.as_millis());
        b.push_bind(f.id.to_string())
            .push_bind(f.token)
            .push_bind(f.transition.status().as_str())
            .push_bind(result)
            .push_bind(error)
            .push_bind(completed_at)
            .push_bind(run_at)
            .push_bind(f.at.as_millis());
    });
    qb.push(
        ") AS v WHERE tasks.id = v.column1 AND tasks.lease_token = v.column2 \
         AND tasks.status IN ('running', 'input_required') AND tasks.lease_expires_at >= v.column8 \
         RETURNING id, attempt",
    );
    // Within a round a task appears once, so its id names the run.
    let tokens: HashMap<TaskId, i64> = chunk.iter().map(|f| (f.id, f.token)).collect();
    for row in qb.build().fetch_all(&mut w.conn).await.map_err(db_err)? {
        let id: TaskId = row
            .try_get::<String, _>("id")
            .map_err(decode_err)?
            .parse()
            .map_err(decode_err)?;
        let attempt = row.try_get::<i64, _>("attempt").map_err(decode_err)? as u32;
        if let Some(token) = tokens.get(&id) {
            applied.insert((id, *token), attempt);
        }
    }
    Ok(())
}

async fn request_cancel_tx(
    w: &mut Writer,
    id: TaskId,
    now: Timestamp,
) -> StoreResult<CancelOutcome> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
    )))
    .bind(id.to_string())
    .fetch_optional(&mut w.conn)
    .await
    .map_err(db_err)?;
    let Some(mut task) = row.as_ref().map(task_from_row).transpose()? else {
        return Ok(CancelOutcome::NotFound);
    };
    let outcome = match task.status {
        TaskStatus::Pending => {
            sqlx::query(
                "UPDATE tasks SET status = 'cancelled', cancel_requested = 1, completed_at = ?, updated_at = ? WHERE id = ?",
            )
            .bind(now.as_millis())
            .bind(now.as_millis())
            .bind(id.to_string())
            .execute(&mut w.conn)
            .await
            .map_err(db_err)?;
            task.status = TaskStatus::Cancelled;
            task.cancel_requested = true;
            task.completed_at = Some(now);
            task.updated_at = now;
            let mut ev = NewEvent::new(id, now, EventKind::Cancelled, TaskStatus::Cancelled);
            ev.message = Some("cancelled before it started".into());
            let ev = insert_events(w, vec![ev]).await?.remove(0);
            CancelOutcome::Cancelled(task, ev)
        }
        TaskStatus::Running | TaskStatus::InputRequired if task.cancel_requested => {
            CancelOutcome::AlreadyRequested(task)
        }
        TaskStatus::Running | TaskStatus::InputRequired => {
            sqlx::query("UPDATE tasks SET cancel_requested = 1, updated_at = ? WHERE id = ?")
                .bind(now.as_millis())
                .bind(id.to_string())
                .execute(&mut w.conn)
                .await
                .map_err(db_err)?;
            task.cancel_requested = true;
            task.updated_at = now;
            let mut ev = NewEvent::new(id, now, EventKind::CancelRequested, task.status);
            ev.attempt = Some(task.attempt);
            let ev = insert_events(w, vec![ev]).await?.remove(0);
            CancelOutcome::Requested(task, ev)
        }
        _ => CancelOutcome::AlreadyFinal(task),
    };
    Ok(outcome)
}

async fn retry_task_tx(w: &mut Writer, id: TaskId, now: Timestamp) -> StoreResult<RetryOutcome> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
    )))
    .bind(id.to_string())
    .fetch_optional(&mut w.conn)
    .await
    .map_err(db_err)?;
    let Some(mut task) = row.as_ref().map(task_from_row).transpose()? else {
        return Ok(RetryOutcome::NotFound);
    };
    if !matches!(task.status, TaskStatus::Failed | TaskStatus::Cancelled) {
        return Ok(RetryOutcome::NotRetryable(task));
    }
    sqlx::query(
        "UPDATE tasks SET status = 'pending', attempt = 0, run_at = ?, updated_at = ?, \
         completed_at = NULL, result = NULL, error = NULL, cancel_requested = 0, progress = NULL, \
         progress_message = NULL, input_requests = NULL, input_responses = NULL, checkpoint = NULL WHERE id = ?",
    )
    .bind(now.as_millis())
    .bind(now.as_millis())
    .bind(id.to_string())
    .execute(&mut w.conn)
    .await
    .map_err(db_err)?;
    let mut ev = NewEvent::new(id, now, EventKind::Retried, TaskStatus::Pending);
    ev.message = Some(format!("retried by hand after it {}", task.status));
    ev.data = crate::step_data(task.step.as_ref());
    let ev = insert_events(w, vec![ev]).await?.remove(0);
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

async fn requeue_leases_tx(w: &mut Writer, req: &Requeue<'_>) -> StoreResult<Vec<TaskEvent>> {
    let mut qb = QueryBuilder::<Sqlite>::new(format!(
        "SELECT seq, id, attempt, max_attempts, lease_owner FROM tasks WHERE {LEASED}"
    ));
    match req.selector {
        LeaseSelector::ExpiredBefore(t) => {
            qb.push(" AND lease_expires_at < ").push_bind(t.as_millis());
        }
        LeaseSelector::Owner(o) => {
            qb.push(" AND lease_owner = ").push_bind(o.to_string());
        }
    }
    let rows = qb.build().fetch_all(&mut w.conn).await.map_err(db_err)?;
    let mut events = Vec::with_capacity(rows.len());
    let now = req.now.as_millis();
    for r in rows {
        let seq: i64 = r.try_get("seq").map_err(decode_err)?;
        let id: TaskId = r
            .try_get::<String, _>("id")
            .map_err(decode_err)?
            .parse()
            .map_err(decode_err)?;
        let attempt = r.try_get::<i64, _>("attempt").map_err(decode_err)? as u32;
        let max_attempts = r.try_get::<i64, _>("max_attempts").map_err(decode_err)? as u32;
        let lease_owner: Option<String> = r.try_get("lease_owner").map_err(decode_err)?;
        if req.count_attempt && attempt >= max_attempts {
            let error = TaskError::new(
                "lease_expired",
                format!(
                    "{} (worker {}); that was attempt {attempt} of {max_attempts}",
                    req.message,
                    lease_owner.as_deref().unwrap_or("unknown")
                ),
                false,
            );
            sqlx::query(
                "UPDATE tasks SET status = 'failed', error = ?, completed_at = ?, updated_at = ?, \
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, input_requests = NULL, input_responses = NULL WHERE seq = ?",
            )
            .bind(serde_json::to_string(&error).map_err(decode_err)?)
            .bind(now)
            .bind(now)
            .bind(seq)
            .execute(&mut w.conn)
            .await
            .map_err(db_err)?;
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
            sqlx::query(
                "UPDATE tasks SET status = 'pending', attempt = ?, run_at = ?, updated_at = ?, \
                 progress = NULL, progress_message = NULL, input_requests = NULL, input_responses = NULL, \
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE seq = ?",
            )
            .bind(i64::from(new_attempt))
            .bind(now)
            .bind(now)
            .bind(seq)
            .execute(&mut w.conn)
            .await
            .map_err(db_err)?;
            let mut ev = NewEvent::new(id, req.now, req.kind, TaskStatus::Pending);
            ev.attempt = Some(attempt);
            ev.message = Some(format!(
                "{} (worker {}); queued again",
                req.message,
                lease_owner.as_deref().unwrap_or("unknown")
            ));
            events.push(ev);
        }
    }
    let events = insert_events(w, events).await?;
    Ok(events)
}

async fn purge_finished_tx(w: &mut Writer, before: Timestamp, limit: u32) -> StoreResult<u64> {
    // Tasks of no workflow, oldest completion first; children of a task still running
    // stay (the parent may still want them).
    let ids: Vec<(i64, String)> = sqlx::query_as(
        "SELECT seq, id FROM tasks WHERE completed_at IS NOT NULL AND completed_at < ? \
         AND workflow_id IS NULL AND (parent_id IS NULL OR NOT EXISTS \
             (SELECT 1 FROM tasks p WHERE p.id = tasks.parent_id \
              AND p.status IN ('pending', 'running', 'input_required'))) \
         ORDER BY completed_at LIMIT ?",
    )
    .bind(before.as_millis())
    .bind(i64::from(limit))
    .fetch_all(&mut w.conn)
    .await
    .map_err(db_err)?;
    delete_tasks(w, &ids).await?;
    // A workflow and its steps are one decision: while the workflow can be retried its
    // completed steps keep their results (a retry must not run them again). It goes, with
    // every step, once it has been over for the retention period.
    let workflows: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM workflows WHERE completed_at IS NOT NULL AND completed_at < ? \
         AND status <> 'running' AND NOT EXISTS \
             (SELECT 1 FROM tasks t WHERE t.workflow_id = workflows.id AND t.completed_at IS NULL) \
         ORDER BY completed_at LIMIT ?",
    )
    .bind(before.as_millis())
    .bind(i64::from(crate::workflow_purge_batch(limit)))
    .fetch_all(&mut w.conn)
    .await
    .map_err(db_err)?;
    let mut deleted = ids.len() as u64;
    for id in workflows {
        let steps: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, id FROM tasks WHERE workflow_id = ?")
                .bind(&id)
                .fetch_all(&mut w.conn)
                .await
                .map_err(db_err)?;
        delete_tasks(w, &steps).await?;
        deleted += steps.len() as u64;
        sqlx::query("DELETE FROM workflows WHERE id = ?")
            .bind(&id)
            .execute(&mut w.conn)
            .await
            .map_err(db_err)?;
    }
    Ok(deleted)
}

/// Deletes tasks (by `seq`, `id`) and their events.
async fn delete_tasks(w: &mut Writer, ids: &[(i64, String)]) -> StoreResult<()> {
    for chunk in ids.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM task_events WHERE task_id IN (");
        let mut sep = qb.separated(", ");
        for (_, id) in chunk {
            sep.push_bind(id.clone());
        }
        qb.push(")");
        qb.build().execute(&mut w.conn).await.map_err(db_err)?;
        let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM tasks WHERE seq IN (");
        let mut sep = qb.separated(", ");
        for (seq, _) in chunk {
            sep.push_bind(*seq);
        }
        qb.push(")");
        qb.build().execute(&mut w.conn).await.map_err(db_err)?;
    }
    Ok(())
}

const WORKFLOW_COLUMNS: &str =
    "seq, id, name, owner, definition, status, steps, created_at, updated_at, completed_at";

fn workflow_from_row(r: &SqliteRow) -> StoreResult<Workflow> {
    let status: String = r.try_get("status").map_err(decode_err)?;
    let steps = match parse_json(Some(r.try_get("steps").map_err(decode_err)?))? {
        Some(Value::Object(m)) => m,
        _ => Default::default(),
    };
    Ok(Workflow {
        seq: r.try_get("seq").map_err(decode_err)?,
        id: r.try_get("id").map_err(decode_err)?,
        name: r.try_get("name").map_err(decode_err)?,
        owner: r.try_get("owner").map_err(decode_err)?,
        definition: parse_json(Some(r.try_get("definition").map_err(decode_err)?))?
            .unwrap_or(Value::Null),
        status: workflow_status_from(&status)?,
        steps,
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(decode_err)?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at").map_err(decode_err)?),
        completed_at: r
            .try_get::<Option<i64>, _>("completed_at")
            .map_err(decode_err)?
            .map(Timestamp::from_millis),
    })
}

async fn get_workflow_tx(w: &mut Writer, id: &str) -> StoreResult<Option<Workflow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(&mut w.conn)
    .await
    .map_err(db_err)?;
    row.as_ref().map(workflow_from_row).transpose()
}

async fn create_workflow_tx(
    w: &mut Writer,
    wf: &NewWorkflow,
    tasks: &[NewTask],
) -> StoreResult<(Workflow, Vec<CreateOutcome>, Vec<TaskEvent>)> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO workflows (id, name, owner, definition, status, steps, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 'running', '{}', ?, ?) RETURNING seq",
    )
    .bind(&wf.id)
    .bind(&wf.name)
    .bind(&wf.owner)
    .bind(wf.definition.to_string())
    .bind(wf.created_at.as_millis())
    .bind(wf.created_at.as_millis())
    .fetch_one(&mut w.conn)
    .await
    .map_err(db_err)?;
    let (outcomes, events) = create_tasks_tx(w, tasks).await?;
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

async fn update_workflow_tx(w: &mut Writer, u: &WorkflowUpdate) -> StoreResult<WorkflowUpdated> {
    let Some(current) = get_workflow_tx(w, &u.id).await? else {
        return Ok(WorkflowUpdated::NotFound);
    };
    if !u.expect.contains(&current.status) {
        return Ok(WorkflowUpdated::Refused(current));
    }
    let workflow = workflow_after(current, u);
    sqlx::query(
        "UPDATE workflows SET status = ?, steps = ?, updated_at = ?, completed_at = ? WHERE id = ?",
    )
    .bind(workflow.status.as_str())
    .bind(Value::Object(workflow.steps.clone()).to_string())
    .bind(workflow.updated_at.as_millis())
    .bind(workflow.completed_at.map(|t| t.as_millis()))
    .bind(&u.id)
    .execute(&mut w.conn)
    .await
    .map_err(db_err)?;
    let (outcomes, events) = create_tasks_tx(w, &u.tasks).await?;
    Ok(WorkflowUpdated::Applied {
        workflow,
        outcomes,
        events,
    })
}

async fn set_queue_paused_tx(
    w: &mut Writer,
    queue: &str,
    paused: bool,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO queues (name, paused, updated_at) VALUES (?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
    )
    .bind(queue)
    .bind(i64::from(paused))
    .bind(now.as_millis())
    .execute(&mut w.conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
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
        self.write(move |c| Box::pin(async move { create_tasks_tx(c, &tasks).await }))
            .await
    }

    async fn create_and_claim(
        &self,
        tasks: Vec<NewTask>,
        claim: Option<ClaimRequest<'_>>,
    ) -> StoreResult<CreatedAndClaimed> {
        let claim = claim.filter(|c| c.limit > 0).map(|c| {
            (
                c.owner.to_string(),
                c.limits.to_vec(),
                c.limit,
                c.now,
                c.lease_until,
                c.token,
            )
        });
        self.write(move |c| {
            Box::pin(async move {
                let (outcomes, mut events) = create_tasks_deferred(c, &tasks).await?;
                let mut claimed = Vec::new();
                if let Some((owner, limits, limit, now, lease_until, token)) = claim {
                    let req = ClaimRequest {
                        owner: &owner,
                        limit,
                        now,
                        lease_until,
                        token,
                        limits: &limits,
                    };
                    let (tasks, started) = claim_deferred(c, &req).await?;
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
        })
        .await
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn list_tasks(&self, q: &TaskQuery) -> StoreResult<Vec<Task>> {
        let mut qb =
            QueryBuilder::<Sqlite>::new(format!("SELECT {TASK_COLUMNS} FROM tasks WHERE 1 = 1"));
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
            qb.push(" AND parent_id = ").push_bind(parent.to_string());
        }
        if let Some(before) = q.before_seq {
            qb.push(" AND seq < ").push_bind(before);
        }
        qb.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = qb.build().fetch_all(&self.reader).await.map_err(db_err)?;
        rows.iter().map(task_from_row).collect()
    }

    async fn claim(&self, req: &ClaimRequest<'_>) -> StoreResult<(Vec<Task>, Vec<TaskEvent>)> {
        if req.limit == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let owner = req.owner.to_string();
        let limits = req.limits.to_vec();
        let (limit, now, lease_until, token) = (req.limit, req.now, req.lease_until, req.token);
        self.write(move |c| {
            Box::pin(async move {
                let req = ClaimRequest {
                    owner: &owner,
                    limit,
                    now,
                    lease_until,
                    token,
                    limits: &limits,
                };
                claim_tx(c, &req).await
            })
        })
        .await
    }

    async fn heartbeat(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<HeartbeatReply> {
        let owner = owner.to_string();
        self.write(move |c| {
            Box::pin(async move { heartbeat_tx(c, &owner, now, lease_until).await })
        })
        .await
    }

    async fn record_progress(&self, updates: Vec<ProgressUpdate>) -> StoreResult<Vec<TaskEvent>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |c| Box::pin(async move { record_progress_tx(c, &updates).await }))
            .await
    }

    async fn finish(&self, items: Vec<Finish>) -> StoreResult<Vec<FinishOutcome>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |c| Box::pin(async move { finish_tx(c, &items).await }))
            .await
    }

    async fn request_cancel(&self, id: TaskId, now: Timestamp) -> StoreResult<CancelOutcome> {
        self.write(move |c| Box::pin(request_cancel_tx(c, id, now)))
            .await
    }

    async fn retry_task(&self, id: TaskId, now: Timestamp) -> StoreResult<RetryOutcome> {
        self.write(move |c| Box::pin(retry_task_tx(c, id, now)))
            .await
    }

    async fn requeue_leases(&self, req: &Requeue<'_>) -> StoreResult<Vec<TaskEvent>> {
        let owner = match req.selector {
            LeaseSelector::Owner(o) => Some(o.to_string()),
            LeaseSelector::ExpiredBefore(_) => None,
        };
        let expired = match req.selector {
            LeaseSelector::ExpiredBefore(t) => Some(t),
            LeaseSelector::Owner(_) => None,
        };
        let message = req.message.to_string();
        let (now, count_attempt, kind) = (req.now, req.count_attempt, req.kind);
        self.write(move |c| {
            Box::pin(async move {
                let selector = match (&owner, expired) {
                    (Some(o), _) => LeaseSelector::Owner(o),
                    (None, Some(t)) => LeaseSelector::ExpiredBefore(t),
                    (None, None) => unreachable!("one selector is set"),
                };
                let req = Requeue {
                    selector,
                    now,
                    count_attempt,
                    kind,
                    message: &message,
                };
                requeue_leases_tx(c, &req).await
            })
        })
        .await
    }

    async fn purge_finished(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        self.write(move |c| Box::pin(purge_finished_tx(c, before, limit)))
            .await
    }

    async fn task_events(
        &self,
        id: TaskId,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<TaskEvent>> {
        let rows = sqlx::query(
            "SELECT seq, task_id, at, kind, status, attempt, progress, message, data FROM task_events \
             WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id.to_string())
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn queue_stats(&self, now: Timestamp) -> StoreResult<Vec<QueueStats>> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        let mut stats: std::collections::BTreeMap<String, QueueStats> = Default::default();
        let blank = |name: &str| QueueStats {
            name: name.to_string(),
            counts: TaskStatus::ALL
                .iter()
                .map(|s| (s.as_str().to_string(), 0))
                .collect(),
            ..Default::default()
        };
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT name, paused FROM queues")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        for (name, paused) in rows {
            stats
                .entry(name.clone())
                .or_insert_with(|| blank(&name))
                .paused = paused != 0;
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
            "SELECT queue, count(*) FROM tasks INDEXED BY tasks_finished \
             WHERE completed_at >= ? AND status = 'completed' GROUP BY queue",
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
            "SELECT queue, min(run_at) FROM tasks WHERE status = 'pending' AND run_at <= ? GROUP BY queue",
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
        let queue = queue.to_string();
        self.write(move |c| {
            Box::pin(async move { set_queue_paused_tx(c, &queue, paused, now).await })
        })
        .await
    }

    async fn recent_durations(&self, tool: &str, limit: u32) -> StoreResult<Vec<u64>> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT completed_at - started_at FROM tasks INDEXED BY tasks_tool_completed \
             WHERE status = 'completed' AND tool = ? AND started_at IS NOT NULL \
             ORDER BY completed_at DESC LIMIT ?",
        )
        .bind(tool)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(|d| d.max(0) as u64).collect())
    }

    async fn count_active(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasks WHERE status IN ('pending', 'running', 'input_required')",
        )
        .fetch_one(&self.reader)
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
        self.write(move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "UPDATE tasks SET checkpoint = ?, updated_at = ? WHERE id = ? AND lease_token = ? \
                     AND status IN ('running', 'input_required') AND lease_expires_at >= ?",
                )
                .bind(checkpoint.to_string())
                .bind(now.as_millis())
                .bind(id.to_string())
                .bind(token)
                .bind(now.as_millis())
                .execute(&mut c.conn)
                .await
                .map_err(db_err)?
                .rows_affected();
                Ok(n == 1)
            })
        })
        .await
    }

    async fn set_input_required(
        &self,
        id: TaskId,
        token: i64,
        requests: Value,
        now: Timestamp,
    ) -> StoreResult<Option<TaskEvent>> {
        self.write(move |c| {
            Box::pin(async move {
                let attempt: Option<i64> = sqlx::query_scalar(
                    "UPDATE tasks SET status = 'input_required', input_requests = ?, input_responses = NULL, \
                     updated_at = ? WHERE id = ? AND lease_token = ? AND status IN ('running', 'input_required') \
                     AND lease_expires_at >= ? RETURNING attempt",
                )
                .bind(requests.to_string())
                .bind(now.as_millis())
                .bind(id.to_string())
                .bind(token)
                .bind(now.as_millis())
                .fetch_optional(&mut c.conn)
                .await
                .map_err(db_err)?;
                let Some(attempt) = attempt else {
                    return Ok(None);
                };
                let mut ev = NewEvent::new(id, now, EventKind::InputRequired, TaskStatus::InputRequired);
                ev.attempt = Some(attempt as u32);
                ev.data = Some(requests);
                Ok(insert_events(c, vec![ev]).await?.pop())
            })
        })
        .await
    }

    async fn provide_input(
        &self,
        id: TaskId,
        responses: Value,
        now: Timestamp,
    ) -> StoreResult<InputOutcome> {
        self.write(move |c| {
            Box::pin(async move {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
                )))
                .bind(id.to_string())
                .fetch_optional(&mut c.conn)
                .await
                .map_err(db_err)?;
                let Some(mut task) = row.as_ref().map(task_from_row).transpose()? else {
                    return Ok(InputOutcome::NotFound);
                };
                if task.status != TaskStatus::InputRequired {
                    return Ok(InputOutcome::NotWaiting(task));
                }
                sqlx::query(
                    "UPDATE tasks SET status = 'running', input_requests = NULL, input_responses = ?, \
                     updated_at = ? WHERE id = ?",
                )
                .bind(responses.to_string())
                .bind(now.as_millis())
                .bind(id.to_string())
                .execute(&mut c.conn)
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
        })
        .await
    }

    async fn take_input(&self, id: TaskId, token: i64) -> StoreResult<Option<Value>> {
        self.write(move |c| {
            Box::pin(async move {
                let raw: Option<String> = sqlx::query_scalar(
                    "SELECT input_responses FROM tasks WHERE id = ? AND lease_token = ? \
                     AND input_responses IS NOT NULL",
                )
                .bind(id.to_string())
                .bind(token)
                .fetch_optional(&mut c.conn)
                .await
                .map_err(db_err)?;
                if raw.is_some() {
                    sqlx::query("UPDATE tasks SET input_responses = NULL WHERE id = ?")
                        .bind(id.to_string())
                        .execute(&mut c.conn)
                        .await
                        .map_err(db_err)?;
                }
                parse_json(raw)
            })
        })
        .await
    }

    async fn list_servers(&self) -> StoreResult<Vec<StoredServer>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT name, config, created_at, updated_at FROM servers ORDER BY name",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(name, config, created, updated)| {
                Ok(StoredServer {
                    name,
                    config: serde_json::from_str(&config).map_err(decode_err)?,
                    created_at: Timestamp::from_millis(created),
                    updated_at: Timestamp::from_millis(updated),
                })
            })
            .collect()
    }

    async fn put_server(&self, name: &str, config: Value, now: Timestamp) -> StoreResult<()> {
        let name = name.to_string();
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO servers (name, config, created_at, updated_at) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
                )
                .bind(&name)
                .bind(config.to_string())
                .bind(now.as_millis())
                .bind(now.as_millis())
                .execute(&mut c.conn)
                .await
                .map_err(db_err)?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_server(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        self.write(move |c| {
            Box::pin(async move {
                let n = sqlx::query("DELETE FROM servers WHERE name = ?")
                    .bind(&name)
                    .execute(&mut c.conn)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                Ok(n > 0)
            })
        })
        .await
    }

    async fn report_peer(&self, r: &PeerReport) -> StoreResult<()> {
        let r = r.clone();
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO peers (id, role, address, version, state, started_at, last_heartbeat, \
                     running, finished, throughput) VALUES (?, ?, ?, ?, 'live', ?, ?, ?, ?, ?) \
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
                .execute(&mut c.conn)
                .await
                .map_err(db_err)?;
                Ok(())
            })
        })
        .await
    }

    async fn list_peers(&self) -> StoreResult<Vec<Peer>> {
        let rows = sqlx::query(
            "SELECT id, role, address, version, state, started_at, last_heartbeat, running, \
             finished, throughput FROM peers ORDER BY id",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter().map(peer_from_row).collect()
    }

    async fn peer_stopped(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "UPDATE peers SET state = 'stopped', running = 0, last_heartbeat = ? WHERE id = ?",
                )
                .bind(now.as_millis())
                .bind(&id)
                .execute(&mut c.conn)
                .await
                .map_err(db_err)?
                .rows_affected();
                Ok(n > 0)
            })
        })
        .await
    }

    async fn mark_lost_peers(
        &self,
        before: Timestamp,
        forget_before: Timestamp,
        caller: &str,
    ) -> StoreResult<Vec<Peer>> {
        let caller = caller.to_string();
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query("DELETE FROM peers WHERE state <> 'live' AND last_heartbeat < ?")
                    .bind(forget_before.as_millis())
                    .execute(&mut c.conn)
                    .await
                    .map_err(db_err)?;
                let rows = sqlx::query(
                    "UPDATE peers SET state = 'lost' WHERE state = 'live' AND last_heartbeat < ? \
                     AND id <> ? RETURNING id, role, address, version, state, started_at, \
                     last_heartbeat, running, finished, throughput",
                )
                .bind(before.as_millis())
                .bind(&caller)
                .fetch_all(&mut c.conn)
                .await
                .map_err(db_err)?;
                rows.iter().map(peer_from_row).collect()
            })
        })
        .await
    }

    async fn create_workflow(
        &self,
        workflow: NewWorkflow,
        tasks: Vec<NewTask>,
    ) -> StoreResult<(Workflow, Vec<CreateOutcome>, Vec<TaskEvent>)> {
        self.write(move |c| Box::pin(async move { create_workflow_tx(c, &workflow, &tasks).await }))
            .await
    }

    async fn get_workflow(&self, id: &str) -> StoreResult<Option<Workflow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    async fn list_workflows(&self, q: &WorkflowQuery) -> StoreResult<Vec<Workflow>> {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE 1 = 1"
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
        let rows = qb.build().fetch_all(&self.reader).await.map_err(db_err)?;
        rows.iter().map(workflow_from_row).collect()
    }

    async fn update_workflow(&self, update: WorkflowUpdate) -> StoreResult<WorkflowUpdated> {
        self.write(move |c| Box::pin(async move { update_workflow_tx(c, &update).await }))
            .await
    }

    async fn try_singleton(&self, _name: &str) -> StoreResult<Option<Box<dyn SingletonGuard>>> {
        // One process owns an SQLite store (the data directory is locked): every role is
        // its own.
        Ok(Some(Box::new(Sole)))
    }

    async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
        self.reader.close().await;
    }
}

/// The singleton guard of a store with a single owner.
struct Sole;

#[async_trait]
impl SingletonGuard for Sole {
    async fn held(&self) -> bool {
        true
    }
}

fn peer_from_row(r: &SqliteRow) -> StoreResult<Peer> {
    let state: String = r.try_get("state").map_err(decode_err)?;
    Ok(Peer {
        id: r.try_get("id").map_err(decode_err)?,
        role: r.try_get("role").map_err(decode_err)?,
        address: r.try_get("address").map_err(decode_err)?,
        version: r.try_get("version").map_err(decode_err)?,
        state: PeerState::parse(&state)
            .ok_or_else(|| StoreError::Decode(format!("unknown peer state `{state}`")))?,
        started_at: Timestamp::from_millis(r.try_get("started_at").map_err(decode_err)?),
        last_heartbeat: Timestamp::from_millis(r.try_get("last_heartbeat").map_err(decode_err)?),
        running: r.try_get::<i64, _>("running").map_err(decode_err)?.max(0) as u64,
        finished: r.try_get::<i64, _>("finished").map_err(decode_err)?.max(0) as u64,
        throughput: r.try_get("throughput").map_err(decode_err)?,
    })
}
