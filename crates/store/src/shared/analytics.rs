//! Analytics: aggregates of the tasks created in a window, grouped by one of their
//! columns and by tool, computed by the database in three scans run side by side on
//! connections of their own (counts and costs, duration histograms, a series of
//! finishes). The window is found through the task ids,
//! which are time-ordered (UUIDv7), so the primary index serves it.
//!
//! The statements are assembled from a few fixed pieces (the grouping column is one of
//! four names, never a caller's text); each dialect supplies its pieces as an
//! [`AnalyticsSql`].

use baton_core::TaskId;
use sqlx::{Executor, Pool};

use super::dialect::{Bind, Dialect, fetch_all};
use super::rows::Columns;
use crate::{
    AnalyticsCount, AnalyticsHistogram, AnalyticsKey, AnalyticsPoint, AnalyticsQuery,
    AnalyticsRows, DURATION_BOUNDS_MS, StoreResult,
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

/// `FROM tasks WHERE` the window and owner (parameters 1 to 3).
fn window<D: AnalyticsSql>(key: AnalyticsKey) -> String {
    let workflow = if key == AnalyticsKey::Workflow {
        " AND workflow_id IS NOT NULL"
    } else {
        ""
    };
    format!(
        " FROM tasks WHERE id >= {} AND id < {} AND ({} IS NULL OR owner = {}){workflow}",
        D::param(1),
        D::param(2),
        D::text_param(3),
        D::param(3),
    )
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
    let from = window::<D>(q.key);
    let (since, until) = (TaskId::first_at(q.since), TaskId::first_at(q.until));

    let cost = D::cost_field("usd");
    let counts_sql = format!(
        "SELECT {key} AS grp, tool, status, count(*) AS n, \
         {} AS retries, {} AS cost, count({cost}) AS costed, {} AS input_tokens, \
         {} AS output_tokens{from} GROUP BY {key}, tool, status",
        D::int("sum(CASE WHEN attempt > 1 THEN attempt - 1 ELSE 0 END)"),
        D::real(&format!("sum({cost})")),
        D::real(&format!("sum({})", D::cost_field("input_tokens"))),
        D::real(&format!("sum({})", D::cost_field("output_tokens"))),
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(counts_sql))
        .bind(D::id(since))
        .bind(D::id(until))
        .bind(q.owner.clone());
    let counts = fetch_all(pool, query, |r| {
        Ok(AnalyticsCount {
            group: r.opt_text("grp")?,
            tool: r.text("tool")?,
            status: r.text("status")?,
            n: r.int("n")? as u64,
            retries: r.opt_int("retries")?.unwrap_or(0) as u64,
            cost_usd: r.opt_real("cost")?.unwrap_or(0.0),
            costed: r.int("costed")? as u64,
            input_tokens: r.opt_real("input_tokens")?.unwrap_or(0.0),
            output_tokens: r.opt_real("output_tokens")?.unwrap_or(0.0),
        })
    });

    let wait = bucket_case("(CASE WHEN started_at > run_at THEN started_at - run_at ELSE 0 END)");
    let run = format!(
        "CASE WHEN completed_at IS NULL THEN -1 ELSE {} END",
        bucket_case("(completed_at - started_at)")
    );
    let hist_sql = format!(
        "SELECT {key} AS grp, tool, {} AS wb, {} AS rb, count(*) AS n{from} \
         AND started_at IS NOT NULL GROUP BY {key}, tool, wb, rb",
        D::int(&wait),
        D::int(&run),
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(hist_sql))
        .bind(D::id(since))
        .bind(D::id(until))
        .bind(q.owner.clone());
    let histograms = fetch_all(pool, query, |r| {
        let rb = r.int("rb")?;
        Ok(AnalyticsHistogram {
            group: r.opt_text("grp")?,
            tool: r.text("tool")?,
            wait_bucket: r.int("wb")? as usize,
            run_bucket: (rb >= 0).then_some(rb as usize),
            n: r.int("n")? as u64,
        })
    });

    let series_sql = format!(
        "SELECT {key} AS grp, tool, status, (completed_at - {}) / {} AS b, count(*) AS n{from} \
         AND completed_at IS NOT NULL GROUP BY {key}, tool, status, b",
        D::param(4),
        D::param(5),
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(series_sql))
        .bind(D::id(since))
        .bind(D::id(until))
        .bind(q.owner.clone())
        .bind(q.since.as_millis())
        .bind(q.bucket_ms.max(1));
    let series = fetch_all(pool, query, |r| {
        Ok(AnalyticsPoint {
            group: r.opt_text("grp")?,
            tool: r.text("tool")?,
            status: r.text("status")?,
            bucket: r.int("b")?,
            n: r.int("n")? as u64,
        })
    });
    // Three scans of the same rows, each on its own connection, at once.
    let (counts, histograms, series) = tokio::try_join!(counts, histograms, series)?;
    Ok(AnalyticsRows {
        counts,
        histograms,
        series,
    })
}
