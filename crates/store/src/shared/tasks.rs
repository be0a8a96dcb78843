//! Tasks: storing, reading, listing, cancelling and retrying them, and reading their
//! events. Each dialect's statements are a [`TaskSql`]; storing differs beyond the
//! statements ([`TaskWrites`]).

use std::collections::HashMap;

use baton_core::event::NewEvent;
use baton_core::task::NewTask;
use baton_core::{EventKind, Task, TaskEvent, TaskId, TaskStatus, Timestamp};
use sqlx::{Executor, QueryBuilder};

use super::dialect::{Bind, Dialect, Tx, execute, fetch_all, fetch_optional};
use super::events::{created_event, step_data};
use super::filters::push_task_filters;
use super::rows::{event_from_row, task_from_row};
use crate::{
    CancelOutcome, CreateOutcome, RescheduleOutcome, RetryOutcome, StoreError, StoreResult,
    TaskQuery,
};

/// The task statements of a dialect. Parameters are numbered as PostgreSQL numbers them.
pub(crate) trait TaskSql: Dialect {
    /// The task columns of task `$1`.
    const GET_TASK: &'static str;
    /// The same, the row locked for the rest of the transaction (where the dialect locks
    /// rows).
    const LOCK_TASK: &'static str;
    /// The task columns of every task, to be followed by `AND` conditions.
    const LIST_TASKS: &'static str;
    /// The events of task `$1` after number `$2`, oldest first, at most `$3`.
    const TASK_EVENTS: &'static str;
    /// Pending task `$2` becomes `cancelled` at `$1`.
    const CANCEL_PENDING: &'static str;
    /// Running task `$2`'s cancellation is requested at `$1`.
    const FLAG_CANCEL: &'static str;
    /// Task `$2` becomes `pending` again at `$1`, its attempts and results reset.
    const RESET_FOR_RETRY: &'static str;
    /// Task `$4` gets priority `$2` and is due at `$3`, changed at `$1`.
    const RESCHEDULE: &'static str;
}

/// The task writes whose Rust differs between the backends.
pub(crate) trait TaskWrites: Tx {
    /// Stores new tasks (never an empty batch); their `created` events are returned for
    /// the caller to append (so a caller doing more in the same transaction appends all
    /// its events at once). The outcomes come from [`create_outcomes`].
    async fn insert_tasks(
        &mut self,
        tasks: &[NewTask],
    ) -> StoreResult<(Vec<CreateOutcome>, Vec<NewEvent>)>;
}

pub(crate) async fn get_task<'c, D: TaskSql>(
    db: impl Executor<'c, Database = D>,
    id: TaskId,
) -> StoreResult<Option<Task>> {
    let query = sqlx::query(D::GET_TASK).bind(D::id(id));
    fetch_optional(db, query, task_from_row).await
}

/// The task, locked for the rest of the transaction (where the dialect locks rows).
pub(crate) async fn lock_task<T: Tx<Db: TaskSql>>(
    tx: &mut T,
    id: TaskId,
) -> StoreResult<Option<Task>> {
    let query = sqlx::query(T::Db::LOCK_TASK).bind(T::Db::id(id));
    fetch_optional(tx.exec(), query, task_from_row).await
}

pub(crate) async fn list_tasks<'c, D: TaskSql>(
    db: impl Executor<'c, Database = D>,
    q: &TaskQuery,
) -> StoreResult<Vec<Task>>
where
    String: Bind<D>,
    &'static str: Bind<D>,
    i64: Bind<D>,
{
    let mut qb = QueryBuilder::<D>::new(D::LIST_TASKS);
    push_task_filters(&mut qb, q, D::id);
    fetch_all(db, qb.build(), task_from_row).await
}

pub(crate) async fn task_events<'c, D: TaskSql>(
    db: impl Executor<'c, Database = D>,
    id: TaskId,
    after_seq: i64,
    limit: u32,
) -> StoreResult<Vec<TaskEvent>>
where
    i64: Bind<D>,
{
    let query = sqlx::query(D::TASK_EVENTS)
        .bind(D::id(id))
        .bind(after_seq)
        .bind(i64::from(limit));
    fetch_all(db, query, event_from_row).await
}

/// Runs one of the task updates that take a time and a task.
async fn update_task<T: Tx<Db: TaskSql>>(
    tx: &mut T,
    sql: &'static str,
    now: Timestamp,
    id: TaskId,
) -> StoreResult<()>
where
    i64: Bind<T::Db>,
{
    let query = sqlx::query(sql).bind(now.as_millis()).bind(T::Db::id(id));
    execute(tx.exec(), query).await?;
    Ok(())
}

/// Stores new tasks (none for an empty batch); their `created` events are returned for
/// the caller to append.
pub(crate) async fn insert_tasks<T: TaskWrites>(
    tx: &mut T,
    tasks: &[NewTask],
) -> StoreResult<(Vec<CreateOutcome>, Vec<NewEvent>)> {
    if tasks.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    tx.insert_tasks(tasks).await
}

/// Stores new tasks and appends their `created` events.
pub(crate) async fn create_tasks<T: TaskWrites>(
    tx: &mut T,
    tasks: &[NewTask],
) -> StoreResult<(Vec<CreateOutcome>, Vec<TaskEvent>)> {
    let (outcomes, events) = insert_tasks(tx, tasks).await?;
    Ok((outcomes, tx.insert_events(events).await?))
}

/// A task just stored.
pub(crate) fn task_from_new(t: &NewTask, seq: i64, fair_key: i64) -> Task {
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
        expires_at: t.expires_at,
        trace_parent: t.trace_parent.clone(),
        group_key: t.group_key.clone(),
        fair_key,
        cache_key: None,
        cached_from: None,
        follows: None,
    }
}

/// For each item of a batch, the earlier item with the same owner and idempotency key:
/// a later item repeating a key becomes that item's task, and is not stored.
pub(crate) fn repeated_keys(tasks: &[NewTask]) -> Vec<Option<usize>> {
    let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let key = t.idempotency_key.as_deref()?;
            let first = *first_with_key.entry((t.owner.as_str(), key)).or_insert(i);
            (first != i).then_some(first)
        })
        .collect()
}

/// The outcome of each item of a batch, in order, and the `created` events of the tasks
/// stored: an item repeating an earlier one's key (`repeated`, from [`repeated_keys`])
/// gets that item's task, and `stored` says what became of the others. Fails, for the
/// whole batch, when a key names a different request (see [`check_idempotent`]).
pub(crate) fn create_outcomes(
    tasks: &[NewTask],
    repeated: &[Option<usize>],
    mut stored: impl FnMut(&NewTask) -> StoreResult<CreateOutcome>,
) -> StoreResult<(Vec<CreateOutcome>, Vec<NewEvent>)> {
    let mut outcomes: Vec<CreateOutcome> = Vec::with_capacity(tasks.len());
    let mut events = Vec::new();
    for (t, same) in tasks.iter().zip(repeated) {
        let outcome = match same {
            Some(j) => CreateOutcome::Existing(outcomes[*j].task().clone()),
            None => stored(t)?,
        };
        if matches!(outcome, CreateOutcome::Created(_)) {
            events.push(created_event(t));
        }
        outcomes.push(outcome);
    }
    check_idempotent(tasks, &outcomes)?;
    Ok((outcomes, events))
}

/// An idempotency key names one request: a task stored under a key used before must be
/// the same call (tool and arguments), or the whole write is refused. Checked inside the
/// transaction, so a refused batch stores none of its tasks.
fn check_idempotent(tasks: &[NewTask], outcomes: &[CreateOutcome]) -> StoreResult<()> {
    for (t, o) in tasks.iter().zip(outcomes) {
        if let CreateOutcome::Existing(found) = o
            && (found.tool != t.tool || found.arguments != t.arguments)
        {
            return Err(StoreError::Conflict(format!(
                "idempotency key `{}` was already used for a different request (task {}, tool `{}`)",
                t.idempotency_key.as_deref().unwrap_or_default(),
                found.id,
                found.tool
            )));
        }
    }
    Ok(())
}

/// Cancels a pending task at once, or records a cancellation request for a running one.
pub(crate) async fn request_cancel<T: Tx<Db: TaskSql>>(
    tx: &mut T,
    id: TaskId,
    now: Timestamp,
) -> StoreResult<CancelOutcome>
where
    i64: Bind<T::Db>,
{
    let Some(mut task) = lock_task(tx, id).await? else {
        return Ok(CancelOutcome::NotFound);
    };
    let outcome = match task.status {
        TaskStatus::Pending => {
            update_task(tx, T::Db::CANCEL_PENDING, now, id).await?;
            task.status = TaskStatus::Cancelled;
            task.cancel_requested = true;
            task.completed_at = Some(now);
            task.updated_at = now;
            let mut ev = NewEvent::new(id, now, EventKind::Cancelled, TaskStatus::Cancelled);
            ev.message = Some("cancelled before it started".into());
            let ev = tx.insert_events(vec![ev]).await?.remove(0);
            CancelOutcome::Cancelled(task, ev)
        }
        TaskStatus::Running | TaskStatus::InputRequired if task.cancel_requested => {
            CancelOutcome::AlreadyRequested(task)
        }
        TaskStatus::Running | TaskStatus::InputRequired => {
            update_task(tx, T::Db::FLAG_CANCEL, now, id).await?;
            task.cancel_requested = true;
            task.updated_at = now;
            let mut ev = NewEvent::new(id, now, EventKind::CancelRequested, task.status);
            ev.attempt = Some(task.attempt);
            let ev = tx.insert_events(vec![ev]).await?.remove(0);
            CancelOutcome::Requested(task, ev)
        }
        _ => CancelOutcome::AlreadyFinal(task),
    };
    Ok(outcome)
}

/// Gives a pending task a new priority and/or due time.
pub(crate) async fn reschedule<T: Tx<Db: TaskSql>>(
    tx: &mut T,
    id: TaskId,
    priority: Option<i32>,
    run_at: Option<Timestamp>,
    now: Timestamp,
) -> StoreResult<RescheduleOutcome>
where
    i64: Bind<T::Db>,
{
    let Some(mut task) = lock_task(tx, id).await? else {
        return Ok(RescheduleOutcome::NotFound);
    };
    if task.status != TaskStatus::Pending {
        return Ok(RescheduleOutcome::NotPending(task));
    }
    let mut changes = Vec::new();
    if let Some(p) = priority
        && p != task.priority
    {
        changes.push(format!("priority {} to {p}", task.priority));
        task.priority = p;
    }
    if let Some(at) = run_at
        && at != task.run_at
    {
        changes.push(format!("due {} instead of {}", at, task.run_at));
        task.run_at = at;
    }
    let query = sqlx::query(T::Db::RESCHEDULE)
        .bind(now.as_millis())
        .bind(i64::from(task.priority))
        .bind(task.run_at.as_millis())
        .bind(T::Db::id(id));
    execute(tx.exec(), query).await?;
    task.updated_at = now;
    let mut ev = NewEvent::new(id, now, EventKind::Reprioritized, TaskStatus::Pending);
    ev.message = Some(if changes.is_empty() {
        "unchanged".into()
    } else {
        changes.join("; ")
    });
    let ev = tx.insert_events(vec![ev]).await?.remove(0);
    Ok(RescheduleOutcome::Rescheduled(task, ev))
}

/// Moves a failed or cancelled task back to `pending` with its attempts reset.
pub(crate) async fn retry_task<T: Tx<Db: TaskSql>>(
    tx: &mut T,
    id: TaskId,
    now: Timestamp,
) -> StoreResult<RetryOutcome>
where
    i64: Bind<T::Db>,
{
    let Some(mut task) = lock_task(tx, id).await? else {
        return Ok(RetryOutcome::NotFound);
    };
    if !matches!(task.status, TaskStatus::Failed | TaskStatus::Cancelled) {
        return Ok(RetryOutcome::NotRetryable(task));
    }
    update_task(tx, T::Db::RESET_FOR_RETRY, now, id).await?;
    let mut ev = NewEvent::new(id, now, EventKind::Retried, TaskStatus::Pending);
    ev.message = Some(format!("retried by hand after it {}", task.status));
    ev.data = step_data(task.step.as_ref());
    let ev = tx.insert_events(vec![ev]).await?.remove(0);
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
