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
//!
//! Layout: one module per topic holds SQLite's statements of that topic (its impl of the
//! `shared` topic's `…Sql` trait, then the statements only SQLite runs) and its impl of
//! the topic's `…Writes` trait on the writer connection; `writer` is the writer task,
//! `events` appends to the event log, `rows` and `error` map SQLite's values and result
//! codes. The `Store` impl below only routes each call: reads to the reader pool, writes
//! to the writer task, both on the `shared` Rust.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use baton_core::log::{LogKeep, LogLine, NewLogLine};
use baton_core::task::NewTask;
use baton_core::{Task, TaskEvent, TaskId, Timestamp};
use serde_json::Value;
use sqlx::SqliteConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::shared;
use crate::shared::dialect::Tx;
use crate::{
    AnalyticsQuery, AnalyticsRows, CancelOutcome, ClaimRequest, CreateOutcome, CreatedAndClaimed,
    Finish, FinishOutcome, HeartbeatReply, InputOutcome, NewWorkflow, Peer, PeerReport,
    ProgressUpdate, QueueStats, Requeue, RescheduleOutcome, RetryOutcome, ScheduleRun,
    SingletonGuard, Store, StoreError, StoreResult, StoredSchedule, StoredServer, TaskQuery,
    Workflow, WorkflowQuery, WorkflowUpdate, WorkflowUpdated,
};
use crate::{
    Archivable, ArchiveBatch, ArchiveCompletion, ArchiveEntry, ArchiveKind, ArchiveWritten,
    ArchivedItem,
};
use crate::{AttemptRecord, Delivery, DeliveryAttempt, NewOwnerlessEvent, StoredWebhook};

mod analytics;
mod claims;
mod error;
mod events;
mod input;
mod keys;
mod leases;
mod logs;
mod peers;
mod queues;
mod rows;
mod runs;
mod servers;
mod sessions;
mod tasks;
mod workflows;
mod writer;

use claims::OwnedClaim;
use error::open_error;
use leases::OwnedRequeue;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

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
    /// Who folds the WAL back into the database file.
    pub checkpoint: Checkpoint,
}

/// Who folds the write-ahead log back into the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checkpoint {
    /// A connection of its own, every quarter second, beside the writer (which never
    /// waits for it): commits keep a steady latency.
    #[default]
    Background,
    /// SQLite itself, inside the commit that crosses its threshold of 1,000 pages: that
    /// commit (and every write batched with it) waits for the checkpoint.
    Commit,
}

impl SqliteOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteOptions {
            path: path.into(),
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            checkpoint: Checkpoint::Background,
        }
    }
}

pub struct SqliteStore {
    /// Requests to the writer task, which owns the only write connection.
    writer: writer::Handle,
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
        let connect = match opts.checkpoint {
            Checkpoint::Background => connect.pragma("wal_autocheckpoint", "0"),
            Checkpoint::Commit => connect,
        };
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
        if opts.checkpoint == Checkpoint::Background {
            tokio::spawn(checkpointer(reader.clone(), opts.path.clone()));
        }
        Ok(SqliteStore {
            writer: writer::Handle::spawn(conn),
            reader,
            path: opts.path.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads go to the reader pool; writes run in the writer task's transaction (see the
/// `writer` module), on the `shared` logic.
#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        shared::dialect::ping(&self.reader).await
    }

    async fn create_tasks(
        &self,
        tasks: Vec<NewTask>,
    ) -> StoreResult<(Vec<CreateOutcome>, Vec<TaskEvent>)> {
        if tasks.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        self.writer
            .write(move |w| Box::pin(async move { shared::tasks::create_tasks(w, &tasks).await }))
            .await
    }

    async fn create_and_claim(
        &self,
        tasks: Vec<NewTask>,
        claim: Option<ClaimRequest<'_>>,
    ) -> StoreResult<CreatedAndClaimed> {
        let claim = claim.filter(|c| c.limit > 0).map(|c| OwnedClaim::new(&c));
        self.writer
            .write(move |w| {
                Box::pin(async move {
                    let req = claim.as_ref().map(OwnedClaim::request);
                    shared::claims::create_and_claim(w, &tasks, req.as_ref()).await
                })
            })
            .await
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
        shared::tasks::get_task(&self.reader, id).await
    }

    async fn list_tasks(&self, q: &TaskQuery) -> StoreResult<Vec<Task>> {
        shared::tasks::list_tasks(&self.reader, q).await
    }

    async fn claim(&self, req: &ClaimRequest<'_>) -> StoreResult<(Vec<Task>, Vec<TaskEvent>)> {
        if req.limit == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let req = OwnedClaim::new(req);
        self.writer
            .write(move |w| Box::pin(async move { shared::claims::claim(w, &req.request()).await }))
            .await
    }

    async fn heartbeat(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<HeartbeatReply> {
        let owner = owner.to_string();
        self.writer
            .write(move |w| {
                Box::pin(async move { leases::heartbeat(w, &owner, now, lease_until).await })
            })
            .await
    }

    async fn record_progress(&self, updates: Vec<ProgressUpdate>) -> StoreResult<Vec<TaskEvent>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::runs::record_progress(w, &updates).await })
            })
            .await
    }

    async fn finish(&self, items: Vec<Finish>) -> StoreResult<Vec<FinishOutcome>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.writer
            .write(move |w| Box::pin(async move { shared::runs::finish(w, &items).await }))
            .await
    }

    async fn request_cancel(&self, id: TaskId, now: Timestamp) -> StoreResult<CancelOutcome> {
        self.writer
            .write(move |w| Box::pin(shared::tasks::request_cancel(w, id, now)))
            .await
    }

    async fn reschedule(
        &self,
        id: TaskId,
        priority: Option<i32>,
        run_at: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<RescheduleOutcome> {
        self.writer
            .write(move |w| Box::pin(shared::tasks::reschedule(w, id, priority, run_at, now)))
            .await
    }

    async fn retry_task(&self, id: TaskId, now: Timestamp) -> StoreResult<RetryOutcome> {
        self.writer
            .write(move |w| Box::pin(shared::tasks::retry_task(w, id, now)))
            .await
    }

    async fn requeue_leases(&self, req: &Requeue<'_>) -> StoreResult<Vec<TaskEvent>> {
        let req = OwnedRequeue::new(req);
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::leases::requeue_leases(w, &req.request()).await })
            })
            .await
    }

    async fn purge_finished(
        &self,
        before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        self.writer
            .write(move |w| Box::pin(tasks::purge_finished(w, before, now, limit)))
            .await
    }

    async fn archivable(
        &self,
        before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Archivable>> {
        shared::archive::archivable(&self.reader, before, now, limit).await
    }

    async fn begin_archive(&self, batches: &[ArchiveBatch]) -> StoreResult<Vec<ArchiveBatch>> {
        let batches = batches.to_vec();
        self.writer
            .write(move |w| Box::pin(async move { shared::archive::begin(w, &batches).await }))
            .await
    }

    async fn archive_batches_writing(&self) -> StoreResult<Vec<ArchiveBatch>> {
        shared::archive::writing(&self.reader).await
    }

    async fn archive_contents(&self, batch: &ArchiveBatch) -> StoreResult<Vec<ArchivedItem>> {
        shared::archive::contents(&self.reader, batch).await
    }

    async fn complete_archive(
        &self,
        batch_id: &str,
        written: &[ArchiveWritten],
        now: Timestamp,
    ) -> StoreResult<ArchiveCompletion> {
        let (batch_id, written) = (batch_id.to_string(), written.to_vec());
        self.writer
            .write(move |w| {
                Box::pin(
                    async move { shared::archive::complete(w, &batch_id, &written, now).await },
                )
            })
            .await
    }

    async fn archived(&self, kind: ArchiveKind, id: &str) -> StoreResult<Option<ArchiveEntry>> {
        shared::archive::archived(&self.reader, kind, id).await
    }

    async fn append_logs(
        &self,
        lines: Vec<NewLogLine>,
        keep: LogKeep,
    ) -> StoreResult<Vec<LogLine>> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::logs::append_logs(w, &lines, keep).await })
            })
            .await
    }

    async fn task_logs(&self, id: TaskId, after_seq: i64, limit: u32) -> StoreResult<Vec<LogLine>> {
        shared::logs::task_logs(&self.reader, id, after_seq, limit).await
    }

    async fn task_events(
        &self,
        id: TaskId,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<TaskEvent>> {
        shared::tasks::task_events(&self.reader, id, after_seq, limit).await
    }

    async fn analytics(&self, q: &AnalyticsQuery) -> StoreResult<AnalyticsRows> {
        shared::analytics::analytics(&self.reader, q).await
    }

    async fn insert_schedule(&self, s: &StoredSchedule) -> StoreResult<bool> {
        let s = s.clone();
        self.writer
            .write(move |w| Box::pin(async move { shared::schedules::insert(w, &s).await }))
            .await
    }

    async fn update_schedule(&self, s: &StoredSchedule) -> StoreResult<bool> {
        let s = s.clone();
        self.writer
            .write(move |w| Box::pin(async move { shared::schedules::update(w, &s).await }))
            .await
    }

    async fn get_schedule(&self, owner: &str, name: &str) -> StoreResult<Option<StoredSchedule>> {
        shared::schedules::get(&self.reader, owner, name).await
    }

    async fn list_schedules(&self, owner: Option<&str>) -> StoreResult<Vec<StoredSchedule>> {
        shared::schedules::list(&self.reader, owner).await
    }

    async fn delete_schedule(&self, owner: &str, name: &str) -> StoreResult<bool> {
        let (owner, name) = (owner.to_string(), name.to_string());
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::schedules::delete(w, &owner, &name).await })
            })
            .await
    }

    async fn due_schedules(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<StoredSchedule>> {
        shared::schedules::due(&self.reader, now, limit).await
    }

    async fn next_schedule_at(&self) -> StoreResult<Option<Timestamp>> {
        shared::schedules::next_at(&self.reader).await
    }

    async fn advance_schedule(
        &self,
        owner: &str,
        name: &str,
        from: Timestamp,
        to: Timestamp,
        fired: Option<ScheduleRun>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (owner, name) = (owner.to_string(), name.to_string());
        self.writer
            .write(move |w| {
                Box::pin(async move {
                    shared::schedules::advance(w, &owner, &name, from, to, fired, now).await
                })
            })
            .await
    }

    async fn schedule_runs(
        &self,
        owner: &str,
        name: &str,
        limit: u32,
    ) -> StoreResult<Vec<ScheduleRun>> {
        shared::schedules::runs(&self.reader, owner, name, limit).await
    }

    async fn insert_webhook(&self, wh: &StoredWebhook) -> StoreResult<()> {
        let wh = wh.clone();
        self.writer
            .write(move |w| Box::pin(async move { shared::webhooks::insert(w, &wh).await }))
            .await
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<StoredWebhook>> {
        shared::webhooks::get(&self.reader, id).await
    }

    async fn list_webhooks(&self, owner: Option<&str>) -> StoreResult<Vec<StoredWebhook>> {
        shared::webhooks::list(&self.reader, owner).await
    }

    async fn delete_webhook(&self, owner: &str, id: &str) -> StoreResult<bool> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.writer
            .write(move |w| Box::pin(async move { shared::webhooks::delete(w, &owner, &id).await }))
            .await
    }

    async fn rotate_webhook_secret(
        &self,
        owner: &str,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (owner, id, secret) = (owner.to_string(), id.to_string(), secret.to_string());
        self.writer
            .write(move |w| {
                Box::pin(async move {
                    shared::webhooks::rotate(w, &owner, &id, &secret, previous_until, now).await
                })
            })
            .await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        // Asked every half second by every delivery loop: the writer is taken only when
        // something is due.
        if !shared::webhooks::any_due(&self.reader, now).await? {
            return Ok(Vec::new());
        }
        self.writer
            .write(move |w| Box::pin(shared::webhooks::claim(w, now, lease_until, limit)))
            .await
    }

    async fn record_delivery_attempt(&self, r: &AttemptRecord) -> StoreResult<bool> {
        let r = r.clone();
        self.writer
            .write(move |w| Box::pin(async move { shared::webhooks::record(w, &r).await }))
            .await
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        shared::webhooks::get_delivery(&self.reader, id).await
    }

    async fn list_deliveries(
        &self,
        webhook_id: &str,
        before: Option<(Timestamp, String)>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        shared::webhooks::list_deliveries(&self.reader, webhook_id, before, limit).await
    }

    async fn delivery_attempts(&self, delivery_id: &str) -> StoreResult<Vec<DeliveryAttempt>> {
        shared::webhooks::attempts(&self.reader, delivery_id).await
    }

    async fn redeliver(
        &self,
        webhook_id: &str,
        delivery_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (webhook_id, delivery_id) = (webhook_id.to_string(), delivery_id.to_string());
        self.writer
            .write(move |w| {
                Box::pin(async move {
                    shared::webhooks::redeliver(w, &webhook_id, &delivery_id, now).await
                })
            })
            .await
    }

    async fn enqueue_ownerless_event(&self, e: &NewOwnerlessEvent) -> StoreResult<u64> {
        let e = e.clone();
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::webhooks::enqueue_ownerless(w, &e).await })
            })
            .await
    }

    async fn record_server_health(
        &self,
        name: &str,
        up: bool,
        event: &NewOwnerlessEvent,
    ) -> StoreResult<u64> {
        let (name, e) = (name.to_string(), event.clone());
        self.writer
            .write(move |w| {
                Box::pin(
                    async move { shared::webhooks::record_server_health(w, &name, up, &e).await },
                )
            })
            .await
    }

    async fn purge_deliveries(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        self.writer
            .write(move |w| Box::pin(shared::webhooks::purge(w, before, limit)))
            .await
    }

    async fn fold_analytics(&self, upto: Timestamp, max_minutes: u32) -> StoreResult<Timestamp> {
        self.writer
            .write(move |w| Box::pin(shared::analytics::fold(w, upto, max_minutes)))
            .await
    }

    async fn queue_stats(
        &self,
        now: Timestamp,
        owner: Option<&str>,
    ) -> StoreResult<Vec<QueueStats>> {
        shared::queues::queue_stats(&self.reader, now, owner).await
    }

    async fn set_queue_paused(
        &self,
        owner: &str,
        queue: &str,
        paused: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (owner, queue) = (owner.to_string(), queue.to_string());
        self.writer
            .write(move |w| {
                Box::pin(async move {
                    shared::queues::set_queue_paused(w.exec(), &owner, &queue, paused, now).await
                })
            })
            .await
    }

    async fn recent_durations(&self, tool: &str, limit: u32) -> StoreResult<Vec<u64>> {
        shared::queues::recent_durations(&self.reader, tool, limit).await
    }

    async fn count_active(&self) -> StoreResult<u64> {
        shared::queues::count_active(&self.reader).await
    }

    async fn save_checkpoint(
        &self,
        id: TaskId,
        token: i64,
        checkpoint: Value,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.writer
            .write(move |w| {
                Box::pin(async move {
                    shared::runs::save_checkpoint(w.exec(), id, token, &checkpoint, now).await
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
        self.writer
            .write(move |w| {
                Box::pin(async move {
                    shared::input::set_input_required(w, id, token, &requests, now).await
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
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::input::provide_input(w, id, &responses, now).await })
            })
            .await
    }

    async fn take_input(&self, id: TaskId, token: i64) -> StoreResult<Option<Value>> {
        self.writer
            .write(move |w| Box::pin(input::take_input(w, id, token)))
            .await
    }

    async fn put_key(&self, key: crate::StoredKey) -> StoreResult<()> {
        self.writer
            .write(move |w| Box::pin(async move { shared::keys::put_key(w.exec(), &key).await }))
            .await
    }

    async fn get_key(&self, key_id: &str) -> StoreResult<Option<crate::StoredKey>> {
        shared::keys::get_key(&self.reader, key_id).await
    }

    async fn list_keys(&self, since: Option<Timestamp>) -> StoreResult<Vec<crate::StoredKey>> {
        shared::keys::list_keys(&self.reader, since).await
    }

    async fn revoke_key(&self, key_id: &str, now: Timestamp) -> StoreResult<bool> {
        let key_id = key_id.to_string();
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::keys::revoke_key(w.exec(), &key_id, now).await })
            })
            .await
    }

    async fn rotate_key(
        &self,
        key_id: &str,
        new_hash: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (key_id, new_hash) = (key_id.to_string(), new_hash.to_string());
        self.writer
            .write(move |w| {
                Box::pin(async move {
                    shared::keys::rotate_key(w.exec(), &key_id, &new_hash, previous_until, now)
                        .await
                })
            })
            .await
    }

    async fn append_audit(&self, entries: Vec<crate::NewAuditEntry>) -> StoreResult<()> {
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::keys::append_audit(w.exec(), &entries).await })
            })
            .await
    }

    async fn list_audit(&self, query: &crate::AuditQuery) -> StoreResult<Vec<crate::AuditEntry>> {
        shared::keys::list_audit(&self.reader, query).await
    }

    async fn purge_audit(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::keys::purge_audit(w.exec(), before, limit).await })
            })
            .await
    }

    async fn settle_followers(
        &self,
        leader: TaskId,
        now: Timestamp,
    ) -> StoreResult<Vec<TaskEvent>> {
        self.writer
            .write(move |w| Box::pin(shared::cache::settle(w, leader, now)))
            .await
    }

    async fn settle_ended_followed(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<TaskEvent>> {
        self.writer
            .write(move |w| Box::pin(shared::cache::settle_ended(w, now, limit)))
            .await
    }

    async fn invalidate_cache(
        &self,
        tool: Option<&str>,
        now: Timestamp,
        since: Timestamp,
    ) -> StoreResult<u64> {
        let tool = tool.map(str::to_string);
        self.writer
            .write(move |w| {
                Box::pin(
                    async move { shared::cache::invalidate(w, tool.as_deref(), now, since).await },
                )
            })
            .await
    }

    async fn list_servers(&self) -> StoreResult<Vec<StoredServer>> {
        shared::servers::list_servers(&self.reader).await
    }

    async fn put_server(&self, name: &str, config: Value, now: Timestamp) -> StoreResult<()> {
        let name = name.to_string();
        self.writer
            .write(move |w| {
                Box::pin(
                    async move { shared::servers::put_server(w.exec(), &name, &config, now).await },
                )
            })
            .await
    }

    async fn delete_server(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::servers::delete_server(w.exec(), &name).await })
            })
            .await
    }

    async fn shared_secret(
        &self,
        name: &str,
        candidate: &str,
        now: Timestamp,
    ) -> StoreResult<String> {
        let (n, c) = (name.to_string(), candidate.to_string());
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::sessions::put_secret(w.exec(), &n, &c, now).await })
            })
            .await?;
        shared::sessions::get_secret(&self.reader, name).await
    }

    async fn end_session(&self, id_hash: &str, now: Timestamp) -> StoreResult<()> {
        let h = id_hash.to_string();
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::sessions::end_session(w.exec(), &h, now).await })
            })
            .await
    }

    async fn ended_sessions(&self, since: Timestamp) -> StoreResult<Vec<(String, Timestamp)>> {
        shared::sessions::ended_sessions(&self.reader, since).await
    }

    async fn forget_ended_sessions(&self, before: Timestamp) -> StoreResult<u64> {
        self.writer
            .write(move |w| {
                Box::pin(
                    async move { shared::sessions::forget_ended_sessions(w.exec(), before).await },
                )
            })
            .await
    }

    async fn report_peer(&self, r: &PeerReport) -> StoreResult<bool> {
        let r = r.clone();
        self.writer
            .write(move |w| Box::pin(async move { shared::peers::report_peer(w.exec(), &r).await }))
            .await
    }

    async fn list_peers(&self) -> StoreResult<Vec<Peer>> {
        shared::peers::list_peers(&self.reader).await
    }

    async fn rate_buckets(&self) -> StoreResult<Vec<crate::RateBucket>> {
        shared::claims::rate_buckets(&self.reader).await
    }

    async fn drain_peer(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.writer
            .write(move |w| Box::pin(async move { shared::peers::drain_peer(w.exec(), &id).await }))
            .await
    }

    async fn peer_stopped(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let id = id.to_string();
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::peers::peer_stopped(w.exec(), &id, now).await })
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
        self.writer
            .write(move |w| {
                Box::pin(async move {
                    shared::peers::mark_lost_peers(w, before, forget_before, &caller).await
                })
            })
            .await
    }

    async fn create_workflow(
        &self,
        workflow: NewWorkflow,
        tasks: Vec<NewTask>,
    ) -> StoreResult<(Workflow, Vec<CreateOutcome>, Vec<TaskEvent>)> {
        self.writer
            .write(move |w| {
                Box::pin(
                    async move { shared::workflows::create_workflow(w, &workflow, &tasks).await },
                )
            })
            .await
    }

    async fn get_workflow(&self, id: &str) -> StoreResult<Option<Workflow>> {
        shared::workflows::get_workflow(&self.reader, id).await
    }

    async fn list_workflows(&self, q: &WorkflowQuery) -> StoreResult<Vec<Workflow>> {
        shared::workflows::list_workflows(&self.reader, q).await
    }

    async fn update_workflow(&self, update: WorkflowUpdate) -> StoreResult<WorkflowUpdated> {
        self.writer
            .write(move |w| {
                Box::pin(async move { shared::workflows::update_workflow(w, &update).await })
            })
            .await
    }

    async fn try_singleton(&self, _name: &str) -> StoreResult<Option<Box<dyn SingletonGuard>>> {
        // One process owns an SQLite store (the data directory is locked): every role is
        // its own.
        Ok(Some(Box::new(Sole)))
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// A WAL this large is folded back even if it must wait for readers.
const WAL_LIMIT: u64 = 64 * 1024 * 1024;

/// Folds the WAL into the database file from a reader connection, beside the writer: a
/// passive checkpoint never waits for the writer or for readers, and the writer never
/// waits for it (SQLite's own checkpoint would run inside a commit). Should readers keep
/// the WAL from being reset for long, a WAL over [`WAL_LIMIT`] is truncated, which waits
/// for them.
async fn checkpointer(pool: SqlitePool, path: PathBuf) {
    let mut wal = path.into_os_string();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        let big = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT);
        let sql = if big {
            "PRAGMA wal_checkpoint(TRUNCATE)"
        } else {
            "PRAGMA wal_checkpoint(PASSIVE)"
        };
        if let Err(e) = sqlx::query(sql).execute(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::debug!(error = %e, "WAL checkpoint failed; trying again shortly");
        }
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
