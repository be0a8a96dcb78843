//! The result cache, written once for both dialects (the statements use `$n` parameters,
//! turned into the dialect's by [`query`]).
//!
//! A task whose call may be cached carries its `cache_key`. When it is stored
//! ([`resolve`], in the transaction that inserts it), the newest completed call with the
//! same key that is still fresh answers it at once (`cached_from`); otherwise, if an
//! identical call is in flight, the new task follows it (`follows`: claims pass it by);
//! otherwise it is the call the next ones will follow. When a followed call ends
//! ([`settle`]), its followers complete with its result, or, if it failed or was
//! cancelled, the first of them is released to run and the others follow that one.
//! On PostgreSQL, storing and settling take a transaction-scoped advisory lock per key
//! ([`CacheSql::LOCK_KEY`]), so two nodes storing the same call at once see each other
//! and at most one of the calls runs.

use std::collections::BTreeSet;

use super::dialect::{Bind, Dialect, Tx, execute, fetch_all, fetch_optional, query};
use super::rows::Columns;
use super::tasks::{TaskSql, get_task};
use crate::{CreateOutcome, StoreResult};
use baton_core::event::NewEvent;
use baton_core::task::NewTask;
use baton_core::{EventKind, TaskEvent, TaskId, TaskStatus, Timestamp};

/// What only some dialects need for the cache.
pub(crate) trait CacheSql: Dialect {
    /// Takes a lock on key `$1` until the transaction ends (PostgreSQL); SQLite's single
    /// writer needs none.
    const LOCK_KEY: Option<&'static str>;
}

/// The newest completed call with key `$1` that completed at `$2` or later, and after
/// its tool's entries (or all entries) were last invalidated.
const FRESH_HIT: &str = "SELECT id FROM tasks WHERE cache_key = $1 AND status = 'completed' \
     AND completed_at >= $2 AND completed_at >= coalesce((SELECT max(i.at) \
         FROM cache_invalidations i WHERE i.tool IN (tasks.tool, '*')), 0) \
     ORDER BY completed_at DESC LIMIT 1";

/// The oldest call with key `$1` in flight, other than task `$2`.
const IN_FLIGHT: &str = "SELECT id FROM tasks WHERE cache_key = $1 AND follows IS NULL \
     AND status IN ('pending', 'running', 'input_required') AND id <> $2 ORDER BY seq LIMIT 1";

/// Task `$3` gets key `$1` and follows task `$2` (or none).
const SET_KEY: &str = "UPDATE tasks SET cache_key = $1, follows = $2 WHERE id = $3";

/// The pending followers of task `$1` complete at `$2` with its result; they are no
/// entries of the cache themselves (an entry is a call that ran).
const COMPLETE_FOLLOWERS: &str = "UPDATE tasks SET status = 'completed', \
     result = (SELECT s.result FROM tasks s WHERE s.id = $1), \
     result_zstd = (SELECT s.result_zstd FROM tasks s WHERE s.id = $1), cached_from = $1, follows = NULL, \
     cache_key = NULL, progress = 1.0, completed_at = $2, updated_at = $2 \
     WHERE follows = $1 AND status = 'pending' RETURNING id";

/// The pending followers of task `$1`, oldest first.
const FOLLOWERS: &str =
    "SELECT id FROM tasks WHERE follows = $1 AND status = 'pending' ORDER BY seq";

/// The pending followers of task `$1` follow task `$2` (or, for `$2` itself, nobody).
const REFOLLOW: &str = "UPDATE tasks SET follows = CASE WHEN id = $2 THEN NULL ELSE $2 END, \
     updated_at = $3 WHERE follows = $1 AND status = 'pending'";

/// The followed tasks that ended (or are gone) while tasks still follow them.
const ENDED_LEADERS: &str = "SELECT DISTINCT f.follows AS id FROM tasks f \
     LEFT JOIN tasks l ON l.id = f.follows \
     WHERE f.follows IS NOT NULL AND f.status = 'pending' \
       AND (l.id IS NULL OR l.status IN ('completed', 'failed', 'cancelled')) LIMIT $1";

/// The key of any pending follower of task `$1` (for a followed task that is gone).
const FOLLOWER_KEY: &str =
    "SELECT cache_key FROM tasks WHERE follows = $1 AND status = 'pending' LIMIT 1";

/// Calls of tool `$1` (`*`: of every tool) completed before `$2` answer no more.
const INVALIDATE: &str = "INSERT INTO cache_invalidations (tool, at) VALUES ($1, $2) \
     ON CONFLICT (tool) DO UPDATE SET at = excluded.at";

/// The entries of tool `$1` (`*`: of every tool) that completed since `$2` and are not
/// invalidated already.
const ENTRIES: &str = "SELECT count(*) AS n FROM tasks WHERE cache_key IS NOT NULL \
     AND status = 'completed' AND completed_at >= $2 AND ($1 = '*' OR tool = $1) \
     AND completed_at >= coalesce((SELECT max(i.at) FROM cache_invalidations i \
         WHERE i.tool IN (tasks.tool, '*')), 0)";

fn id_of<R: Columns>(r: &R) -> StoreResult<TaskId> {
    r.task_id("id")
}

async fn lock_key<T: Tx<Db: CacheSql>>(tx: &mut T, key: &str) -> StoreResult<()>
where
    String: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    if let Some(sql) = T::Db::LOCK_KEY {
        execute(tx.exec(), query::<T::Db>(sql).bind(key.to_string())).await?;
    }
    Ok(())
}

/// Gives the cacheable tasks just stored their place in the cache (see the module
/// docs): a fresh hit completes the task at once (its outcome and events say so), an
/// identical call in flight is followed, and otherwise the task is the call to follow.
/// Runs in the transaction that inserted them; tasks that were not created here
/// (idempotent repeats) are left alone.
pub(crate) async fn resolve<T: Tx<Db: CacheSql + TaskSql>>(
    tx: &mut T,
    tasks: &[NewTask],
    outcomes: &mut [CreateOutcome],
    events: &mut Vec<NewEvent>,
) -> StoreResult<()>
where
    String: Bind<T::Db>,
    Option<<T::Db as Dialect>::Id>: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let keys: BTreeSet<&str> = tasks
        .iter()
        .filter_map(|t| Some(t.cache.as_ref()?.key.as_str()))
        .collect();
    // In key order, so two writers locking overlapping keys never wait for each other
    // in a circle.
    for key in &keys {
        lock_key(tx, key).await?;
    }
    for (t, outcome) in tasks.iter().zip(outcomes.iter_mut()) {
        let (Some(cache), CreateOutcome::Created(task)) = (&t.cache, outcome) else {
            continue;
        };
        if task.id != t.id {
            continue;
        }
        let hit = match cache.fresh_since {
            Some(since) => {
                let q = query::<T::Db>(FRESH_HIT)
                    .bind(cache.key.clone())
                    .bind(since.as_millis());
                fetch_optional(tx.exec(), q, id_of).await?
            }
            None => None,
        };
        let leader = match hit {
            Some(hit) => Some(hit),
            None => {
                let q = query::<T::Db>(IN_FLIGHT)
                    .bind(cache.key.clone())
                    .bind(T::Db::id(t.id));
                fetch_optional(tx.exec(), q, id_of).await?
            }
        };
        let q = query::<T::Db>(SET_KEY)
            .bind(cache.key.clone())
            .bind(leader.map(T::Db::id))
            .bind(T::Db::id(t.id));
        execute(tx.exec(), q).await?;
        task.cache_key = Some(cache.key.clone());
        task.follows = leader;
        if let Some(source) = hit {
            let q = query::<T::Db>(COMPLETE_FOLLOWERS)
                .bind(T::Db::id(source))
                .bind(t.created_at.as_millis());
            fetch_all(tx.exec(), q, id_of).await?;
            let from = get_task(tx.exec(), source).await?;
            task.status = TaskStatus::Completed;
            task.result = from.and_then(|f| f.result);
            task.cached_from = Some(source);
            task.follows = None;
            task.cache_key = None;
            task.progress = Some(1.0);
            task.completed_at = Some(t.created_at);
            events.push(cached_event(t.id, source, t.created_at));
        }
    }
    Ok(())
}

/// The `completed` event of a task answered from the cache.
fn cached_event(id: TaskId, source: TaskId, at: Timestamp) -> NewEvent {
    let mut ev = NewEvent::new(id, at, EventKind::Completed, TaskStatus::Completed);
    ev.progress = Some(1.0);
    ev.message = Some(format!("answered from the result cache (task {source})"));
    ev.data = Some(serde_json::json!({ "cached_from": source.to_string() }));
    ev
}

/// Settles the followers of task `leader` once it has ended: completed, they complete
/// with its result; failed, cancelled or gone, the oldest is released to run and the
/// others follow it. Nothing happens while the task is still in flight. Returns the
/// events written (`completed` ones carry the result).
pub(crate) async fn settle<T: Tx<Db: CacheSql + TaskSql>>(
    tx: &mut T,
    leader: TaskId,
    now: Timestamp,
) -> StoreResult<Vec<TaskEvent>>
where
    String: Bind<T::Db>,
    Option<<T::Db as Dialect>::Id>: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let found = get_task(tx.exec(), leader).await?;
    let key = match &found {
        Some(t) if !t.status.is_final() => return Ok(Vec::new()),
        Some(t) if t.cache_key.is_some() => t.cache_key.clone(),
        _ => {
            let q = query::<T::Db>(FOLLOWER_KEY).bind(T::Db::id(leader));
            fetch_optional(tx.exec(), q, |r| r.opt_text("cache_key"))
                .await?
                .flatten()
        }
    };
    if let Some(key) = &key {
        lock_key(tx, key).await?;
    }
    match found {
        Some(t) if t.status == TaskStatus::Completed => {
            let q = query::<T::Db>(COMPLETE_FOLLOWERS)
                .bind(T::Db::id(leader))
                .bind(now.as_millis());
            let done = fetch_all(tx.exec(), q, id_of).await?;
            let events = done
                .into_iter()
                .map(|id| cached_event(id, leader, now))
                .collect();
            let mut events = tx.insert_events(events).await?;
            if let Some(result) = t.result {
                let result = std::sync::Arc::new(result);
                for ev in &mut events {
                    ev.result = Some(result.clone());
                }
            }
            Ok(events)
        }
        ended => {
            let q = query::<T::Db>(FOLLOWERS).bind(T::Db::id(leader));
            let followers = fetch_all(tx.exec(), q, id_of).await?;
            let Some(&first) = followers.first() else {
                return Ok(Vec::new());
            };
            let q = query::<T::Db>(REFOLLOW)
                .bind(T::Db::id(leader))
                .bind(T::Db::id(first))
                .bind(now.as_millis());
            execute(tx.exec(), q).await?;
            let why = match ended {
                Some(t) => format!(
                    "the identical call it waited for (task {leader}) {}",
                    t.status
                ),
                None => format!("the identical call it waited for (task {leader}) is gone"),
            };
            let mut ev = NewEvent::new(first, now, EventKind::Released, TaskStatus::Pending);
            ev.message = Some(format!("{why}; it runs itself"));
            tx.insert_events(vec![ev]).await
        }
    }
}

/// Settles up to `limit` followed tasks that ended (or are gone) while tasks still
/// follow them. They are settled where they end, normally; this finds the ones a crash,
/// or an end by another path (a lease rescue, a workflow's cancellation), left.
pub(crate) async fn settle_ended<T: Tx<Db: CacheSql + TaskSql>>(
    tx: &mut T,
    now: Timestamp,
    limit: u32,
) -> StoreResult<Vec<TaskEvent>>
where
    String: Bind<T::Db>,
    Option<<T::Db as Dialect>::Id>: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(ENDED_LEADERS).bind(i64::from(limit));
    let leaders = fetch_all(tx.exec(), q, id_of).await?;
    let mut events = Vec::new();
    for leader in leaders {
        events.extend(settle(tx, leader, now).await?);
    }
    Ok(events)
}

/// Calls of `tool` (of every tool for `None`) completed before `now` answer from the
/// cache no more. Returns how many entries that completed since `since` were dropped.
pub(crate) async fn invalidate<T: Tx<Db: CacheSql>>(
    tx: &mut T,
    tool: Option<&str>,
    now: Timestamp,
    since: Timestamp,
) -> StoreResult<u64>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let tool = tool.unwrap_or("*").to_string();
    let q = query::<T::Db>(ENTRIES)
        .bind(tool.clone())
        .bind(since.as_millis());
    let dropped = fetch_optional(tx.exec(), q, |r| r.int("n")).await?;
    let q = query::<T::Db>(INVALIDATE).bind(tool).bind(now.as_millis());
    execute(tx.exec(), q).await?;
    Ok(dropped.unwrap_or(0).max(0) as u64)
}
