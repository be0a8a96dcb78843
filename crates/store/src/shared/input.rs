//! Input requests: a running task's tool asks, a client answers. Each dialect's
//! statements are an [`InputSql`]; collecting the answers differs between the backends.

use baton_core::event::NewEvent;
use baton_core::{EventKind, TaskEvent, TaskId, TaskStatus, Timestamp};
use serde_json::Value;

use super::dialect::{Bind, Dialect, Tx, execute, fetch_optional};
use super::rows::Columns;
use super::tasks::{TaskSql, lock_task};
use crate::{InputOutcome, StoreResult};

/// The input statements of a dialect. Parameters are numbered as PostgreSQL numbers them.
pub(crate) trait InputSql: Dialect {
    /// Task `$3` becomes `input_required` with requests `$1` (JSON text) at `$2`, if `$4`
    /// is its current lease; returns its `attempt`.
    const ASK_FOR_INPUT: &'static str;
    /// Task `$3` is `running` again at `$2`, with responses `$1` (JSON text) stored for
    /// its tool.
    const ACCEPT_INPUT: &'static str;
}

/// See [`Store::set_input_required`](crate::Store::set_input_required).
pub(crate) async fn set_input_required<T: Tx<Db: InputSql>>(
    tx: &mut T,
    id: TaskId,
    token: i64,
    requests: &Value,
    now: Timestamp,
) -> StoreResult<Option<TaskEvent>>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
{
    let query = sqlx::query(T::Db::ASK_FOR_INPUT)
        .bind(requests.to_string())
        .bind(now.as_millis())
        .bind(T::Db::id(id))
        .bind(token);
    let Some(attempt) = fetch_optional(tx.exec(), query, |r| r.int("attempt")).await? else {
        return Ok(None);
    };
    let mut ev = NewEvent::new(id, now, EventKind::InputRequired, TaskStatus::InputRequired);
    ev.attempt = Some(attempt as u32);
    ev.data = Some(requests.clone());
    Ok(tx.insert_events(vec![ev]).await?.pop())
}

/// See [`Store::provide_input`](crate::Store::provide_input).
pub(crate) async fn provide_input<T: Tx<Db: InputSql + TaskSql>>(
    tx: &mut T,
    id: TaskId,
    responses: &Value,
    now: Timestamp,
) -> StoreResult<InputOutcome>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
{
    let Some(mut task) = lock_task(tx, id).await? else {
        return Ok(InputOutcome::NotFound);
    };
    if task.status != TaskStatus::InputRequired {
        return Ok(InputOutcome::NotWaiting(task));
    }
    let query = sqlx::query(T::Db::ACCEPT_INPUT)
        .bind(responses.to_string())
        .bind(now.as_millis())
        .bind(T::Db::id(id));
    execute(tx.exec(), query).await?;
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
    let ev = tx.insert_events(vec![ev]).await?.remove(0);
    Ok(InputOutcome::Accepted(task, ev))
}
