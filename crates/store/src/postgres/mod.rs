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
//!
//! Layout: one module per topic holds PostgreSQL's statements of that topic (its impl of
//! the `shared` topic's `…Sql` trait, then the statements only PostgreSQL runs) and its
//! impl of the topic's `…Writes` trait on a transaction's `PgConnection`; `connect` sets
//! up connections, schema and migrations, `events` appends to the event log, `listen` is
//! the change feed, `singletons` the singleton locks, `rows` and `error` map PostgreSQL's
//! values and errors (`error` also runs conflicting transactions again). The `Store` impl
//! below only routes each call, on the `shared` Rust.

use std::time::Duration;

use async_trait::async_trait;
use baton_core::log::{LogKeep, LogLine, NewLogLine};
use baton_core::task::NewTask;
use baton_core::{Task, TaskEvent, TaskId, Timestamp};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::shared;
use crate::{
    AnalyticsQuery, AnalyticsRows, CancelOutcome, ClaimRequest, CreateOutcome, CreatedAndClaimed,
    Finish, FinishOutcome, HeartbeatReply, InputOutcome, NewWorkflow, Peer, PeerReport,
    ProgressUpdate, QueueStats, RemoteChange, Requeue, RescheduleOutcome, RetryOutcome,
    ScheduleRun, SingletonGuard, Store, StoreResult, StoredSchedule, StoredServer, TaskQuery,
    Workflow, WorkflowQuery, WorkflowUpdate, WorkflowUpdated,
};
use crate::{
    Archivable, ArchiveBatch, ArchiveCompletion, ArchiveEntry, ArchiveKind, ArchiveWritten,
    ArchivedItem,
};
use crate::{AttemptRecord, Delivery, DeliveryAttempt, NewOwnerlessEvent, StoredWebhook};

mod analytics;
mod claims;
mod connect;
mod error;
mod events;
mod input;
mod keys;
mod leases;
mod listen;
mod logs;
mod peers;
mod queues;
mod rows;
mod runs;
mod servers;
mod sessions;
mod singletons;
mod tasks;
mod workflows;

use connect::{check_schema_name, connect_options, prepare_schema};
use error::{connect_error, db_err, transaction};
use listen::{Feed, ORIGIN_SETTING, listen_loop};

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
    /// Fails with [`StoreError::Unavailable`](crate::StoreError::Unavailable) when the
    /// server cannot be reached.
    pub async fn connect(url: &str, opts: &PostgresOptions) -> StoreResult<Self> {
        let (connect, target) = connect_options(url, opts.schema.as_deref())?;
        let origin = format!("{:016x}", rand::random::<u64>());
        // Every pooled connection names the origin, which the NOTIFY of its transactions
        // carries (see the `listen` module).
        let pooled = connect.clone().options([(ORIGIN_SETTING, origin.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(pooled)
            .await
            .map_err(|e| connect_error(&target, e))?;
        if let Err(e) = prepare_schema(&pool, opts.schema.as_deref()).await {
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
}

/// Drops a schema and everything in it (benchmarks clean up with it).
pub async fn drop_schema(url: &str, schema: &str) -> StoreResult<()> {
    use sqlx::Connection;
    check_schema_name(schema)?;
    let (connect, target) = connect_options(url, None)?;
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

/// Each call is one transaction on a pooled connection (`transaction!`, run again on
/// conflicts) over the `shared` logic, or one statement.
#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        shared::dialect::ping(&self.pool).await
    }

    async fn create_tasks(
        &self,
        tasks: Vec<NewTask>,
    ) -> StoreResult<(Vec<CreateOutcome>, Vec<TaskEvent>)> {
        if tasks.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        transaction!(self.pool, |c| shared::tasks::create_tasks(c, &tasks))
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
        transaction!(self.pool, |c| shared::claims::create_and_claim(
            c,
            &tasks,
            claim.as_ref()
        ))
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
        shared::tasks::get_task(&self.pool, id).await
    }

    async fn list_tasks(&self, q: &TaskQuery) -> StoreResult<Vec<Task>> {
        shared::tasks::list_tasks(&self.pool, q).await
    }

    async fn claim(&self, req: &ClaimRequest<'_>) -> StoreResult<(Vec<Task>, Vec<TaskEvent>)> {
        if req.limit == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        transaction!(self.pool, |c| shared::claims::claim(c, req))
    }

    async fn heartbeat(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<HeartbeatReply> {
        leases::heartbeat(&self.pool, owner, now, lease_until).await
    }

    async fn record_progress(&self, updates: Vec<ProgressUpdate>) -> StoreResult<Vec<TaskEvent>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        transaction!(self.pool, |c| shared::runs::record_progress(c, &updates))
    }

    async fn finish(&self, items: Vec<Finish>) -> StoreResult<Vec<FinishOutcome>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        transaction!(self.pool, |c| shared::runs::finish(c, &items))
    }

    async fn request_cancel(&self, id: TaskId, now: Timestamp) -> StoreResult<CancelOutcome> {
        transaction!(self.pool, |c| shared::tasks::request_cancel(c, id, now))
    }

    async fn reschedule(
        &self,
        id: TaskId,
        priority: Option<i32>,
        run_at: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<RescheduleOutcome> {
        transaction!(self.pool, |c| shared::tasks::reschedule(
            c, id, priority, run_at, now
        ))
    }

    async fn retry_task(&self, id: TaskId, now: Timestamp) -> StoreResult<RetryOutcome> {
        transaction!(self.pool, |c| shared::tasks::retry_task(c, id, now))
    }

    async fn requeue_leases(&self, req: &Requeue<'_>) -> StoreResult<Vec<TaskEvent>> {
        transaction!(self.pool, |c| shared::leases::requeue_leases(c, req))
    }

    async fn purge_finished(
        &self,
        before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        tasks::purge_finished(&self.pool, before, now, limit).await
    }

    async fn archivable(
        &self,
        before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Archivable>> {
        shared::archive::archivable(&self.pool, before, now, limit).await
    }

    async fn begin_archive(&self, batches: &[ArchiveBatch]) -> StoreResult<Vec<ArchiveBatch>> {
        transaction!(self.pool, |c| shared::archive::begin(c, batches))
    }

    async fn archive_batches_writing(&self) -> StoreResult<Vec<ArchiveBatch>> {
        shared::archive::writing(&self.pool).await
    }

    async fn archive_contents(&self, batch: &ArchiveBatch) -> StoreResult<Vec<ArchivedItem>> {
        shared::archive::contents(&self.pool, batch).await
    }

    async fn complete_archive(
        &self,
        batch_id: &str,
        written: &[ArchiveWritten],
        now: Timestamp,
    ) -> StoreResult<ArchiveCompletion> {
        transaction!(self.pool, |c| shared::archive::complete(
            c, batch_id, written, now
        ))
    }

    async fn archived(&self, kind: ArchiveKind, id: &str) -> StoreResult<Option<ArchiveEntry>> {
        shared::archive::archived(&self.pool, kind, id).await
    }

    async fn append_logs(
        &self,
        lines: Vec<NewLogLine>,
        keep: LogKeep,
    ) -> StoreResult<Vec<LogLine>> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        transaction!(self.pool, |c| shared::logs::append_logs(c, &lines, keep))
    }

    async fn task_logs(&self, id: TaskId, after_seq: i64, limit: u32) -> StoreResult<Vec<LogLine>> {
        shared::logs::task_logs(&self.pool, id, after_seq, limit).await
    }

    async fn task_events(
        &self,
        id: TaskId,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<TaskEvent>> {
        shared::tasks::task_events(&self.pool, id, after_seq, limit).await
    }

    async fn analytics(&self, q: &AnalyticsQuery) -> StoreResult<AnalyticsRows> {
        shared::analytics::analytics(&self.pool, q).await
    }

    async fn insert_schedule(&self, s: &StoredSchedule) -> StoreResult<bool> {
        transaction!(self.pool, |c| shared::schedules::insert(c, s))
    }

    async fn update_schedule(&self, s: &StoredSchedule) -> StoreResult<bool> {
        transaction!(self.pool, |c| shared::schedules::update(c, s))
    }

    async fn get_schedule(&self, owner: &str, name: &str) -> StoreResult<Option<StoredSchedule>> {
        shared::schedules::get(&self.pool, owner, name).await
    }

    async fn list_schedules(&self, owner: Option<&str>) -> StoreResult<Vec<StoredSchedule>> {
        shared::schedules::list(&self.pool, owner).await
    }

    async fn delete_schedule(&self, owner: &str, name: &str) -> StoreResult<bool> {
        transaction!(self.pool, |c| shared::schedules::delete(c, owner, name))
    }

    async fn due_schedules(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<StoredSchedule>> {
        shared::schedules::due(&self.pool, now, limit).await
    }

    async fn next_schedule_at(&self) -> StoreResult<Option<Timestamp>> {
        shared::schedules::next_at(&self.pool).await
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
        transaction!(self.pool, |c| shared::schedules::advance(
            c, owner, name, from, to, fired, now
        ))
    }

    async fn schedule_runs(
        &self,
        owner: &str,
        name: &str,
        limit: u32,
    ) -> StoreResult<Vec<ScheduleRun>> {
        shared::schedules::runs(&self.pool, owner, name, limit).await
    }

    async fn insert_webhook(&self, w: &StoredWebhook) -> StoreResult<()> {
        transaction!(self.pool, |c| shared::webhooks::insert(c, w))
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<StoredWebhook>> {
        shared::webhooks::get(&self.pool, id).await
    }

    async fn list_webhooks(&self, owner: Option<&str>) -> StoreResult<Vec<StoredWebhook>> {
        shared::webhooks::list(&self.pool, owner).await
    }

    async fn delete_webhook(&self, owner: &str, id: &str) -> StoreResult<bool> {
        transaction!(self.pool, |c| shared::webhooks::delete(c, owner, id))
    }

    async fn rotate_webhook_secret(
        &self,
        owner: &str,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        transaction!(self.pool, |c| shared::webhooks::rotate(
            c,
            owner,
            id,
            secret,
            previous_until,
            now
        ))
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        transaction!(self.pool, |c| shared::webhooks::claim(
            c,
            now,
            lease_until,
            limit
        ))
    }

    async fn record_delivery_attempt(&self, r: &AttemptRecord) -> StoreResult<bool> {
        transaction!(self.pool, |c| shared::webhooks::record(c, r))
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        shared::webhooks::get_delivery(&self.pool, id).await
    }

    async fn list_deliveries(
        &self,
        webhook_id: &str,
        before: Option<(Timestamp, String)>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        shared::webhooks::list_deliveries(&self.pool, webhook_id, before, limit).await
    }

    async fn delivery_attempts(&self, delivery_id: &str) -> StoreResult<Vec<DeliveryAttempt>> {
        shared::webhooks::attempts(&self.pool, delivery_id).await
    }

    async fn redeliver(
        &self,
        webhook_id: &str,
        delivery_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        transaction!(self.pool, |c| shared::webhooks::redeliver(
            c,
            webhook_id,
            delivery_id,
            now
        ))
    }

    async fn enqueue_ownerless_event(&self, e: &NewOwnerlessEvent) -> StoreResult<u64> {
        transaction!(self.pool, |c| shared::webhooks::enqueue_ownerless(c, e))
    }

    async fn record_server_health(
        &self,
        name: &str,
        up: bool,
        event: &NewOwnerlessEvent,
    ) -> StoreResult<u64> {
        transaction!(self.pool, |c| shared::webhooks::record_server_health(
            c, name, up, event
        ))
    }

    async fn purge_deliveries(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        transaction!(self.pool, |c| shared::webhooks::purge(c, before, limit))
    }

    async fn fold_analytics(&self, upto: Timestamp, max_minutes: u32) -> StoreResult<Timestamp> {
        transaction!(self.pool, |c| shared::analytics::fold(c, upto, max_minutes))
    }

    async fn queue_stats(
        &self,
        now: Timestamp,
        owner: Option<&str>,
    ) -> StoreResult<Vec<QueueStats>> {
        shared::queues::queue_stats(&self.pool, now, owner).await
    }

    async fn set_queue_paused(
        &self,
        owner: &str,
        queue: &str,
        paused: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        shared::queues::set_queue_paused(&self.pool, owner, queue, paused, now).await
    }

    async fn recent_durations(&self, tool: &str, limit: u32) -> StoreResult<Vec<u64>> {
        shared::queues::recent_durations(&self.pool, tool, limit).await
    }

    async fn count_active(&self) -> StoreResult<u64> {
        shared::queues::count_active(&self.pool).await
    }

    async fn save_checkpoint(
        &self,
        id: TaskId,
        token: i64,
        checkpoint: Value,
        now: Timestamp,
    ) -> StoreResult<bool> {
        shared::runs::save_checkpoint(&self.pool, id, token, &checkpoint, now).await
    }

    async fn set_input_required(
        &self,
        id: TaskId,
        token: i64,
        requests: Value,
        now: Timestamp,
    ) -> StoreResult<Option<TaskEvent>> {
        transaction!(self.pool, |c| shared::input::set_input_required(
            c, id, token, &requests, now
        ))
    }

    async fn provide_input(
        &self,
        id: TaskId,
        responses: Value,
        now: Timestamp,
    ) -> StoreResult<InputOutcome> {
        transaction!(self.pool, |c| shared::input::provide_input(
            c, id, &responses, now
        ))
    }

    async fn take_input(&self, id: TaskId, token: i64) -> StoreResult<Option<Value>> {
        input::take_input(&self.pool, id, token).await
    }

    async fn put_key(&self, key: crate::StoredKey) -> StoreResult<()> {
        shared::keys::put_key(&self.pool, &key).await
    }

    async fn get_key(&self, key_id: &str) -> StoreResult<Option<crate::StoredKey>> {
        shared::keys::get_key(&self.pool, key_id).await
    }

    async fn list_keys(&self, since: Option<Timestamp>) -> StoreResult<Vec<crate::StoredKey>> {
        shared::keys::list_keys(&self.pool, since).await
    }

    async fn revoke_key(&self, key_id: &str, now: Timestamp) -> StoreResult<bool> {
        shared::keys::revoke_key(&self.pool, key_id, now).await
    }

    async fn rotate_key(
        &self,
        key_id: &str,
        new_hash: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        shared::keys::rotate_key(&self.pool, key_id, new_hash, previous_until, now).await
    }

    async fn append_audit(&self, entries: Vec<crate::NewAuditEntry>) -> StoreResult<()> {
        shared::keys::append_audit(&self.pool, &entries).await
    }

    async fn list_audit(&self, query: &crate::AuditQuery) -> StoreResult<Vec<crate::AuditEntry>> {
        shared::keys::list_audit(&self.pool, query).await
    }

    async fn purge_audit(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        shared::keys::purge_audit(&self.pool, before, limit).await
    }

    async fn settle_followers(
        &self,
        leader: TaskId,
        now: Timestamp,
    ) -> StoreResult<Vec<TaskEvent>> {
        transaction!(self.pool, |c| shared::cache::settle(c, leader, now))
    }

    async fn settle_ended_followed(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<TaskEvent>> {
        transaction!(self.pool, |c| shared::cache::settle_ended(c, now, limit))
    }

    async fn invalidate_cache(
        &self,
        tool: Option<&str>,
        now: Timestamp,
        since: Timestamp,
    ) -> StoreResult<u64> {
        transaction!(self.pool, |c| shared::cache::invalidate(
            c, tool, now, since
        ))
    }

    async fn list_servers(&self) -> StoreResult<Vec<StoredServer>> {
        shared::servers::list_servers(&self.pool).await
    }

    async fn put_server(&self, name: &str, config: Value, now: Timestamp) -> StoreResult<()> {
        shared::servers::put_server(&self.pool, name, &config, now).await
    }

    async fn delete_server(&self, name: &str) -> StoreResult<bool> {
        shared::servers::delete_server(&self.pool, name).await
    }

    async fn refresh_statistics(&self) -> StoreResult<bool> {
        // A young table (never analyzed: reltuples < 0) or one that changed much since
        // its last ANALYZE misleads the planner: claims became a bitmap scan and a sort
        // of every pending row (14–21 ms each on a 20k backlog) instead of a walk of the
        // `tasks_pending` index in claim order.
        // (Activity counters reach pg_stat_user_tables a moment after commit; a table
        // never analyzed is analyzed as soon as it holds a row.)
        let row: Option<(i64, f64)> = sqlx::query_as(
            "SELECT CASE WHEN c.reltuples < 0 THEN \
                        (SELECT count(*) FROM (SELECT 1 FROM tasks LIMIT 1) AS one) \
                    ELSE COALESCE(s.n_mod_since_analyze, 0) END, \
                    c.reltuples::float8 \
             FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
             WHERE c.oid = 'tasks'::regclass",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some((changed, rows)) = row else {
            return Ok(false);
        };
        let stale = if rows < 0.0 {
            changed > 0
        } else {
            changed as f64 > (rows * 0.1).max(1000.0)
        };
        if !stale {
            return Ok(false);
        }
        sqlx::query("ANALYZE tasks")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(true)
    }

    async fn shared_secret(
        &self,
        name: &str,
        candidate: &str,
        now: Timestamp,
    ) -> StoreResult<String> {
        shared::sessions::put_secret(&self.pool, name, candidate, now).await?;
        shared::sessions::get_secret(&self.pool, name).await
    }

    async fn end_session(&self, id_hash: &str, now: Timestamp) -> StoreResult<()> {
        shared::sessions::end_session(&self.pool, id_hash, now).await
    }

    async fn ended_sessions(&self, since: Timestamp) -> StoreResult<Vec<(String, Timestamp)>> {
        shared::sessions::ended_sessions(&self.pool, since).await
    }

    async fn forget_ended_sessions(&self, before: Timestamp) -> StoreResult<u64> {
        shared::sessions::forget_ended_sessions(&self.pool, before).await
    }

    async fn report_peer(&self, r: &PeerReport) -> StoreResult<bool> {
        shared::peers::report_peer(&self.pool, r).await
    }

    async fn list_peers(&self) -> StoreResult<Vec<Peer>> {
        shared::peers::list_peers(&self.pool).await
    }

    async fn rate_buckets(&self) -> StoreResult<Vec<crate::RateBucket>> {
        shared::claims::rate_buckets(&self.pool).await
    }

    async fn drain_peer(&self, id: &str) -> StoreResult<bool> {
        shared::peers::drain_peer(&self.pool, id).await
    }

    async fn peer_stopped(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        shared::peers::peer_stopped(&self.pool, id, now).await
    }

    async fn clock(&self) -> StoreResult<Option<Timestamp>> {
        Ok(Some(peers::clock(&self.pool).await?))
    }

    async fn mark_lost_peers(
        &self,
        before: Timestamp,
        forget_before: Timestamp,
        caller: &str,
    ) -> StoreResult<Vec<Peer>> {
        transaction!(self.pool, |c| shared::peers::mark_lost_peers(
            c,
            before,
            forget_before,
            caller
        ))
    }

    async fn create_workflow(
        &self,
        workflow: NewWorkflow,
        tasks: Vec<NewTask>,
    ) -> StoreResult<(Workflow, Vec<CreateOutcome>, Vec<TaskEvent>)> {
        transaction!(self.pool, |c| shared::workflows::create_workflow(
            c, &workflow, &tasks
        ))
    }

    async fn get_workflow(&self, id: &str) -> StoreResult<Option<Workflow>> {
        shared::workflows::get_workflow(&self.pool, id).await
    }

    async fn list_workflows(&self, q: &WorkflowQuery) -> StoreResult<Vec<Workflow>> {
        shared::workflows::list_workflows(&self.pool, q).await
    }

    async fn update_workflow(&self, update: WorkflowUpdate) -> StoreResult<WorkflowUpdated> {
        transaction!(self.pool, |c| shared::workflows::update_workflow(
            c, &update
        ))
    }

    async fn try_singleton(&self, name: &str) -> StoreResult<Option<Box<dyn SingletonGuard>>> {
        singletons::try_singleton(&self.connect, &self.target, name).await
    }

    async fn listen(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<RemoteChange>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let feed = Feed {
            pool: self.pool.clone(),
            connect: self.connect.clone(),
            origin: self.origin.clone(),
        };
        tokio::spawn(listen_loop(feed, tx));
        Ok(Some(rx))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
