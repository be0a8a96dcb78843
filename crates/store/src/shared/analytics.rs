//! Analytics: aggregates of what finished in a window, grouped by one of the tasks'
//! columns and by tool, plus the tasks created in the window that are still open.
//!
//! Finishes are read from a per-minute rollup (`analytics_minutes`) for the whole minutes
//! the maintenance holder has folded in ([`fold`]), and from the tasks themselves (through
//! the `completed_at` index) for the edges of the window and the minutes not folded yet,
//! so a day of a million tasks is a few thousand rollup rows. Series finer than a minute
//! are read from the tasks alone.
//!
//! The statements are assembled from a few fixed pieces (the grouping column is one of
//! four names, never a caller's text); each dialect supplies its pieces as an
//! [`AnalyticsSql`].

use baton_core::{TaskId, Timestamp};
use sqlx::{Executor, Pool};

use super::dialect::{Bind, Dialect, Tx, execute, fetch_all, fetch_one};
use super::rows::Columns;
use crate::{
    ANALYTICS_KEEP, AnalyticsCount, AnalyticsKey, AnalyticsPoint, AnalyticsQuery, AnalyticsRows,
    DURATION_BOUNDS_MS, StoreResult,
};

/// A dialect's pieces of the analytics statements.
pub(crate) trait AnalyticsSql: Dialect {
    /// Parameter `n` (`?n` or `$n`).
    fn param(n: u32) -> String;
    /// Parameter `n` as text that may be NULL, for `IS NULL` tests.
    fn text_param(n: u32) -> String;
    /// The number at `_meta["baton/cost"][field]` of a task's `result`, NULL when absent
    /// or not a number.
    fn cost_field(field: &str) -> String;
    /// An aggregate as a float.
    fn real(expr: &str) -> String;
    /// An aggregate as a 64-bit integer.
    fn int(expr: &str) -> String;
    /// What makes the statements of a transaction read one snapshot, when the dialect's
    /// transactions do not already (SQLite's read transactions do).
    const SNAPSHOT: Option<&'static str>;
}

/// The rollup's grain, in milliseconds.
const MINUTE: i64 = 60_000;
/// Buckets of a duration histogram: one per bound, and one for longer.
const BUCKETS: usize = DURATION_BOUNDS_MS.len() + 1;

fn floor_minute(ms: i64) -> i64 {
    ms.div_euclid(MINUTE) * MINUTE
}

fn ceil_minute(ms: i64) -> i64 {
    floor_minute(ms + MINUTE - 1)
}

fn column(key: AnalyticsKey) -> &'static str {
    match key {
        AnalyticsKey::Tool => "tool",
        AnalyticsKey::Queue => "queue",
        AnalyticsKey::Owner => "owner",
        AnalyticsKey::Workflow => "workflow_id",
    }
}

/// `CASE` giving the bucket (index into [`DURATION_BOUNDS_MS`]) of `ms`.
fn bucket_case(ms: &str) -> String {
    let mut case = String::from("CASE");
    for (i, b) in DURATION_BOUNDS_MS.iter().enumerate() {
        case.push_str(&format!(" WHEN {ms} < {b} THEN {i}"));
    }
    case.push_str(&format!(" ELSE {} END", DURATION_BOUNDS_MS.len()));
    case
}

/// The histogram columns, `w0…` (wait) then `r0…` (run).
fn histogram_columns() -> impl Iterator<Item = String> {
    (0..BUCKETS)
        .map(|i| format!("w{i}"))
        .chain((0..BUCKETS).map(|i| format!("r{i}")))
}

/// The tasks that finished in `[param a, param b)`, one row each with what the
/// aggregates read: the minute, the grouping columns, retries, cost, tokens and the
/// duration buckets (`wb`, `rb`; -1 for a task that never started).
fn finished<D: AnalyticsSql>(a: u32, b: u32) -> String {
    let wait = bucket_case("(CASE WHEN started_at > run_at THEN started_at - run_at ELSE 0 END)");
    let run = bucket_case("(completed_at - started_at)");
    // A result from the cache cost nothing: what its call reported is saved instead.
    let cost = D::cost_field("usd");
    format!(
        "SELECT ({MINUTE} * (completed_at / {MINUTE})) AS minute, completed_at, tool, queue, \
         owner, workflow_id, status, CASE WHEN attempt > 1 THEN attempt - 1 ELSE 0 END AS retries, \
         CASE WHEN cached_from IS NULL THEN {cost} END AS cost_usd, \
         CASE WHEN cached_from IS NULL THEN {} END AS input_tokens, \
         CASE WHEN cached_from IS NULL THEN {} END AS output_tokens, \
         CASE WHEN cached_from IS NULL THEN 0 ELSE 1 END AS hit, \
         CASE WHEN cache_key IS NOT NULL AND cached_from IS NULL THEN 1 ELSE 0 END AS miss, \
         CASE WHEN cached_from IS NOT NULL THEN {cost} END AS saved_usd, \
         CASE WHEN started_at IS NULL THEN -1 ELSE {wait} END AS wb, \
         CASE WHEN started_at IS NULL THEN -1 ELSE {run} END AS rb \
         FROM tasks WHERE completed_at >= {} AND completed_at < {}",
        D::cost_field("input_tokens"),
        D::cost_field("output_tokens"),
        D::param(a),
        D::param(b),
    )
}

/// The aggregates of rows of [`finished`], named as the rollup's columns.
fn aggregate_finished<D: AnalyticsSql>() -> String {
    let mut s = format!(
        "count(*) AS n, {} AS retries, {} AS cost_usd, count(cost_usd) AS costed, \
         {} AS input_tokens, {} AS output_tokens, {} AS cache_hits, {} AS cache_misses, \
         {} AS saved_usd, count(saved_usd) AS saved_costed",
        D::int("sum(retries)"),
        D::real("sum(cost_usd)"),
        D::real("sum(input_tokens)"),
        D::real("sum(output_tokens)"),
        D::int("sum(hit)"),
        D::int("sum(miss)"),
        D::real("sum(saved_usd)"),
    );
    for (prefix, col) in [("w", "wb"), ("r", "rb")] {
        for i in 0..BUCKETS {
            s.push_str(&format!(
                ", {} AS {prefix}{i}",
                D::int(&format!("sum(CASE WHEN {col} = {i} THEN 1 ELSE 0 END)"))
            ));
        }
    }
    s
}

/// The aggregates of rollup rows: the sums of their columns.
fn aggregate_rollup<D: AnalyticsSql>() -> String {
    let mut s = format!(
        "{} AS n, {} AS retries, {} AS cost_usd, {} AS costed, {} AS input_tokens, \
         {} AS output_tokens, {} AS cache_hits, {} AS cache_misses, {} AS saved_usd, \
         {} AS saved_costed",
        D::int("sum(n)"),
        D::int("sum(retries)"),
        D::real("sum(cost_usd)"),
        D::int("sum(costed)"),
        D::real("sum(input_tokens)"),
        D::real("sum(output_tokens)"),
        D::int("sum(cache_hits)"),
        D::int("sum(cache_misses)"),
        D::real("sum(saved_usd)"),
        D::int("sum(saved_costed)"),
    );
    for c in histogram_columns() {
        s.push_str(&format!(", {} AS {c}", D::int(&format!("sum({c})"))));
    }
    s
}

/// `AND` the owner asked for (parameter 3) and, when grouping by workflow, steps only.
fn filter<D: AnalyticsSql>(key: AnalyticsKey) -> String {
    let workflow = if key == AnalyticsKey::Workflow {
        " AND workflow_id IS NOT NULL"
    } else {
        ""
    };
    format!(
        " AND ({} IS NULL OR owner = {}){workflow}",
        D::text_param(3),
        D::param(3)
    )
}

/// A row of counts: with every aggregate of finished tasks, or (`finished` false, open
/// tasks) only the count.
fn decode_count<R: Columns>(r: &R, finished: bool) -> StoreResult<AnalyticsCount> {
    let mut count = AnalyticsCount {
        group: r.opt_text("grp")?,
        tool: r.text("tool")?,
        status: r.text("status")?,
        n: r.int("n")? as u64,
        retries: 0,
        cost_usd: 0.0,
        costed: 0,
        input_tokens: 0.0,
        output_tokens: 0.0,
        cache_hits: 0,
        cache_misses: 0,
        saved_usd: 0.0,
        saved_costed: 0,
        wait: vec![0; BUCKETS],
        run: vec![0; BUCKETS],
    };
    if finished {
        count.retries = r.opt_int("retries")?.unwrap_or(0) as u64;
        count.cost_usd = r.opt_real("cost_usd")?.unwrap_or(0.0);
        count.costed = r.opt_int("costed")?.unwrap_or(0) as u64;
        count.input_tokens = r.opt_real("input_tokens")?.unwrap_or(0.0);
        count.output_tokens = r.opt_real("output_tokens")?.unwrap_or(0.0);
        count.cache_hits = r.opt_int("cache_hits")?.unwrap_or(0) as u64;
        count.cache_misses = r.opt_int("cache_misses")?.unwrap_or(0) as u64;
        count.saved_usd = r.opt_real("saved_usd")?.unwrap_or(0.0);
        count.saved_costed = r.opt_int("saved_costed")?.unwrap_or(0) as u64;
        for i in 0..BUCKETS {
            count.wait[i] = r.int(&format!("w{i}"))?.max(0) as u64;
            count.run[i] = r.int(&format!("r{i}"))?.max(0) as u64;
        }
    }
    Ok(count)
}

fn decode_point<R: Columns>(r: &R) -> StoreResult<AnalyticsPoint> {
    Ok(AnalyticsPoint {
        group: r.opt_text("grp")?,
        tool: r.text("tool")?,
        status: r.text("status")?,
        bucket: r.int("b")?,
        n: r.int("n")? as u64,
    })
}

/// Where finishes come from: the rollup, or the tasks.
#[derive(Clone, Copy)]
enum Source {
    Rollup,
    Tasks,
}

pub(crate) async fn analytics<D: AnalyticsSql>(
    pool: &Pool<D>,
    q: &AnalyticsQuery,
) -> StoreResult<AnalyticsRows>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    i64: Bind<D>,
    Option<String>: Bind<D>,
{
    let key = column(q.key);
    let filter = filter::<D>(q.key);
    let (since, until) = (q.since.as_millis(), q.until.as_millis());

    // Every read in one snapshot: a task that finishes meanwhile is counted once, as
    // open or as finished, never as neither.
    let mut tx = pool.begin().await.map_err(D::db_err)?;
    if let Some(sql) = D::SNAPSHOT {
        sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .map_err(D::db_err)?;
    }
    // Whole minutes folded already come from the rollup, the rest from the tasks.
    let folded = fetch_one(
        &mut *tx,
        sqlx::query("SELECT until_ms FROM analytics_folded WHERE id = 1"),
        |r| r.int("until_ms"),
    )
    .await?;
    let mut ranges = Vec::new();
    let start = ceil_minute(since).min(until);
    let end = floor_minute(until).min(folded).max(start);
    if q.bucket_ms >= MINUTE && start < end {
        ranges.push((Source::Tasks, since, start));
        ranges.push((Source::Rollup, start, end));
        ranges.push((Source::Tasks, end, until));
    } else {
        ranges.push((Source::Tasks, since, until));
    }

    let mut rows = AnalyticsRows::default();
    for (source, from, to) in ranges {
        if from >= to {
            continue;
        }
        let (counts_sql, series_sql) = match source {
            Source::Rollup => (
                format!(
                    "SELECT {key} AS grp, tool, status, {} FROM analytics_minutes \
                     WHERE minute >= {} AND minute < {}{filter} GROUP BY {key}, tool, status",
                    aggregate_rollup::<D>(),
                    D::param(1),
                    D::param(2),
                ),
                format!(
                    "SELECT {key} AS grp, tool, status, (minute - {}) / {} AS b, {} AS n \
                     FROM analytics_minutes WHERE minute >= {} AND minute < {}{filter} \
                     GROUP BY {key}, tool, status, b",
                    D::param(4),
                    D::param(5),
                    D::int("sum(n)"),
                    D::param(1),
                    D::param(2),
                ),
            ),
            Source::Tasks => (
                format!(
                    "SELECT {key} AS grp, tool, status, {} FROM ({}) t WHERE true{filter} \
                     GROUP BY {key}, tool, status",
                    aggregate_finished::<D>(),
                    finished::<D>(1, 2),
                ),
                format!(
                    "SELECT {key} AS grp, tool, status, (completed_at - {}) / {} AS b, \
                     count(*) AS n FROM tasks WHERE completed_at >= {} AND completed_at < {}\
                     {filter} GROUP BY {key}, tool, status, b",
                    D::param(4),
                    D::param(5),
                    D::param(1),
                    D::param(2),
                ),
            ),
        };
        let query = sqlx::query(sqlx::AssertSqlSafe(counts_sql))
            .bind(from)
            .bind(to)
            .bind(q.owner.clone());
        rows.counts
            .extend(fetch_all(&mut *tx, query, |r| decode_count(r, true)).await?);
        let query = sqlx::query(sqlx::AssertSqlSafe(series_sql))
            .bind(from)
            .bind(to)
            .bind(q.owner.clone())
            .bind(since)
            .bind(q.bucket_ms.max(1));
        rows.series
            .extend(fetch_all(&mut *tx, query, decode_point).await?);
    }

    // Tasks created in the window that have not finished: by status now.
    let open_sql = format!(
        "SELECT {key} AS grp, tool, status, count(*) AS n FROM tasks \
         WHERE status IN ('pending', 'running', 'input_required') \
         AND id >= {} AND id < {}{filter} GROUP BY {key}, tool, status",
        D::param(1),
        D::param(2),
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(open_sql))
        .bind(D::id(TaskId::first_at(q.since)))
        .bind(D::id(TaskId::first_at(q.until)))
        .bind(q.owner.clone());
    rows.counts
        .extend(fetch_all(&mut *tx, query, |r| decode_count(r, false)).await?);
    // Read only: nothing to keep.
    tx.rollback().await.map_err(D::db_err)?;
    Ok(rows)
}

/// Folds the finishes of whole minutes before `upto` that are not folded yet into the
/// rollup, at most `max_minutes` of them (skipping minutes in which nothing finished),
/// and forgets rollup minutes older than [`ANALYTICS_KEEP`]. Returns the instant folded
/// up to. Each minute is folded once: the mark moves in the same transaction, and only
/// from where it was read (a concurrent fold finds it moved and does nothing).
pub(crate) async fn fold<T: Tx<Db: AnalyticsSql>>(
    tx: &mut T,
    upto: Timestamp,
    max_minutes: u32,
) -> StoreResult<Timestamp>
where
    i64: Bind<T::Db>,
{
    let from = fetch_one(
        tx.exec(),
        sqlx::query("SELECT until_ms FROM analytics_folded WHERE id = 1"),
        |r| r.int("until_ms"),
    )
    .await?;
    let end = floor_minute(upto.as_millis());
    if end <= from {
        return Ok(Timestamp::from_millis(from));
    }
    let first = fetch_one(
        tx.exec(),
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT min(completed_at) AS first FROM tasks WHERE completed_at >= {}",
            T::Db::param(1)
        )))
        .bind(from),
        |r| r.opt_int("first"),
    )
    .await?;
    let start = first.map_or(end, |f| floor_minute(f).max(from)).min(end);
    let to = start
        .saturating_add(i64::from(max_minutes.max(1)) * MINUTE)
        .min(end);
    let moved = execute(
        tx.exec(),
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE analytics_folded SET until_ms = {} WHERE id = 1 AND until_ms = {}",
            T::Db::param(1),
            T::Db::param(2)
        )))
        .bind(to)
        .bind(from),
    )
    .await?;
    if moved == 0 {
        // Another fold got here first.
        return Ok(Timestamp::from_millis(from));
    }
    if start < to {
        let columns = histogram_columns().collect::<Vec<_>>().join(", ");
        let insert = format!(
            "INSERT INTO analytics_minutes (minute, tool, queue, owner, workflow_id, status, n, \
             retries, cost_usd, costed, input_tokens, output_tokens, cache_hits, \
             cache_misses, saved_usd, saved_costed, {columns}) \
             SELECT minute, tool, queue, owner, workflow_id, status, {} FROM ({}) t \
             GROUP BY minute, tool, queue, owner, workflow_id, status",
            aggregate_finished::<T::Db>(),
            finished::<T::Db>(1, 2),
        );
        let q = sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(start)
            .bind(to);
        execute(tx.exec(), q).await?;
    }
    let forget = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM analytics_minutes WHERE minute < {}",
        T::Db::param(1)
    )))
    .bind(to.saturating_sub(ANALYTICS_KEEP.as_millis() as i64));
    execute(tx.exec(), forget).await?;
    Ok(Timestamp::from_millis(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_round_both_ways() {
        assert_eq!(floor_minute(119_999), 60_000);
        assert_eq!(ceil_minute(60_001), 120_000);
        assert_eq!(ceil_minute(60_000), 60_000);
        assert_eq!(floor_minute(-1), -60_000);
    }
}
