//! The writes of a run under its lease: progress reports, finished runs, checkpoints. A
//! run is a task and its lease token; each write applies only while that lease is
//! current. The batch statements differ between the backends ([`RunWrites`]).

use std::collections::{HashMap, HashSet};

use baton_core::event::NewEvent;
use baton_core::policy::Transition;
use baton_core::{EventKind, TaskEvent, TaskId, TaskStatus, Timestamp};
use serde_json::Value;
use sqlx::Executor;

use super::dialect::{Bind, Dialect, Tx, execute};
use super::events::transition_event;
use super::rows::Columns;
use crate::{Finish, FinishOutcome, ProgressUpdate, StoreResult};

/// A task whose progress was recorded, as its row reads after the update.
pub(crate) struct Progressed {
    pub(crate) id: TaskId,
    pub(crate) attempt: u32,
    pub(crate) progress: Option<f64>,
    pub(crate) message: Option<String>,
}

impl Progressed {
    /// From a row of `id, attempt, progress, progress_message`.
    pub(crate) fn from_row<R: Columns>(r: &R) -> StoreResult<Progressed> {
        Ok(Progressed {
            id: r.task_id("id")?,
            attempt: r.int("attempt")? as u32,
            progress: r.opt_real("progress")?,
            message: r.opt_text("progress_message")?,
        })
    }
}

/// The run writes of a backend, inside one write transaction. A round touches a task at
/// most once (see [`rounds`]).
pub(crate) trait RunWrites: Tx {
    /// Applies the updates whose lease is current at the update's time.
    async fn progress_round(&mut self, round: &[&ProgressUpdate]) -> StoreResult<Vec<Progressed>>;

    /// Applies the finished runs whose lease is current at the item's time, and notes each
    /// applied run (task, token) with the task's attempt in `applied`.
    async fn finish_round(
        &mut self,
        round: &[&Finish],
        applied: &mut HashMap<(TaskId, i64), u32>,
    ) -> StoreResult<()>;
}

/// The run statements of a dialect. Parameters are numbered as PostgreSQL numbers them.
pub(crate) trait RunSql: Dialect {
    /// Task `$3` keeps checkpoint `$1` (JSON text), at `$2`, if `$4` is its current
    /// lease.
    const SAVE_CHECKPOINT: &'static str;
}

/// See [`Store::save_checkpoint`](crate::Store::save_checkpoint).
pub(crate) async fn save_checkpoint<'c, D: RunSql>(
    db: impl Executor<'c, Database = D>,
    id: TaskId,
    token: i64,
    checkpoint: &Value,
    now: Timestamp,
) -> StoreResult<bool>
where
    String: Bind<D>,
    i64: Bind<D>,
{
    let query = sqlx::query(D::SAVE_CHECKPOINT)
        .bind(checkpoint.to_string())
        .bind(now.as_millis())
        .bind(D::id(id))
        .bind(token);
    Ok(execute(db, query).await? == 1)
}

/// Records progress; returns the events written.
pub(crate) async fn record_progress<T: RunWrites>(
    tx: &mut T,
    updates: &[ProgressUpdate],
) -> StoreResult<Vec<TaskEvent>> {
    if updates.is_empty() {
        return Ok(Vec::new());
    }
    let mut events = Vec::with_capacity(updates.len());
    // The last update of a run wins; a stale run's update never displaces the current one's.
    for round in rounds(updates, |u| (u.id, u.token), true) {
        let by_id: HashMap<TaskId, &ProgressUpdate> = round.iter().map(|u| (u.id, *u)).collect();
        for p in tx.progress_round(&round).await? {
            let at = by_id.get(&p.id).map_or(Timestamp::ZERO, |u| u.at);
            let mut ev = NewEvent::new(p.id, at, EventKind::Progress, TaskStatus::Running);
            ev.attempt = Some(p.attempt);
            ev.progress = p.progress;
            ev.message = p.message;
            events.push(ev);
        }
    }
    tx.insert_events(events).await
}

/// Applies finished runs; the outcomes are in the order of `items`.
pub(crate) async fn finish<T: RunWrites>(
    tx: &mut T,
    items: &[Finish],
) -> StoreResult<Vec<FinishOutcome>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    // A run (task, token) is applied at most once; a stale run of a task and its current
    // run go to separate statements, so the stale one cannot push the current one out.
    let mut applied: HashMap<(TaskId, i64), u32> = HashMap::with_capacity(items.len());
    let rounds = rounds(items, |f| (f.id, f.token), false);
    for round in &rounds {
        tx.finish_round(round, &mut applied).await?;
    }
    let new_events: Vec<NewEvent> = rounds
        .iter()
        .flatten()
        .filter_map(|f| {
            let attempt = *applied.get(&(f.id, f.token))?;
            Some(transition_event(f.id, f.at, &f.transition, attempt))
        })
        .collect();
    let events = tx.insert_events(new_events).await?;
    Ok(finish_outcomes(items, &applied, events))
}

/// Items of a batch write grouped into rounds, each one statement that touches a task at
/// most once. A run is a task and its lease token: duplicates of one run are dropped (the
/// first or the last kept, as `keep_last` says), while runs of the same task under
/// different tokens (a stale run and the current one) go to different rounds, so the
/// current run's write is never dropped in favour of a stale one.
pub(crate) fn rounds<T>(
    items: &[T],
    run: impl Fn(&T) -> (TaskId, i64),
    keep_last: bool,
) -> Vec<Vec<&T>> {
    let mut seen = HashSet::with_capacity(items.len());
    let mut per_task: HashMap<TaskId, usize> = HashMap::with_capacity(items.len());
    let mut rounds: Vec<Vec<&T>> = Vec::new();
    let ordered: Box<dyn Iterator<Item = &T>> = if keep_last {
        Box::new(items.iter().rev())
    } else {
        Box::new(items.iter())
    };
    for item in ordered {
        let (task, token) = run(item);
        if !seen.insert((task, token)) {
            continue;
        }
        let n = per_task.entry(task).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(item);
        *n += 1;
    }
    rounds
}

/// The columns a finished run writes.
pub(crate) struct FinishColumns {
    pub(crate) result: Option<String>,
    /// The result compressed (see [`super::payload`]).
    pub(crate) result_zstd: Option<Vec<u8>>,
    pub(crate) error: Option<String>,
    /// When a retry is due.
    pub(crate) run_at: Option<i64>,
}

pub(crate) fn finish_columns(t: &Transition) -> FinishColumns {
    let mut c = FinishColumns {
        result: None,
        result_zstd: None,
        error: None,
        run_at: None,
    };
    match t {
        Transition::Complete { result } => {
            let stored = super::payload::result(result);
            c.result = Some(stored.json);
            c.result_zstd = stored.zstd;
        }
        Transition::Retry { run_at, error } => {
            c.error = serde_json::to_string(error).ok();
            c.run_at = Some(run_at.as_millis());
        }
        Transition::Fail { error } => c.error = serde_json::to_string(error).ok(),
        Transition::Cancel => {}
    }
    c
}

/// The outcome of each finish item, in order: `Applied` with its event for the first item
/// of each run that was applied (completions carry their result, so live waiters need not
/// read the task back), `LeaseLost` for the rest.
fn finish_outcomes(
    items: &[Finish],
    applied: &HashMap<(TaskId, i64), u32>,
    events: Vec<TaskEvent>,
) -> Vec<FinishOutcome> {
    // At most one event per task: only one run of a task holds its lease.
    let mut by_id: HashMap<TaskId, TaskEvent> =
        events.into_iter().map(|e| (e.task_id, e)).collect();
    items
        .iter()
        .map(|f| {
            if !applied.contains_key(&(f.id, f.token)) {
                return FinishOutcome::LeaseLost;
            }
            match by_id.remove(&f.id) {
                Some(mut ev) => {
                    if let Transition::Complete { result } = &f.transition {
                        ev.result = Some(std::sync::Arc::new(result.clone()));
                    }
                    FinishOutcome::Applied(ev)
                }
                None => FinishOutcome::LeaseLost,
            }
        })
        .collect()
}
