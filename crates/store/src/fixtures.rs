//! Fresh stores for tests: an SQLite file in a temporary directory, or a fresh schema on
//! the test PostgreSQL server (`BATON_TEST_PG_URL`, default the local server), dropped
//! with everything in it when the guard goes. Tests that need PostgreSQL fail, never
//! skip, when it cannot be reached: CI cannot pass without running them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Connection;

use crate::Store;
use crate::sqlite::{SqliteOptions, SqliteStore};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

/// Whatever must live as long as a fresh store (its directory or schema).
pub enum Guard {
    Dir(tempfile::TempDir),
    #[cfg(feature = "postgres")]
    Schema(Schema),
}

/// A fresh, empty store of `backend`.
pub async fn fresh(backend: Backend) -> (Arc<dyn Store>, Guard) {
    match backend {
        Backend::Sqlite => {
            let (store, dir) = fresh_sqlite().await;
            (store, Guard::Dir(dir))
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let schema = Schema::create().await;
            let store = schema.store(4).await;
            (Arc::new(store), Guard::Schema(schema))
        }
    }
}

/// A fresh SQLite store in a temporary directory.
pub async fn fresh_sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&SqliteOptions::new(dir.path().join("baton.db")))
        .await
        .expect("open SQLite");
    (Arc::new(store), dir)
}

#[cfg(feature = "postgres")]
pub use pg::{Schema, pg_url, shown};

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use crate::postgres::{PostgresOptions, PostgresStore};

    const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    pub fn pg_url() -> String {
        std::env::var("BATON_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
    }

    /// The URL as it may be shown: without its password, if it has one.
    pub fn shown(url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_string();
        };
        match rest.split_once('@') {
            Some((user_info, host)) if user_info.contains(':') => {
                let user = user_info.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            _ => url.to_string(),
        }
    }

    /// A test's schema; dropped (with everything in it) when the test ends, passed or not.
    pub struct Schema {
        pub name: String,
        pub url: String,
    }

    impl Schema {
        pub async fn create() -> Schema {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let url = pg_url();
            let name = format!(
                "baton_test_{}_{}_{:08x}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                rand::random::<u32>()
            );
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
                panic!(
                    "cannot reach PostgreSQL at {} ({e}).\n\
                     The postgres store tests need a server: run scripts/test-env (it starts the \
                     local cluster) or point BATON_TEST_PG_URL at one.",
                    shown(&url)
                )
            });
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let _ = conn.close().await;
            Schema { name, url }
        }

        /// A store on this schema. Its connections carry the schema's name as their
        /// `application_name`, so the clean-up can find them.
        pub async fn store(&self, max_connections: u32) -> PostgresStore {
            let sep = if self.url.contains('?') { '&' } else { '?' };
            let url = format!("{}{sep}application_name={}", self.url, self.name);
            let opts = PostgresOptions {
                max_connections,
                acquire_timeout: Duration::from_secs(30),
                schema: Some(self.name.clone()),
            };
            PostgresStore::connect(&url, &opts)
                .await
                .unwrap_or_else(|e| panic!("PostgresStore::connect on {}: {e}", shown(&self.url)))
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let (name, url) = (self.name.clone(), self.url.clone());
            // Drop runs on the test's runtime, which must not be blocked on; a thread with a
            // runtime of its own can.
            let done = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the clean-up")
                    .block_on(drop_schema(&url, &name))
            })
            .join();
            if let Ok(Err(e)) = done {
                eprintln!("could not drop the test schema {}: {e}", self.name);
            }
        }
    }

    async fn drop_schema(url: &str, name: &str) -> Result<(), sqlx::Error> {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let sql = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
        // The store is dropped after this guard, so its pooled connections are still open.
        // Idle, they hold no locks and the DROP goes through; but a test that panicked may
        // have left one inside a transaction: then end the store's connections and drop again.
        sqlx::query("SET lock_timeout = '2s'")
            .execute(&mut conn)
            .await?;
        let dropped = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await;
        if dropped.is_err() {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
            )
            .bind(name)
            .execute(&mut conn)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await?;
        }
        conn.close().await
    }
}

/// A store call, as [`FaultyStore`]'s fault sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// The [`Store`] method's name.
    pub method: &'static str,
    /// The task it is about, for methods about one task.
    pub task: Option<crate::TaskId>,
}

type Fault = Arc<dyn Fn(&Call) -> Option<crate::StoreError> + Send + Sync>;

/// A [`Store`] that passes every call to a real one, except those its fault fails:
/// deterministic fault injection at the store boundary for engine tests (a write that
/// fails for one task, a database that goes away for one kind of call).
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    fault: std::sync::RwLock<Option<Fault>>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner,
            fault: std::sync::RwLock::new(None),
        })
    }

    /// From now on, a call for which `fault` answers `Some(error)` fails with it.
    pub fn set_fault(
        &self,
        fault: impl Fn(&Call) -> Option<crate::StoreError> + Send + Sync + 'static,
    ) {
        *self.fault.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(fault));
    }

    pub fn clear_fault(&self) {
        *self.fault.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn check(&self, method: &'static str, task: Option<crate::TaskId>) -> crate::StoreResult<()> {
        let fault = self.fault.read().unwrap_or_else(|e| e.into_inner()).clone();
        match fault.and_then(|f| f(&Call { method, task })) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

mod faulty {
    use super::FaultyStore;
    use crate::*;
    use async_trait::async_trait;
    use baton_core::task::NewTask;
    use baton_core::{Task, TaskEvent, TaskId, Timestamp};
    use serde_json::Value;

    #[async_trait]
    impl Store for FaultyStore {
        fn backend(&self) -> &'static str {
            self.inner.backend()
        }
        async fn ping(&self) -> StoreResult<()> {
            self.check("ping", None)?;
            self.inner.ping().await
        }
        async fn create_tasks(
            &self,
            tasks: Vec<NewTask>,
        ) -> StoreResult<(Vec<CreateOutcome>, Vec<TaskEvent>)> {
            self.check("create_tasks", None)?;
            self.inner.create_tasks(tasks).await
        }
        async fn create_and_claim(
            &self,
            tasks: Vec<NewTask>,
            claim: Option<ClaimRequest<'_>>,
        ) -> StoreResult<CreatedAndClaimed> {
            self.check("create_and_claim", None)?;
            self.inner.create_and_claim(tasks, claim).await
        }
        async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
            self.check("get_task", Some(id))?;
            self.inner.get_task(id).await
        }
        async fn list_tasks(&self, query: &TaskQuery) -> StoreResult<Vec<Task>> {
            self.check("list_tasks", None)?;
            self.inner.list_tasks(query).await
        }
        async fn claim(&self, req: &ClaimRequest<'_>) -> StoreResult<(Vec<Task>, Vec<TaskEvent>)> {
            self.check("claim", None)?;
            self.inner.claim(req).await
        }
        async fn heartbeat(
            &self,
            owner: &str,
            now: Timestamp,
            lease_until: Timestamp,
        ) -> StoreResult<HeartbeatReply> {
            self.check("heartbeat", None)?;
            self.inner.heartbeat(owner, now, lease_until).await
        }
        async fn record_progress(
            &self,
            updates: Vec<ProgressUpdate>,
        ) -> StoreResult<Vec<TaskEvent>> {
            self.check("record_progress", None)?;
            self.inner.record_progress(updates).await
        }
        async fn finish(&self, items: Vec<Finish>) -> StoreResult<Vec<FinishOutcome>> {
            for f in &items {
                self.check("finish", Some(f.id))?;
            }
            self.inner.finish(items).await
        }
        async fn request_cancel(&self, id: TaskId, now: Timestamp) -> StoreResult<CancelOutcome> {
            self.check("request_cancel", Some(id))?;
            self.inner.request_cancel(id, now).await
        }
        async fn reschedule(
            &self,
            id: TaskId,
            priority: Option<i32>,
            run_at: Option<Timestamp>,
            now: Timestamp,
        ) -> StoreResult<crate::RescheduleOutcome> {
            self.check("reschedule", Some(id))?;
            self.inner.reschedule(id, priority, run_at, now).await
        }
        async fn retry_task(&self, id: TaskId, now: Timestamp) -> StoreResult<RetryOutcome> {
            self.check("retry_task", Some(id))?;
            self.inner.retry_task(id, now).await
        }
        async fn requeue_leases(&self, req: &Requeue<'_>) -> StoreResult<Vec<TaskEvent>> {
            self.check("requeue_leases", None)?;
            self.inner.requeue_leases(req).await
        }
        async fn purge_finished(
            &self,
            before: Timestamp,
            now: Timestamp,
            limit: u32,
        ) -> StoreResult<u64> {
            self.check("purge_finished", None)?;
            self.inner.purge_finished(before, now, limit).await
        }
        async fn archivable(
            &self,
            before: Timestamp,
            now: Timestamp,
            limit: u32,
        ) -> StoreResult<Vec<Archivable>> {
            self.check("archivable", None)?;
            self.inner.archivable(before, now, limit).await
        }
        async fn begin_archive(&self, batches: &[ArchiveBatch]) -> StoreResult<Vec<ArchiveBatch>> {
            self.check("begin_archive", None)?;
            self.inner.begin_archive(batches).await
        }
        async fn archive_batches_writing(&self) -> StoreResult<Vec<ArchiveBatch>> {
            self.check("archive_batches_writing", None)?;
            self.inner.archive_batches_writing().await
        }
        async fn archive_contents(&self, batch: &ArchiveBatch) -> StoreResult<Vec<ArchivedItem>> {
            self.check("archive_contents", None)?;
            self.inner.archive_contents(batch).await
        }
        async fn complete_archive(
            &self,
            batch_id: &str,
            written: &[ArchiveWritten],
            now: Timestamp,
        ) -> StoreResult<ArchiveCompletion> {
            self.check("complete_archive", None)?;
            self.inner.complete_archive(batch_id, written, now).await
        }
        async fn archived(&self, kind: ArchiveKind, id: &str) -> StoreResult<Option<ArchiveEntry>> {
            self.check("archived", None)?;
            self.inner.archived(kind, id).await
        }
        async fn analytics(&self, q: &crate::AnalyticsQuery) -> StoreResult<crate::AnalyticsRows> {
            self.check("analytics", None)?;
            self.inner.analytics(q).await
        }
        async fn insert_webhook(&self, w: &crate::StoredWebhook) -> StoreResult<()> {
            self.check("insert_webhook", None)?;
            self.inner.insert_webhook(w).await
        }
        async fn get_webhook(&self, id: &str) -> StoreResult<Option<crate::StoredWebhook>> {
            self.check("get_webhook", None)?;
            self.inner.get_webhook(id).await
        }
        async fn list_webhooks(
            &self,
            owner: Option<&str>,
        ) -> StoreResult<Vec<crate::StoredWebhook>> {
            self.check("list_webhooks", None)?;
            self.inner.list_webhooks(owner).await
        }
        async fn delete_webhook(&self, owner: &str, id: &str) -> StoreResult<bool> {
            self.check("delete_webhook", None)?;
            self.inner.delete_webhook(owner, id).await
        }
        async fn rotate_webhook_secret(
            &self,
            owner: &str,
            id: &str,
            secret: &str,
            previous_until: Timestamp,
            now: Timestamp,
        ) -> StoreResult<bool> {
            self.check("rotate_webhook_secret", None)?;
            self.inner
                .rotate_webhook_secret(owner, id, secret, previous_until, now)
                .await
        }
        async fn claim_deliveries(
            &self,
            now: Timestamp,
            lease_until: Timestamp,
            limit: u32,
        ) -> StoreResult<Vec<crate::Delivery>> {
            self.check("claim_deliveries", None)?;
            self.inner.claim_deliveries(now, lease_until, limit).await
        }
        async fn record_delivery_attempt(&self, r: &crate::AttemptRecord) -> StoreResult<bool> {
            self.check("record_delivery_attempt", None)?;
            self.inner.record_delivery_attempt(r).await
        }
        async fn get_delivery(&self, id: &str) -> StoreResult<Option<crate::Delivery>> {
            self.check("get_delivery", None)?;
            self.inner.get_delivery(id).await
        }
        async fn list_deliveries(
            &self,
            webhook_id: &str,
            before: Option<(Timestamp, String)>,
            limit: u32,
        ) -> StoreResult<Vec<crate::Delivery>> {
            self.check("list_deliveries", None)?;
            self.inner.list_deliveries(webhook_id, before, limit).await
        }
        async fn delivery_attempts(
            &self,
            delivery_id: &str,
        ) -> StoreResult<Vec<crate::DeliveryAttempt>> {
            self.check("delivery_attempts", None)?;
            self.inner.delivery_attempts(delivery_id).await
        }
        async fn redeliver(
            &self,
            webhook_id: &str,
            delivery_id: &str,
            now: Timestamp,
        ) -> StoreResult<bool> {
            self.check("redeliver", None)?;
            self.inner.redeliver(webhook_id, delivery_id, now).await
        }
        async fn enqueue_ownerless_event(&self, e: &crate::NewOwnerlessEvent) -> StoreResult<u64> {
            self.check("enqueue_ownerless_event", None)?;
            self.inner.enqueue_ownerless_event(e).await
        }
        async fn record_server_health(
            &self,
            name: &str,
            up: bool,
            event: &crate::NewOwnerlessEvent,
        ) -> StoreResult<u64> {
            self.check("record_server_health", None)?;
            self.inner.record_server_health(name, up, event).await
        }
        async fn purge_deliveries(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
            self.check("purge_deliveries", None)?;
            self.inner.purge_deliveries(before, limit).await
        }
        async fn insert_schedule(&self, s: &crate::StoredSchedule) -> StoreResult<bool> {
            self.check("insert_schedule", None)?;
            self.inner.insert_schedule(s).await
        }
        async fn update_schedule(&self, s: &crate::StoredSchedule) -> StoreResult<bool> {
            self.check("update_schedule", None)?;
            self.inner.update_schedule(s).await
        }
        async fn get_schedule(
            &self,
            owner: &str,
            name: &str,
        ) -> StoreResult<Option<crate::StoredSchedule>> {
            self.check("get_schedule", None)?;
            self.inner.get_schedule(owner, name).await
        }
        async fn list_schedules(
            &self,
            owner: Option<&str>,
        ) -> StoreResult<Vec<crate::StoredSchedule>> {
            self.check("list_schedules", None)?;
            self.inner.list_schedules(owner).await
        }
        async fn delete_schedule(&self, owner: &str, name: &str) -> StoreResult<bool> {
            self.check("delete_schedule", None)?;
            self.inner.delete_schedule(owner, name).await
        }
        async fn due_schedules(
            &self,
            now: Timestamp,
            limit: u32,
        ) -> StoreResult<Vec<crate::StoredSchedule>> {
            self.check("due_schedules", None)?;
            self.inner.due_schedules(now, limit).await
        }
        async fn next_schedule_at(&self) -> StoreResult<Option<Timestamp>> {
            self.check("next_schedule_at", None)?;
            self.inner.next_schedule_at().await
        }
        async fn advance_schedule(
            &self,
            owner: &str,
            name: &str,
            from: Timestamp,
            to: Timestamp,
            fired: Option<crate::ScheduleRun>,
            now: Timestamp,
        ) -> StoreResult<bool> {
            self.check("advance_schedule", None)?;
            self.inner
                .advance_schedule(owner, name, from, to, fired, now)
                .await
        }
        async fn schedule_runs(
            &self,
            owner: &str,
            name: &str,
            limit: u32,
        ) -> StoreResult<Vec<crate::ScheduleRun>> {
            self.check("schedule_runs", None)?;
            self.inner.schedule_runs(owner, name, limit).await
        }
        async fn fold_analytics(
            &self,
            upto: Timestamp,
            max_minutes: u32,
        ) -> StoreResult<Timestamp> {
            self.check("fold_analytics", None)?;
            self.inner.fold_analytics(upto, max_minutes).await
        }
        async fn append_logs(
            &self,
            lines: Vec<baton_core::log::NewLogLine>,
            keep: baton_core::log::LogKeep,
        ) -> StoreResult<Vec<baton_core::log::LogLine>> {
            self.check("append_logs", lines.first().map(|l| l.task_id))?;
            self.inner.append_logs(lines, keep).await
        }
        async fn task_logs(
            &self,
            id: TaskId,
            after_seq: i64,
            limit: u32,
        ) -> StoreResult<Vec<baton_core::log::LogLine>> {
            self.check("task_logs", Some(id))?;
            self.inner.task_logs(id, after_seq, limit).await
        }
        async fn task_events(
            &self,
            id: TaskId,
            after_seq: i64,
            limit: u32,
        ) -> StoreResult<Vec<TaskEvent>> {
            self.check("task_events", Some(id))?;
            self.inner.task_events(id, after_seq, limit).await
        }
        async fn queue_stats(
            &self,
            now: Timestamp,
            owner: Option<&str>,
        ) -> StoreResult<Vec<QueueStats>> {
            self.check("queue_stats", None)?;
            self.inner.queue_stats(now, owner).await
        }
        async fn set_queue_paused(
            &self,
            owner: &str,
            queue: &str,
            paused: bool,
            now: Timestamp,
        ) -> StoreResult<()> {
            self.check("set_queue_paused", None)?;
            self.inner.set_queue_paused(owner, queue, paused, now).await
        }
        async fn recent_durations(&self, tool: &str, limit: u32) -> StoreResult<Vec<u64>> {
            self.check("recent_durations", None)?;
            self.inner.recent_durations(tool, limit).await
        }
        async fn count_active(&self) -> StoreResult<u64> {
            self.check("count_active", None)?;
            self.inner.count_active().await
        }
        async fn save_checkpoint(
            &self,
            id: TaskId,
            token: i64,
            checkpoint: Value,
            now: Timestamp,
        ) -> StoreResult<bool> {
            self.check("save_checkpoint", Some(id))?;
            self.inner.save_checkpoint(id, token, checkpoint, now).await
        }
        async fn set_input_required(
            &self,
            id: TaskId,
            token: i64,
            requests: Value,
            now: Timestamp,
        ) -> StoreResult<Option<TaskEvent>> {
            self.check("set_input_required", Some(id))?;
            self.inner
                .set_input_required(id, token, requests, now)
                .await
        }
        async fn provide_input(
            &self,
            id: TaskId,
            responses: Value,
            now: Timestamp,
        ) -> StoreResult<InputOutcome> {
            self.check("provide_input", Some(id))?;
            self.inner.provide_input(id, responses, now).await
        }
        async fn take_input(&self, id: TaskId, token: i64) -> StoreResult<Option<Value>> {
            self.check("take_input", Some(id))?;
            self.inner.take_input(id, token).await
        }
        async fn put_key(&self, key: StoredKey) -> StoreResult<()> {
            self.check("put_key", None)?;
            self.inner.put_key(key).await
        }
        async fn get_key(&self, key_id: &str) -> StoreResult<Option<StoredKey>> {
            self.check("get_key", None)?;
            self.inner.get_key(key_id).await
        }
        async fn list_keys(&self, since: Option<Timestamp>) -> StoreResult<Vec<StoredKey>> {
            self.check("list_keys", None)?;
            self.inner.list_keys(since).await
        }
        async fn revoke_key(&self, key_id: &str, now: Timestamp) -> StoreResult<bool> {
            self.check("revoke_key", None)?;
            self.inner.revoke_key(key_id, now).await
        }
        async fn rotate_key(
            &self,
            key_id: &str,
            new_hash: &str,
            previous_until: Timestamp,
            now: Timestamp,
        ) -> StoreResult<bool> {
            self.check("rotate_key", None)?;
            self.inner
                .rotate_key(key_id, new_hash, previous_until, now)
                .await
        }
        async fn append_audit(&self, entries: Vec<NewAuditEntry>) -> StoreResult<()> {
            self.check("append_audit", None)?;
            self.inner.append_audit(entries).await
        }
        async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
            self.check("list_audit", None)?;
            self.inner.list_audit(query).await
        }
        async fn purge_audit(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
            self.check("purge_audit", None)?;
            self.inner.purge_audit(before, limit).await
        }
        async fn settle_followers(
            &self,
            leader: TaskId,
            now: Timestamp,
        ) -> StoreResult<Vec<TaskEvent>> {
            self.check("settle_followers", None)?;
            self.inner.settle_followers(leader, now).await
        }
        async fn settle_ended_followed(
            &self,
            now: Timestamp,
            limit: u32,
        ) -> StoreResult<Vec<TaskEvent>> {
            self.check("settle_ended_followed", None)?;
            self.inner.settle_ended_followed(now, limit).await
        }
        async fn invalidate_cache(
            &self,
            tool: Option<&str>,
            now: Timestamp,
            since: Timestamp,
        ) -> StoreResult<u64> {
            self.check("invalidate_cache", None)?;
            self.inner.invalidate_cache(tool, now, since).await
        }
        async fn list_servers(&self) -> StoreResult<Vec<StoredServer>> {
            self.check("list_servers", None)?;
            self.inner.list_servers().await
        }
        async fn put_server(&self, name: &str, config: Value, now: Timestamp) -> StoreResult<()> {
            self.check("put_server", None)?;
            self.inner.put_server(name, config, now).await
        }
        async fn delete_server(&self, name: &str) -> StoreResult<bool> {
            self.check("delete_server", None)?;
            self.inner.delete_server(name).await
        }
        async fn refresh_statistics(&self) -> StoreResult<bool> {
            self.check("refresh_statistics", None)?;
            self.inner.refresh_statistics().await
        }
        async fn shared_secret(
            &self,
            name: &str,
            candidate: &str,
            now: Timestamp,
        ) -> StoreResult<String> {
            self.check("shared_secret", None)?;
            self.inner.shared_secret(name, candidate, now).await
        }
        async fn end_session(&self, id_hash: &str, now: Timestamp) -> StoreResult<()> {
            self.check("end_session", None)?;
            self.inner.end_session(id_hash, now).await
        }
        async fn ended_sessions(&self, since: Timestamp) -> StoreResult<Vec<(String, Timestamp)>> {
            self.check("ended_sessions", None)?;
            self.inner.ended_sessions(since).await
        }
        async fn forget_ended_sessions(&self, before: Timestamp) -> StoreResult<u64> {
            self.check("forget_ended_sessions", None)?;
            self.inner.forget_ended_sessions(before).await
        }
        async fn report_peer(&self, report: &PeerReport) -> StoreResult<bool> {
            self.check("report_peer", None)?;
            self.inner.report_peer(report).await
        }
        async fn list_peers(&self) -> StoreResult<Vec<Peer>> {
            self.check("list_peers", None)?;
            self.inner.list_peers().await
        }
        async fn rate_buckets(&self) -> StoreResult<Vec<crate::RateBucket>> {
            self.check("rate_buckets", None)?;
            self.inner.rate_buckets().await
        }
        async fn drain_peer(&self, id: &str) -> StoreResult<bool> {
            self.check("drain_peer", None)?;
            self.inner.drain_peer(id).await
        }
        async fn peer_stopped(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
            self.check("peer_stopped", None)?;
            self.inner.peer_stopped(id, now).await
        }
        async fn mark_lost_peers(
            &self,
            before: Timestamp,
            forget_before: Timestamp,
            caller: &str,
        ) -> StoreResult<Vec<Peer>> {
            self.check("mark_lost_peers", None)?;
            self.inner
                .mark_lost_peers(before, forget_before, caller)
                .await
        }
        async fn clock(&self) -> StoreResult<Option<Timestamp>> {
            self.check("clock", None)?;
            self.inner.clock().await
        }
        async fn create_workflow(
            &self,
            workflow: NewWorkflow,
            tasks: Vec<NewTask>,
        ) -> StoreResult<(Workflow, Vec<CreateOutcome>, Vec<TaskEvent>)> {
            self.check("create_workflow", None)?;
            self.inner.create_workflow(workflow, tasks).await
        }
        async fn get_workflow(&self, id: &str) -> StoreResult<Option<Workflow>> {
            self.check("get_workflow", None)?;
            self.inner.get_workflow(id).await
        }
        async fn list_workflows(&self, query: &WorkflowQuery) -> StoreResult<Vec<Workflow>> {
            self.check("list_workflows", None)?;
            self.inner.list_workflows(query).await
        }
        async fn update_workflow(&self, update: WorkflowUpdate) -> StoreResult<WorkflowUpdated> {
            self.check("update_workflow", None)?;
            self.inner.update_workflow(update).await
        }
        async fn try_singleton(&self, name: &str) -> StoreResult<Option<Box<dyn SingletonGuard>>> {
            self.check("try_singleton", None)?;
            self.inner.try_singleton(name).await
        }
        async fn listen(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<RemoteChange>>> {
            self.inner.listen().await
        }
        async fn close(&self) {
            self.inner.close().await
        }
    }
}
