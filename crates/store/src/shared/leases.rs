//! Giving leases back ([`Store::requeue_leases`](crate::Store::requeue_leases)): expired
//! leases rescued, or every lease of a worker handed back. A task whose interrupted run
//! counts and was its last attempt fails; the others are pending again.

use baton_core::event::NewEvent;
use baton_core::{EventKind, TaskError, TaskEvent, TaskId, TaskStatus, Timestamp};

use super::dialect::{Bind, Dialect, Tx, fetch_all};
use super::rows::{Columns, decode_err};
use crate::{LeaseSelector, Requeue, StoreResult};

/// A task under a lease, as [`LeaseSql`] statements read it.
pub(crate) struct Leased {
    pub(crate) seq: i64,
    pub(crate) id: TaskId,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) lease_owner: Option<String>,
}

impl Leased {
    /// From a row of `seq, id, attempt, max_attempts, lease_owner`.
    pub(crate) fn from_row<R: Columns>(r: &R) -> StoreResult<Leased> {
        Ok(Leased {
            seq: r.int("seq")?,
            id: r.task_id("id")?,
            attempt: r.int("attempt")? as u32,
            max_attempts: r.int("max_attempts")? as u32,
            lease_owner: r.opt_text("lease_owner")?,
        })
    }
}

/// What becomes of a leased task (by `seq`) that is given back.
pub(crate) struct Requeued {
    pub(crate) seq: i64,
    /// `Failed` (with `error`, as JSON) or `Pending`.
    pub(crate) status: TaskStatus,
    /// The attempt count the task keeps.
    pub(crate) attempt: u32,
    pub(crate) error: Option<String>,
}

/// The lease statements of a dialect.
pub(crate) trait LeaseSql: Dialect {
    /// `seq, id, attempt, max_attempts, lease_owner` of the tasks whose lease expired
    /// before `$1`, locked (where the dialect locks rows).
    const LEASES_EXPIRED_BEFORE: &'static str;
    /// The same, of the tasks whose lease `$1` holds.
    const LEASES_OF: &'static str;
}

/// The lease writes whose Rust differs between the backends.
pub(crate) trait LeaseWrites: Tx<Db: LeaseSql> {
    /// Clears the leases and applies what becomes of each task.
    async fn requeue(&mut self, tasks: &[Requeued], now: Timestamp) -> StoreResult<()>;
}

/// The leased tasks `selector` names.
async fn leased<T: Tx<Db: LeaseSql>>(
    tx: &mut T,
    selector: LeaseSelector<'_>,
) -> StoreResult<Vec<Leased>>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
{
    let query = match selector {
        LeaseSelector::ExpiredBefore(t) => {
            sqlx::query(T::Db::LEASES_EXPIRED_BEFORE).bind(t.as_millis())
        }
        LeaseSelector::Owner(o) => sqlx::query(T::Db::LEASES_OF).bind(o.to_string()),
    };
    fetch_all(tx.exec(), query, Leased::from_row).await
}

/// Gives leases back and appends an event per task.
pub(crate) async fn requeue_leases<T: LeaseWrites>(
    tx: &mut T,
    req: &Requeue<'_>,
) -> StoreResult<Vec<TaskEvent>>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
{
    let leased = leased(tx, req.selector).await?;
    if leased.is_empty() {
        return Ok(Vec::new());
    }
    let mut tasks = Vec::with_capacity(leased.len());
    let mut events = Vec::with_capacity(leased.len());
    for l in &leased {
        let (task, event) = requeued(l, req)?;
        tasks.push(task);
        events.push(event);
    }
    tx.requeue(&tasks, req.now).await?;
    tx.insert_events(events).await
}

/// What becomes of one leased task, and its event.
fn requeued(l: &Leased, req: &Requeue<'_>) -> StoreResult<(Requeued, NewEvent)> {
    let (attempt, max_attempts) = (l.attempt, l.max_attempts);
    let worker = l.lease_owner.as_deref().unwrap_or("unknown");
    if req.count_attempt && attempt >= max_attempts {
        let error = TaskError::new(
            "lease_expired",
            format!(
                "{} (worker {worker}); that was attempt {attempt} of {max_attempts}",
                req.message
            ),
            false,
        );
        let mut ev = NewEvent::new(l.id, req.now, EventKind::Failed, TaskStatus::Failed);
        ev.attempt = Some(attempt);
        ev.message = Some(error.message.clone());
        ev.data = serde_json::to_value(&error).ok();
        let task = Requeued {
            seq: l.seq,
            status: TaskStatus::Failed,
            attempt,
            error: Some(serde_json::to_string(&error).map_err(decode_err)?),
        };
        Ok((task, ev))
    } else {
        let new_attempt = if req.count_attempt {
            attempt
        } else {
            attempt.saturating_sub(1)
        };
        let mut ev = NewEvent::new(l.id, req.now, req.kind, TaskStatus::Pending);
        ev.attempt = Some(attempt);
        ev.message = Some(format!("{} (worker {worker}); queued again", req.message));
        let task = Requeued {
            seq: l.seq,
            status: TaskStatus::Pending,
            attempt: new_attempt,
            error: None,
        };
        Ok((task, ev))
    }
}
