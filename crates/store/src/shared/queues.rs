//! Queues: statistics, pausing, and the figures estimates are made from. Each dialect's
//! statements are a [`QueueSql`].

use std::collections::BTreeMap;

use baton_core::{TaskStatus, Timestamp};
use sqlx::{Executor, Pool};

use super::dialect::{Bind, Dialect, execute, fetch_all, fetch_one};
use super::rows::Columns;
use crate::{QueueStats, StoreResult};

/// The queue statements of a dialect. Parameters are numbered as PostgreSQL numbers them.
pub(crate) trait QueueSql: Dialect {
    /// `name, paused` of every queue with a setting, of owner `$1` (all owners when
    /// `NULL`).
    const PAUSED: &'static str;
    /// `queue, status, n`: tasks per queue and status, of owner `$1` (or all).
    const PER_STATUS: &'static str;
    /// `queue, n`: tasks per queue completed since `$1`, of owner `$2` (or all).
    const COMPLETED_SINCE: &'static str;
    /// `queue, oldest`: per queue, the earliest `run_at` of a task pending and due at `$1`,
    /// of owner `$2` (or all).
    const OLDEST_RUNNABLE: &'static str;
    /// Owner `$1`'s queue `$2` is paused or not (`$3`), since `$4`.
    const SET_PAUSED: &'static str;
    /// `ms`: the durations of tool `$1`'s most recent successful runs, newest first, at
    /// most `$2`.
    const RECENT_DURATIONS: &'static str;
    /// `n`: the tasks pending, running or waiting for input.
    const COUNT_ACTIVE: &'static str;
}

/// See [`Store::queue_stats`](crate::Store::queue_stats): one entry per queue that has a
/// setting or tasks, by name. The four counts are read on one connection.
pub(crate) async fn queue_stats<D: QueueSql>(
    pool: &Pool<D>,
    now: Timestamp,
    owner: Option<&str>,
) -> StoreResult<Vec<QueueStats>>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    i64: Bind<D>,
    Option<String>: Bind<D>,
{
    let owner = owner.map(str::to_string);
    let mut conn = pool.acquire().await.map_err(D::db_err)?;
    let mut stats: BTreeMap<String, QueueStats> = Default::default();
    let blank = |name: &str| QueueStats {
        name: name.to_string(),
        counts: TaskStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect(),
        ..Default::default()
    };
    let paused = |r: &D::Row| Ok((r.text("name")?, r.flag("paused")?));
    let query = sqlx::query(D::PAUSED).bind(owner.clone());
    for (name, paused) in fetch_all(&mut *conn, query, paused).await? {
        // Across owners (an admin's view), a queue is paused when any owner paused it.
        stats
            .entry(name.clone())
            .or_insert_with(|| blank(&name))
            .paused |= paused;
    }
    let counts = |r: &D::Row| Ok((r.text("queue")?, r.text("status")?, r.int("n")?));
    let query = sqlx::query(D::PER_STATUS).bind(owner.clone());
    for (queue, status, n) in fetch_all(&mut *conn, query, counts).await? {
        stats
            .entry(queue.clone())
            .or_insert_with(|| blank(&queue))
            .counts
            .insert(status, n as u64);
    }
    let completed = sqlx::query(D::COMPLETED_SINCE)
        .bind(now.as_millis() - 60_000)
        .bind(owner.clone());
    let per_queue = |r: &D::Row| Ok((r.text("queue")?, r.int("n")?));
    for (queue, n) in fetch_all(&mut *conn, completed, per_queue).await? {
        if let Some(s) = stats.get_mut(&queue) {
            s.completed_last_minute = n as u64;
        }
    }
    let oldest = sqlx::query(D::OLDEST_RUNNABLE)
        .bind(now.as_millis())
        .bind(owner);
    let per_queue = |r: &D::Row| Ok((r.text("queue")?, r.int("oldest")?));
    for (queue, at) in fetch_all(&mut *conn, oldest, per_queue).await? {
        if let Some(s) = stats.get_mut(&queue) {
            s.oldest_pending_run_at = Some(Timestamp::from_millis(at));
        }
    }
    Ok(stats.into_values().collect())
}

/// See [`Store::set_queue_paused`](crate::Store::set_queue_paused).
pub(crate) async fn set_queue_paused<'c, D: QueueSql>(
    db: impl Executor<'c, Database = D>,
    owner: &str,
    queue: &str,
    paused: bool,
    now: Timestamp,
) -> StoreResult<()>
where
    String: Bind<D>,
    bool: Bind<D>,
    i64: Bind<D>,
{
    let query = sqlx::query(D::SET_PAUSED)
        .bind(owner.to_string())
        .bind(queue.to_string())
        .bind(paused)
        .bind(now.as_millis());
    execute(db, query).await?;
    Ok(())
}

/// See [`Store::recent_durations`](crate::Store::recent_durations).
pub(crate) async fn recent_durations<'c, D: QueueSql>(
    db: impl Executor<'c, Database = D>,
    tool: &str,
    limit: u32,
) -> StoreResult<Vec<u64>>
where
    String: Bind<D>,
    i64: Bind<D>,
{
    let query = sqlx::query(D::RECENT_DURATIONS)
        .bind(tool.to_string())
        .bind(i64::from(limit));
    fetch_all(db, query, |r| Ok(r.int("ms")?.max(0) as u64)).await
}

/// See [`Store::count_active`](crate::Store::count_active).
pub(crate) async fn count_active<'c, D: QueueSql>(
    db: impl Executor<'c, Database = D>,
) -> StoreResult<u64> {
    let n = fetch_one(db, sqlx::query(D::COUNT_ACTIVE), |r| r.int("n")).await?;
    Ok(n as u64)
}
