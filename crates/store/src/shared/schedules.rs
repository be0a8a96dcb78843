//! Schedules and the runs they made, written once for both dialects (the statements
//! use `$n` parameters, turned into the dialect's by [`query`](super::dialect::query)).

use baton_core::{TaskId, Timestamp};
use sqlx::Executor;

use super::dialect::{Bind, Dialect, Tx, execute, fetch_all, fetch_optional, query};
use super::rows::Columns;
use crate::{ScheduleRun, StoreError, StoreResult, StoredSchedule};

const COLUMNS: &str = "owner, name, cron, timezone, task, overlap, catch_up, paused, next_at, \
     last_at, last_task_id, created_at, updated_at";

fn decode<R: Columns>(r: &R) -> StoreResult<StoredSchedule> {
    let last_task_id = r
        .opt_text("last_task_id")?
        .map(|s| s.parse::<TaskId>())
        .transpose()
        .map_err(|e| StoreError::Decode(format!("schedule last_task_id: {e}")))?;
    Ok(StoredSchedule {
        owner: r.text("owner")?,
        name: r.text("name")?,
        cron: r.text("cron")?,
        timezone: r.text("timezone")?,
        task: r.text("task")?,
        overlap: r.text("overlap")?,
        catch_up: r.text("catch_up")?,
        paused: r.int("paused")? != 0,
        next_at: Timestamp::from_millis(r.int("next_at")?),
        last_at: r.opt_int("last_at")?.map(Timestamp::from_millis),
        last_task_id,
        created_at: Timestamp::from_millis(r.int("created_at")?),
        updated_at: Timestamp::from_millis(r.int("updated_at")?),
    })
}

/// Stores a new schedule; `false` when the owner has one of that name.
pub(crate) async fn insert<T: Tx>(tx: &mut T, s: &StoredSchedule) -> StoreResult<bool>
where
    String: Bind<T::Db>,
    Option<String>: Bind<T::Db>,
    i64: Bind<T::Db>,
    Option<i64>: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(&format!(
        "INSERT INTO schedules ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13) ON CONFLICT (owner, name) DO NOTHING"
    ));
    Ok(execute(tx.exec(), bind_all(q, s)).await? == 1)
}

fn bind_all<'q, D: Dialect>(
    q: sqlx::query::Query<'q, D, D::Arguments>,
    s: &StoredSchedule,
) -> sqlx::query::Query<'q, D, D::Arguments>
where
    String: Bind<D>,
    Option<String>: Bind<D>,
    i64: Bind<D>,
    Option<i64>: Bind<D>,
{
    q.bind(s.owner.clone())
        .bind(s.name.clone())
        .bind(s.cron.clone())
        .bind(s.timezone.clone())
        .bind(s.task.clone())
        .bind(s.overlap.clone())
        .bind(s.catch_up.clone())
        .bind(i64::from(s.paused))
        .bind(s.next_at.as_millis())
        .bind(s.last_at.map(Timestamp::as_millis))
        .bind(s.last_task_id.map(|id| id.to_string()))
        .bind(s.created_at.as_millis())
        .bind(s.updated_at.as_millis())
}

/// Replaces a schedule's definition (its runs and last fire stay); `false` when there is
/// none of that name.
pub(crate) async fn update<T: Tx>(tx: &mut T, s: &StoredSchedule) -> StoreResult<bool>
where
    String: Bind<T::Db>,
    Option<String>: Bind<T::Db>,
    i64: Bind<T::Db>,
    Option<i64>: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(
        "UPDATE schedules SET cron = $3, timezone = $4, task = $5, overlap = $6, \
         catch_up = $7, paused = $8, next_at = $9, updated_at = $10 \
         WHERE owner = $1 AND name = $2",
    )
    .bind(s.owner.clone())
    .bind(s.name.clone())
    .bind(s.cron.clone())
    .bind(s.timezone.clone())
    .bind(s.task.clone())
    .bind(s.overlap.clone())
    .bind(s.catch_up.clone())
    .bind(i64::from(s.paused))
    .bind(s.next_at.as_millis())
    .bind(s.updated_at.as_millis());
    Ok(execute(tx.exec(), q).await? == 1)
}

pub(crate) async fn get<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    owner: &str,
    name: &str,
) -> StoreResult<Option<StoredSchedule>>
where
    String: Bind<D>,
    D::Arguments: Default,
{
    let q = query::<D>(&format!(
        "SELECT {COLUMNS} FROM schedules WHERE owner = $1 AND name = $2"
    ))
    .bind(owner.to_string())
    .bind(name.to_string());
    fetch_optional(db, q, decode).await
}

/// Every schedule of `owner` (of everyone when `None`), by name.
pub(crate) async fn list<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    owner: Option<&str>,
) -> StoreResult<Vec<StoredSchedule>>
where
    Option<String>: Bind<D>,
    D::Arguments: Default,
{
    let q = query::<D>(&format!(
        "SELECT {COLUMNS} FROM schedules WHERE ($1 IS NULL OR owner = $1) ORDER BY owner, name"
    ))
    .bind(owner.map(str::to_string));
    fetch_all(db, q, decode).await
}

/// Deletes a schedule and its runs' record (not the tasks); `false` when there was none.
pub(crate) async fn delete<T: Tx>(tx: &mut T, owner: &str, name: &str) -> StoreResult<bool>
where
    String: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>("DELETE FROM schedule_runs WHERE owner = $1 AND name = $2")
        .bind(owner.to_string())
        .bind(name.to_string());
    execute(tx.exec(), q).await?;
    let q = query::<T::Db>("DELETE FROM schedules WHERE owner = $1 AND name = $2")
        .bind(owner.to_string())
        .bind(name.to_string());
    Ok(execute(tx.exec(), q).await? == 1)
}

/// Unpaused schedules whose next tick is at or before `now`, earliest first.
pub(crate) async fn due<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    now: Timestamp,
    limit: u32,
) -> StoreResult<Vec<StoredSchedule>>
where
    i64: Bind<D>,
    D::Arguments: Default,
{
    let q = query::<D>(&format!(
        "SELECT {COLUMNS} FROM schedules WHERE paused = 0 AND next_at <= $1 \
         ORDER BY next_at LIMIT $2"
    ))
    .bind(now.as_millis())
    .bind(i64::from(limit));
    fetch_all(db, q, decode).await
}

/// The earliest next tick of an unpaused schedule.
pub(crate) async fn next_at<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
) -> StoreResult<Option<Timestamp>>
where
    D::Arguments: Default,
{
    let q = query::<D>("SELECT min(next_at) AS next FROM schedules WHERE paused = 0");
    let next = fetch_optional(db, q, |r| r.opt_int("next")).await?;
    Ok(next.flatten().map(Timestamp::from_millis))
}

/// Moves a schedule's next tick from `from` to `to`, recording `fired` (the tick and the
/// task it made) when there is one; `false`, and nothing written, when its next tick is
/// no longer `from` (another process moved it, or it was changed).
pub(crate) async fn advance<T: Tx>(
    tx: &mut T,
    owner: &str,
    name: &str,
    from: Timestamp,
    to: Timestamp,
    fired: Option<ScheduleRun>,
    now: Timestamp,
) -> StoreResult<bool>
where
    String: Bind<T::Db>,
    Option<String>: Bind<T::Db>,
    i64: Bind<T::Db>,
    Option<i64>: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(
        "UPDATE schedules SET next_at = $3, last_at = coalesce($4, last_at), \
         last_task_id = coalesce($5, last_task_id), updated_at = $6 \
         WHERE owner = $1 AND name = $2 AND next_at = $7",
    )
    .bind(owner.to_string())
    .bind(name.to_string())
    .bind(to.as_millis())
    .bind(fired.map(|f| f.tick_at.as_millis()))
    .bind(fired.map(|f| f.task_id.to_string()))
    .bind(now.as_millis())
    .bind(from.as_millis());
    if execute(tx.exec(), q).await? == 0 {
        return Ok(false);
    }
    if let Some(f) = fired {
        let q = query::<T::Db>(
            "INSERT INTO schedule_runs (owner, name, tick_at, task_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (owner, name, tick_at) DO NOTHING",
        )
        .bind(owner.to_string())
        .bind(name.to_string())
        .bind(f.tick_at.as_millis())
        .bind(f.task_id.to_string());
        execute(tx.exec(), q).await?;
    }
    Ok(true)
}

/// The runs a schedule made, newest first.
pub(crate) async fn runs<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    owner: &str,
    name: &str,
    limit: u32,
) -> StoreResult<Vec<ScheduleRun>>
where
    String: Bind<D>,
    i64: Bind<D>,
    D::Arguments: Default,
{
    let q = query::<D>(
        "SELECT tick_at, task_id FROM schedule_runs WHERE owner = $1 AND name = $2 \
         ORDER BY tick_at DESC LIMIT $3",
    )
    .bind(owner.to_string())
    .bind(name.to_string())
    .bind(i64::from(limit));
    fetch_all(db, q, |r| {
        Ok(ScheduleRun {
            tick_at: Timestamp::from_millis(r.int("tick_at")?),
            task_id: r
                .text("task_id")?
                .parse()
                .map_err(|e| StoreError::Decode(format!("schedule run task_id: {e}")))?,
        })
    })
    .await
}
