//! Tasks on PostgreSQL: their statements, storing them (the unique index decides about
//! keys, arrays bound), and retention.

use std::collections::HashMap;

use baton_core::event::NewEvent;
use baton_core::task::NewTask;
use baton_core::{Task, TaskId, Timestamp};
use sqlx::Postgres;
use sqlx::postgres::{PgConnection, PgPool};

use super::error::{CONFLICT, db_err, retry_conflicts};
use super::rows::uuid;
use crate::shared::events::json_or_null;
use crate::shared::payload;
use crate::shared::rows::{Columns, event_columns, task_columns, task_from_row};
use crate::shared::tasks::{TaskSql, TaskWrites, create_outcomes, repeated_keys, task_from_new};
use crate::shared::workflows::workflow_purge_batch;
use crate::{CreateOutcome, StoreError, StoreResult};

impl TaskSql for Postgres {
    const GET_TASK: &'static str = concat!("SELECT ", task_columns!(), " FROM tasks WHERE id = $1");

    const LOCK_TASK: &'static str = concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE id = $1 FOR UPDATE"
    );

    const LIST_TASKS: &'static str = concat!("SELECT ", task_columns!(), " FROM tasks WHERE true");

    const TASK_EVENTS: &'static str = concat!(
        "SELECT ",
        event_columns!(),
        " FROM task_events WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    );

    const CANCEL_PENDING: &'static str = "UPDATE tasks SET status = 'cancelled', \
         cancel_requested = true, completed_at = $1, updated_at = $1 WHERE id = $2";

    const FLAG_CANCEL: &'static str =
        "UPDATE tasks SET cancel_requested = true, updated_at = $1 WHERE id = $2";

    const RESET_FOR_RETRY: &'static str = "UPDATE tasks SET status = 'pending', attempt = 0, \
         run_at = $1, updated_at = $1, completed_at = NULL, result = NULL, error = NULL, \
         cancel_requested = false, progress = NULL, progress_message = NULL, \
         input_requests = NULL, input_responses = NULL, checkpoint = NULL, result_zstd = NULL \
         WHERE id = $2";

    const RESCHEDULE: &'static str =
        "UPDATE tasks SET priority = $2, run_at = $3, updated_at = $1 WHERE id = $4";
}

impl crate::shared::cache::CacheSql for Postgres {
    /// A 64-bit lock of the schema and the key (the one-key space never meets the
    /// two-key locks of limited claims).
    const LOCK_KEY: Option<&'static str> = Some(
        "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/cache/' || $1, 0))",
    );
}

// The statements of storing tasks.

/// Task numbers follow the order of the batch (the CTE hands them out by position, as in
/// `insert_events`), while rows go in in key order: two batches inserting the same keys
/// in different orders would otherwise deadlock on the unique index.
const INSERT_TASKS: &str = "WITH s AS MATERIALIZED \
         (SELECT nextval('task_seq') AS seq FROM generate_series(1, $1)), \
     r AS (SELECT seq, row_number() OVER (ORDER BY seq) AS ord FROM s), \
     v AS (SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::int4[], \
                 $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::uuid[], \
                 $13::text[], $14::bigint[], $15::text[], $16::text[], $17::bigint[], $18::text[], \
                 $19::text[], $20::bytea[]) \
          WITH ORDINALITY AS v(id, tool, arguments, queue, priority, max_attempts, run_at, \
                               timeout_ms, key, owner, parent_id, metadata, created_at, \
                               workflow_id, step_id, expires_at, trace_parent, group_key, \
                               arguments_zstd, ord)), \
     head AS (SELECT coalesce( \
                 (SELECT fair_key FROM tasks WHERE status = 'pending' AND follows IS NULL \
                  ORDER BY priority DESC, fair_key LIMIT 1), \
                 (SELECT max(fair_key) FROM tasks WHERE status = 'running'), 0) AS key), \
     g AS (SELECT d.owner, d.group_key, greatest( \
                 (SELECT max(fair_key) + 1 FROM tasks t WHERE t.status = 'pending' \
                  AND t.owner = d.owner AND t.group_key = d.group_key), \
                 (SELECT key FROM head)) AS base \
           FROM (SELECT DISTINCT owner, group_key FROM v) d), \
     f AS (SELECT v.*, g.base + row_number() OVER (PARTITION BY v.owner, v.group_key \
                                                   ORDER BY v.ord) - 1 AS fair_key \
           FROM v JOIN g ON g.owner = v.owner AND g.group_key = v.group_key) \
     INSERT INTO tasks (seq, id, tool, arguments, queue, priority, status, attempt, max_attempts, \
         run_at, timeout_ms, idempotency_key, owner, parent_id, metadata, created_at, updated_at, \
         workflow_id, step_id, expires_at, trace_parent, group_key, fair_key, arguments_zstd) \
     SELECT r.seq, f.id, f.tool, f.arguments::json, f.queue, f.priority, 'pending', 0, \
         f.max_attempts, f.run_at, f.timeout_ms, f.key, f.owner, f.parent_id, f.metadata::json, \
         f.created_at, f.created_at, f.workflow_id, f.step_id, f.expires_at, f.trace_parent, \
         f.group_key, f.fair_key, f.arguments_zstd \
     FROM f JOIN r ON r.ord = f.ord \
     ORDER BY f.owner, f.key \
     ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
     RETURNING seq, id, fair_key";

const KEYED_TASKS: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM tasks WHERE (owner, idempotency_key) IN \
     (SELECT * FROM unnest($1::text[], $2::text[])) AND idempotency_key IS NOT NULL"
);

// The statements of retention.

/// What else a finished task needs to be deleted: it is no workflow's step, and its
/// parent (if any) no longer runs.
macro_rules! purgeable {
    () => {
        " AND workflow_id IS NULL AND (parent_id IS NULL OR NOT EXISTS \
           (SELECT 1 FROM tasks p WHERE p.id = tasks.parent_id \
            AND p.status IN ('pending', 'running', 'input_required')))"
    };
}

/// Deletes the tasks of `d`, their events and their logs.
macro_rules! delete_purged {
    () => {
        "e AS (DELETE FROM task_events USING d WHERE task_events.task_id = d.id), \
         l AS (DELETE FROM task_logs USING d WHERE task_logs.task_id = d.id) \
         DELETE FROM tasks USING d WHERE tasks.seq = d.seq"
    };
}

/// The oldest completions of tasks of no workflow (skipping rows another node is purging
/// or retrying right now, and children of tasks still running), their events, then the
/// tasks.
const PURGE_TASKS: &str = concat!(
    "WITH d AS (SELECT seq, id FROM tasks WHERE completed_at IS NOT NULL AND completed_at < $1",
    purgeable!(),
    " ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED), ",
    delete_purged!()
);

/// Finished tasks past their own time to live, under the same rules.
const PURGE_EXPIRED: &str = concat!(
    "WITH d AS (SELECT seq, id FROM tasks WHERE expires_at IS NOT NULL \
       AND completed_at IS NOT NULL AND expires_at < $1",
    purgeable!(),
    " ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED), ",
    delete_purged!()
);

/// Workflows over since before the cut, with all their steps' tasks and events.
const PURGE_WORKFLOWS: &str = "WITH w AS (SELECT seq, id FROM workflows \
       WHERE completed_at IS NOT NULL AND completed_at < $1 AND status <> 'running' \
       AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = workflows.id \
                       AND t.completed_at IS NULL) \
       ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
     d AS (SELECT tasks.seq, tasks.id FROM tasks JOIN w ON tasks.workflow_id = w.id \
       ORDER BY tasks.id FOR UPDATE OF tasks), \
     e AS (DELETE FROM task_events USING d WHERE task_events.task_id = d.id), \
     l AS (DELETE FROM task_logs USING d WHERE task_logs.task_id = d.id), \
     t AS (DELETE FROM tasks USING d WHERE tasks.seq = d.seq RETURNING 1), \
     x AS (DELETE FROM workflows USING w WHERE workflows.seq = w.seq) \
     SELECT count(*) FROM t";

impl TaskWrites for PgConnection {
    /// Idempotency is left to the unique index: every new key is inserted with `ON
    /// CONFLICT DO NOTHING`, and the keys that were not inserted are looked up afterwards.
    /// That is one statement when no key repeats, and correct when another node stores
    /// the same key at the same moment (the insert waits for that node's transaction,
    /// then yields to it).
    async fn insert_tasks(
        &mut self,
        tasks: &[NewTask],
    ) -> StoreResult<(Vec<CreateOutcome>, Vec<NewEvent>)> {
        let repeated = repeated_keys(tasks);
        let to_insert: Vec<&NewTask> = tasks
            .iter()
            .zip(&repeated)
            .filter(|(_, same)| same.is_none())
            .map(|(t, _)| t)
            .collect();
        let seq_of = insert(self, &to_insert).await?;
        // Keys that were already taken, by an earlier call or a concurrent one.
        let taken: Vec<&NewTask> = to_insert
            .iter()
            .copied()
            .filter(|t| !seq_of.contains_key(&t.id))
            .collect();
        let existing = keyed_tasks(self, &taken).await?;
        let mut created = create_outcomes(tasks, &repeated, |t| {
            if let Some(&(seq, fair_key)) = seq_of.get(&t.id) {
                return Ok(CreateOutcome::Created(task_from_new(t, seq, fair_key)));
            }
            let key = (
                t.owner.clone(),
                t.idempotency_key.clone().unwrap_or_default(),
            );
            match existing.get(&key) {
                Some(found) => Ok(CreateOutcome::Existing(found.clone())),
                // The conflicting task vanished between the insert and the lookup (purged
                // or its inserting transaction rolled back): run the whole call again.
                None => Err(StoreError::Busy(format!(
                    "{CONFLICT}: the task holding idempotency key of task {} vanished",
                    t.id
                ))),
            }
        })?;
        if tasks.iter().any(|t| t.callback_url.is_some()) {
            crate::shared::webhooks::insert_callbacks(self, tasks, &created.0).await?;
        }
        if tasks.iter().any(|t| t.cache.is_some()) {
            let (outcomes, events) = &mut created;
            crate::shared::cache::resolve(self, tasks, outcomes, events).await?;
        }
        Ok(created)
    }
}

/// Inserts the tasks whose key is free; returns the number and fair key each inserted
/// task got.
async fn insert(
    c: &mut PgConnection,
    tasks: &[&NewTask],
) -> StoreResult<HashMap<TaskId, (i64, i64)>> {
    let n = tasks.len();
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
    let mut expires = Vec::with_capacity(n);
    let mut traces = Vec::with_capacity(n);
    let mut groups = Vec::with_capacity(n);
    let mut compressed = Vec::with_capacity(n);
    for t in tasks {
        workflows.push(t.step.as_ref().map(|s| s.workflow_id.as_str()));
        steps.push(t.step.as_ref().map(|s| s.step_id.as_str()));
        ids.push(uuid(t.id));
        tools.push(t.tool.as_str());
        let stored = payload::arguments(&t.arguments);
        arguments.push(stored.json);
        compressed.push(stored.zstd);
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
        expires.push(t.expires_at.map(|e| e.as_millis()));
        traces.push(t.trace_parent.as_deref());
        groups.push(t.group_key.as_deref().unwrap_or(""));
    }
    let rows = sqlx::query(INSERT_TASKS)
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
        .bind(expires)
        .bind(traces)
        .bind(groups)
        .bind(compressed)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
    let mut seq_of: HashMap<TaskId, (i64, i64)> = HashMap::with_capacity(rows.len());
    for row in &rows {
        seq_of.insert(row.task_id("id")?, (row.int("seq")?, row.int("fair_key")?));
    }
    Ok(seq_of)
}

/// The stored tasks holding the (owner, key) of one of `tasks`, by (owner, key).
async fn keyed_tasks(
    c: &mut PgConnection,
    tasks: &[&NewTask],
) -> StoreResult<HashMap<(String, String), Task>> {
    let mut existing: HashMap<(String, String), Task> = HashMap::with_capacity(tasks.len());
    if tasks.is_empty() {
        return Ok(existing);
    }
    let owners: Vec<&str> = tasks.iter().map(|t| t.owner.as_str()).collect();
    let keys: Vec<Option<&str>> = tasks.iter().map(|t| t.idempotency_key.as_deref()).collect();
    let rows = sqlx::query(KEYED_TASKS)
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
    Ok(existing)
}

/// See [`Store::purge_finished`](crate::Store::purge_finished). One statement each for
/// tasks and workflows, outside a transaction.
pub(super) async fn purge_finished(
    pool: &PgPool,
    before: Timestamp,
    now: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let expired = retry_conflicts!(
        sqlx::query(PURGE_EXPIRED)
            .bind(now.as_millis())
            .bind(i64::from(limit))
            .execute(pool)
            .await
            .map_err(db_err)
    )?
    .rows_affected();
    let left = u64::from(limit).saturating_sub(expired);
    if left == 0 {
        return Ok(expired);
    }
    let tasks = retry_conflicts!(
        sqlx::query(PURGE_TASKS)
            .bind(before.as_millis())
            .bind(left as i64)
            .execute(pool)
            .await
            .map_err(db_err)
    )?
    .rows_affected();
    // A workflow and its steps are one decision (see the trait).
    let steps: i64 = retry_conflicts!(
        sqlx::query_scalar(PURGE_WORKFLOWS)
            .bind(before.as_millis())
            .bind(i64::from(workflow_purge_batch(limit)))
            .fetch_one(pool)
            .await
            .map_err(db_err)
    )?;
    Ok(expired + tasks + steps as u64)
}
