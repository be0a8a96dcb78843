//! Tasks on SQLite: their statements, storing them (keys looked up first, then the new
//! tasks inserted as `VALUES`), and retention.

use std::collections::HashMap;

use baton_core::event::NewEvent;
use baton_core::task::NewTask;
use baton_core::{Task, TaskId, Timestamp};
use sqlx::{QueryBuilder, Sqlite};

use super::error::db_err;
use super::writer::{CHUNK, Writer};
use crate::shared::events::json_or_null;
use crate::shared::payload;
use crate::shared::rows::{Columns, event_columns, task_columns, task_from_row};
use crate::shared::tasks::{TaskSql, TaskWrites, create_outcomes, repeated_keys, task_from_new};
use crate::shared::workflows::workflow_purge_batch;
use crate::{CreateOutcome, StoreError, StoreResult};

impl TaskSql for Sqlite {
    const GET_TASK: &'static str = concat!("SELECT ", task_columns!(), " FROM tasks WHERE id = ?1");

    /// The writer holds SQLite's write lock: reading the row is enough.
    const LOCK_TASK: &'static str = Self::GET_TASK;

    const LIST_TASKS: &'static str = concat!("SELECT ", task_columns!(), " FROM tasks WHERE 1 = 1");

    const TASK_EVENTS: &'static str = concat!(
        "SELECT ",
        event_columns!(),
        " FROM task_events WHERE task_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    );

    const CANCEL_PENDING: &'static str = "UPDATE tasks SET status = 'cancelled', \
         cancel_requested = 1, completed_at = ?1, updated_at = ?1 WHERE id = ?2";

    const FLAG_CANCEL: &'static str =
        "UPDATE tasks SET cancel_requested = 1, updated_at = ?1 WHERE id = ?2";

    const RESET_FOR_RETRY: &'static str = "UPDATE tasks SET status = 'pending', attempt = 0, \
         run_at = ?1, updated_at = ?1, completed_at = NULL, result = NULL, error = NULL, \
         cancel_requested = 0, progress = NULL, progress_message = NULL, input_requests = NULL, \
         input_responses = NULL, checkpoint = NULL, result_zstd = NULL WHERE id = ?2";

    const RESCHEDULE: &'static str =
        "UPDATE tasks SET priority = ?2, run_at = ?3, updated_at = ?1 WHERE id = ?4";
}

impl crate::shared::cache::CacheSql for Sqlite {
    /// The writer holds SQLite's write lock: storing and settling never overlap.
    const LOCK_KEY: Option<&'static str> = None;
}

// The statements of storing tasks.

/// After `SELECT` the task columns (prefixed with `tasks.`) `FROM (` the `(owner, key)`
/// pairs as `VALUES`: a join from the keys, so each is one lookup in the unique index
/// (an `(owner, key) IN (...)` test would scan the whole index).
const KEYED_TASKS_JOIN: &str = ") AS k JOIN tasks ON tasks.owner = k.column1 \
     AND tasks.idempotency_key = k.column2 WHERE tasks.idempotency_key IS NOT NULL";

/// Followed by the tasks as `VALUES`, then [`INSERT_TASKS_END`].
const INSERT_TASKS: &str = "INSERT INTO tasks (id, tool, arguments, queue, priority, status, \
     attempt, max_attempts, run_at, timeout_ms, idempotency_key, owner, parent_id, metadata, \
     created_at, updated_at, workflow_id, step_id, expires_at, trace_parent, group_key, fair_key, \
     arguments_zstd) ";

/// Where a group's next task goes in the claim order (see [`Task::fair_key`]): after the
/// group's last pending task, but not behind the head of the line (the first pending
/// task in claim order; when none waits, the latest running one).
const FAIR_BASE: &str = "SELECT max(\
     coalesce((SELECT max(fair_key) + 1 FROM tasks \
               WHERE status = 'pending' AND owner = ?1 AND group_key = ?2), 0), \
     coalesce((SELECT fair_key FROM tasks INDEXED BY tasks_pending WHERE status = 'pending' \
               AND follows IS NULL ORDER BY priority DESC, fair_key LIMIT 1), \
              (SELECT max(fair_key) FROM tasks WHERE status = 'running'), 0)) AS base";

const INSERT_TASKS_END: &str = " RETURNING seq, id";

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

/// Tasks of no workflow, oldest completion first; children of a task still running stay
/// (the parent may still want them).
const PURGEABLE_TASKS: &str = concat!(
    "SELECT seq, id FROM tasks WHERE completed_at IS NOT NULL AND completed_at < ?",
    purgeable!(),
    " ORDER BY completed_at LIMIT ?"
);

/// Finished tasks past their own time to live, under the same rules.
const EXPIRED_TASKS: &str = concat!(
    "SELECT seq, id FROM tasks WHERE expires_at IS NOT NULL AND completed_at IS NOT NULL \
     AND expires_at < ?",
    purgeable!(),
    " ORDER BY expires_at LIMIT ?"
);

const PURGEABLE_WORKFLOWS: &str = "SELECT id FROM workflows WHERE completed_at IS NOT NULL \
     AND completed_at < ? AND status <> 'running' AND NOT EXISTS \
         (SELECT 1 FROM tasks t WHERE t.workflow_id = workflows.id AND t.completed_at IS NULL) \
     ORDER BY completed_at LIMIT ?";

const WORKFLOW_TASKS: &str = "SELECT seq, id FROM tasks WHERE workflow_id = ?";

const DELETE_WORKFLOW: &str = "DELETE FROM workflows WHERE id = ?";

/// Followed by the task ids, then `)`.
const DELETE_EVENTS_OF: &str = "DELETE FROM task_events WHERE task_id IN (";

/// Followed by the task ids, then `)`.
const DELETE_LOGS_OF: &str = "DELETE FROM task_logs WHERE task_id IN (";

/// Followed by the task numbers, then `)`.
const DELETE_TASKS: &str = "DELETE FROM tasks WHERE seq IN (";

impl TaskWrites for Writer {
    /// Idempotency: the tasks already stored under the same (owner, key) are looked up
    /// first, then the others inserted.
    async fn insert_tasks(
        &mut self,
        tasks: &[NewTask],
    ) -> StoreResult<(Vec<CreateOutcome>, Vec<NewEvent>)> {
        let existing = keyed_tasks(self, tasks).await?;
        let repeated = repeated_keys(tasks);
        let key = |t: &NewTask| Some((t.owner.clone(), t.idempotency_key.clone()?));
        let to_insert: Vec<&NewTask> = tasks
            .iter()
            .zip(&repeated)
            .filter(|(t, same)| {
                same.is_none() && !key(t).is_some_and(|k| existing.contains_key(&k))
            })
            .map(|(t, _)| t)
            .collect();
        let seq_of = insert(self, &to_insert).await?;
        let mut created = create_outcomes(tasks, &repeated, |t| {
            if let Some(found) = key(t).and_then(|k| existing.get(&k)) {
                return Ok(CreateOutcome::Existing(found.clone()));
            }
            let (seq, fair_key) = *seq_of
                .get(&t.id)
                .ok_or_else(|| StoreError::Database(format!("task {} was not inserted", t.id)))?;
            Ok(CreateOutcome::Created(task_from_new(t, seq, fair_key)))
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

/// The stored tasks with the (owner, key) of one of `tasks`, by (owner, key).
async fn keyed_tasks(
    w: &mut Writer,
    tasks: &[NewTask],
) -> StoreResult<HashMap<(String, String), Task>> {
    let keyed: Vec<(&str, &str)> = tasks
        .iter()
        .filter_map(|t| Some((t.owner.as_str(), t.idempotency_key.as_deref()?)))
        .collect();
    let mut existing: HashMap<(String, String), Task> = HashMap::new();
    for chunk in keyed.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT ");
        qb.push(
            task_columns!()
                .split(", ")
                .map(|c| format!("tasks.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        qb.push(" FROM (");
        qb.push_values(chunk, |mut b, (owner, key)| {
            b.push_bind(owner.to_string()).push_bind(key.to_string());
        });
        qb.push(KEYED_TASKS_JOIN);
        for row in qb.build().fetch_all(&mut w.conn).await.map_err(db_err)? {
            let t = task_from_row(&row)?;
            if let Some(k) = t.idempotency_key.clone() {
                existing.insert((t.owner.clone(), k), t);
            }
        }
    }
    Ok(existing)
}

/// The fair key of each task (see [`Task::fair_key`]), in order: a group's tasks take
/// consecutive places from its base.
async fn fair_keys(w: &mut Writer, tasks: &[&NewTask]) -> StoreResult<Vec<i64>> {
    let mut next: HashMap<(&str, &str), i64> = HashMap::new();
    let mut keys = Vec::with_capacity(tasks.len());
    for t in tasks {
        let group = (t.owner.as_str(), t.group_key.as_deref().unwrap_or(""));
        let key = match next.get(&group) {
            Some(k) => *k,
            None => {
                let row = sqlx::query(FAIR_BASE)
                    .bind(group.0)
                    .bind(group.1)
                    .fetch_one(&mut w.conn)
                    .await
                    .map_err(db_err)?;
                row.int("base")?
            }
        };
        next.insert(group, key + 1);
        keys.push(key);
    }
    Ok(keys)
}

/// Inserts the tasks; returns the number and fair key each got.
async fn insert(w: &mut Writer, tasks: &[&NewTask]) -> StoreResult<HashMap<TaskId, (i64, i64)>> {
    let mut seq_of: HashMap<TaskId, (i64, i64)> = HashMap::with_capacity(tasks.len());
    let keys = fair_keys(w, tasks).await?;
    let fair_of: HashMap<TaskId, i64> = tasks.iter().map(|t| t.id).zip(keys).collect();
    for chunk in tasks.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(INSERT_TASKS);
        qb.push_values(chunk, |mut b, t| {
            let arguments = payload::arguments(&t.arguments);
            b.push_bind(t.id.to_string())
                .push_bind(t.tool.clone())
                .push_bind(arguments.json)
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
                .push_bind(t.step.as_ref().map(|s| s.step_id.clone()))
                .push_bind(t.expires_at.map(|e| e.as_millis()))
                .push_bind(t.trace_parent.clone())
                .push_bind(t.group_key.clone().unwrap_or_default())
                .push_bind(fair_of[&t.id])
                .push_bind(arguments.zstd);
        });
        qb.push(INSERT_TASKS_END);
        for row in qb.build().fetch_all(&mut w.conn).await.map_err(db_err)? {
            let id = row.task_id("id")?;
            seq_of.insert(id, (row.int("seq")?, fair_of[&id]));
        }
    }
    Ok(seq_of)
}

/// See [`Store::purge_finished`](crate::Store::purge_finished).
pub(super) async fn purge_finished(
    w: &mut Writer,
    before: Timestamp,
    now: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let mut ids: Vec<(i64, String)> = sqlx::query_as(EXPIRED_TASKS)
        .bind(now.as_millis())
        .bind(i64::from(limit))
        .fetch_all(&mut w.conn)
        .await
        .map_err(db_err)?;
    let left = u64::from(limit).saturating_sub(ids.len() as u64);
    if left > 0 {
        let past: Vec<(i64, String)> = sqlx::query_as(PURGEABLE_TASKS)
            .bind(before.as_millis())
            .bind(left as i64)
            .fetch_all(&mut w.conn)
            .await
            .map_err(db_err)?;
        ids.extend(past);
    }
    delete_tasks(w, &ids).await?;
    // A workflow and its steps are one decision: while the workflow can be retried its
    // completed steps keep their results (a retry must not run them again). It goes, with
    // every step, once it has been over for the retention period.
    let workflows: Vec<String> = sqlx::query_scalar(PURGEABLE_WORKFLOWS)
        .bind(before.as_millis())
        .bind(i64::from(workflow_purge_batch(limit)))
        .fetch_all(&mut w.conn)
        .await
        .map_err(db_err)?;
    let mut deleted = ids.len() as u64;
    for id in workflows {
        let steps: Vec<(i64, String)> = sqlx::query_as(WORKFLOW_TASKS)
            .bind(&id)
            .fetch_all(&mut w.conn)
            .await
            .map_err(db_err)?;
        delete_tasks(w, &steps).await?;
        deleted += steps.len() as u64;
        sqlx::query(DELETE_WORKFLOW)
            .bind(&id)
            .execute(&mut w.conn)
            .await
            .map_err(db_err)?;
    }
    Ok(deleted)
}

/// Deletes tasks (by `seq`, `id`), their events and their logs.
async fn delete_tasks(w: &mut Writer, ids: &[(i64, String)]) -> StoreResult<()> {
    for chunk in ids.chunks(CHUNK) {
        for of in [DELETE_EVENTS_OF, DELETE_LOGS_OF] {
            let mut qb = QueryBuilder::<Sqlite>::new(of);
            let mut sep = qb.separated(", ");
            for (_, id) in chunk {
                sep.push_bind(id.clone());
            }
            qb.push(")");
            qb.build().execute(&mut w.conn).await.map_err(db_err)?;
        }
        let mut qb = QueryBuilder::<Sqlite>::new(DELETE_TASKS);
        let mut sep = qb.separated(", ");
        for (seq, _) in chunk {
            sep.push_bind(*seq);
        }
        qb.push(")");
        qb.build().execute(&mut w.conn).await.map_err(db_err)?;
    }
    Ok(())
}
