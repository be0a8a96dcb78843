//! Analytics: what tasks did over a window, per tool, server, queue, principal or
//! workflow: counts by status, success rate, retries, wait and run percentiles, cost and
//! tokens, and finishes over time for charts. The store aggregates (from its per-minute
//! rollup and the tasks, see `baton_store::Store::analytics`; the maintenance holder
//! keeps the rollup, see [`Engine::fold_analytics`]); this module parses the request, merges the groups (a
//! server is the sum of its tools), prices calls and reads percentiles off the
//! histograms.

use std::collections::BTreeMap;
use std::time::Duration;

use baton_core::Timestamp;
use baton_core::submit::InvalidRequest;
use baton_store::{AnalyticsKey, AnalyticsQuery, AnalyticsRows, DURATION_BOUNDS_MS};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Engine, EngineError};

/// Longest window one request may cover.
const MAX_WINDOW: Duration = Duration::from_secs(400 * 24 * 3600);
/// Most points in a series.
const MAX_BUCKETS: u64 = 1000;
/// Points in a series when the request names no bucket width.
const DEFAULT_BUCKETS: u64 = 60;
/// Groups in an answer by default, and at most.
const DEFAULT_GROUPS: u32 = 100;
const MAX_GROUPS: u32 = 10_000;

/// What to aggregate: the query of `GET /v1/analytics`, the arguments of the MCP tool
/// `analytics`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsParams {
    /// Start of the window (tasks that finished at or after it, and open tasks created
    /// at or after it): RFC 3339, or a duration back from now such as `1h` or `7d`.
    /// Default: 24 hours ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// End of the window (exclusive), as `since`. Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// `tool` (default), `server`, `queue`, `principal` or `workflow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// Width of the series' points in seconds. Default: a sixtieth of the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_seconds: Option<u64>,
    /// Most groups in the answer, largest first (default 100, at most 10000); the
    /// totals count every group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub limit: Option<u32>,
}

/// Percentiles of a duration, in milliseconds, read off a histogram (exact to its
/// buckets: 1, 2, 5, 10, 20, 50… ms; linear within a bucket).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Finishes in one bucket of the series.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SeriesPoint {
    /// Start of the bucket.
    pub at: Timestamp,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// One group's figures (or all groups').
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GroupStats {
    /// The tool, server, queue, principal or workflow id; `*` for the totals.
    pub key: String,
    /// Tasks that finished in the window (a task retried by hand and finished again
    /// counts each time) and open tasks created in it.
    pub total: u64,
    /// Of them, by how they finished or, for open ones, by status now.
    pub counts: BTreeMap<String, u64>,
    /// Completed of those completed or failed; `null` when none finished so.
    pub success_rate: Option<f64>,
    /// Attempts beyond the first.
    pub retries: u64,
    /// From due to start (the last attempt) of the finished tasks; `null` when none had
    /// started.
    pub wait_ms: Option<Percentiles>,
    /// From start to end (the last attempt); `null` when none finished after starting.
    pub run_ms: Option<Percentiles>,
    /// As tools reported it (`_meta["baton/cost"].usd`), plus the configured price of
    /// finished calls that reported none.
    pub cost_usd: f64,
    pub input_tokens: f64,
    pub output_tokens: f64,
    /// Finished tasks the result cache answered (their calls' cost is not counted above)
    /// and calls of cached tools that ran.
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// What the cache saved: what the calls it answered from reported they cost, plus the
    /// configured price of those that reported none.
    pub cost_saved_usd: f64,
    /// Finishes over time, one point per bucket from `since`.
    pub series: Vec<SeriesPoint>,
}

/// The answer of `GET /v1/analytics` and the MCP tool `analytics`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AnalyticsView {
    pub since: Timestamp,
    pub until: Timestamp,
    pub group_by: String,
    pub bucket_seconds: f64,
    /// Every group together.
    pub totals: GroupStats,
    /// Largest first, at most `limit`.
    pub groups: Vec<GroupStats>,
    /// How many groups there were (more than `groups` holds when it was cut at `limit`).
    pub groups_total: u64,
}

/// A point in time given as RFC 3339 or as a duration back from `now`.
fn when(field: &str, v: &str, now: Timestamp) -> Result<Timestamp, InvalidRequest> {
    if let Ok(d) = humantime::parse_duration(v) {
        return Ok(now.saturating_sub(d));
    }
    Timestamp::parse_rfc3339(v).map_err(|e| {
        InvalidRequest::new(
            field,
            format!("`{v}` is neither RFC 3339 nor a duration such as 1h: {e}"),
        )
    })
}

/// The store's query for `p`, and the name of the grouping.
fn parse(
    p: &AnalyticsParams,
    now: Timestamp,
    owner: Option<String>,
) -> Result<(AnalyticsQuery, &'static str), InvalidRequest> {
    let until = match &p.until {
        Some(v) => when("until", v, now)?,
        None => now,
    };
    let since = match &p.since {
        Some(v) => when("since", v, now)?,
        None => until.saturating_sub(Duration::from_secs(24 * 3600)),
    };
    if since >= until {
        return Err(InvalidRequest::new("since", "must be before until"));
    }
    let window = until.millis_since(since);
    if u128::from(window) > MAX_WINDOW.as_millis() {
        return Err(InvalidRequest::new(
            "since",
            "the window is longer than 400 days",
        ));
    }
    let (key, name) = match p.group_by.as_deref().unwrap_or("tool") {
        "tool" => (AnalyticsKey::Tool, "tool"),
        "server" => (AnalyticsKey::Tool, "server"),
        "queue" => (AnalyticsKey::Queue, "queue"),
        "principal" => (AnalyticsKey::Owner, "principal"),
        "workflow" => (AnalyticsKey::Workflow, "workflow"),
        other => {
            return Err(InvalidRequest::new(
                "group_by",
                format!(
                    "unknown grouping `{other}`; one of tool, server, queue, principal, workflow"
                ),
            ));
        }
    };
    let bucket_ms = match p.bucket_seconds {
        Some(0) => return Err(InvalidRequest::new("bucket_seconds", "must be at least 1")),
        Some(s) => s.saturating_mul(1000),
        None => (window / DEFAULT_BUCKETS).max(1000),
    };
    if window.div_ceil(bucket_ms) > MAX_BUCKETS {
        return Err(InvalidRequest::new(
            "bucket_seconds",
            format!("the window would have more than {MAX_BUCKETS} points; use wider buckets"),
        ));
    }
    Ok((
        AnalyticsQuery {
            since,
            until,
            key,
            owner,
            bucket_ms: bucket_ms as i64,
        },
        name,
    ))
}

/// The value at quantile `q` of a histogram over [`DURATION_BOUNDS_MS`].
fn quantile(hist: &[u64], q: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    let target = q * total as f64;
    let mut seen = 0.0;
    for (i, n) in hist.iter().enumerate() {
        let n = *n as f64;
        if n > 0.0 && seen + n >= target {
            let lower = if i == 0 { 0 } else { DURATION_BOUNDS_MS[i - 1] } as f64;
            let upper = DURATION_BOUNDS_MS.get(i).map_or(lower, |u| *u as f64);
            return lower + (upper - lower) * ((target - seen) / n).clamp(0.0, 1.0);
        }
        seen += n;
    }
    0.0
}

fn percentiles(hist: &[u64]) -> Option<Percentiles> {
    (hist.iter().sum::<u64>() > 0).then(|| Percentiles {
        p50: quantile(hist, 0.50),
        p95: quantile(hist, 0.95),
        p99: quantile(hist, 0.99),
    })
}

/// Sums as rows arrive, per group.
#[derive(Default)]
struct Acc {
    counts: BTreeMap<String, u64>,
    retries: u64,
    cost_usd: f64,
    input_tokens: f64,
    output_tokens: f64,
    cache_hits: u64,
    cache_misses: u64,
    cost_saved_usd: f64,
    wait: Vec<u64>,
    run: Vec<u64>,
    series: BTreeMap<i64, [u64; 3]>,
}

impl Acc {
    fn finish(self, key: String, q: &AnalyticsQuery) -> GroupStats {
        let n = |s: &str| self.counts.get(s).copied().unwrap_or(0);
        let decided = n("completed") + n("failed");
        let points = (q.until.millis_since(q.since) as i64 + q.bucket_ms - 1) / q.bucket_ms;
        let series = (0..points)
            .map(|b| {
                let [completed, failed, cancelled] =
                    self.series.get(&b).copied().unwrap_or_default();
                SeriesPoint {
                    at: Timestamp::from_millis(q.since.as_millis() + b * q.bucket_ms),
                    completed,
                    failed,
                    cancelled,
                }
            })
            .collect();
        GroupStats {
            key,
            total: self.counts.values().sum(),
            success_rate: (decided > 0).then(|| n("completed") as f64 / decided as f64),
            counts: self.counts,
            retries: self.retries,
            wait_ms: percentiles(&self.wait),
            run_ms: percentiles(&self.run),
            cost_usd: self.cost_usd,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_hits: self.cache_hits,
            cache_misses: self.cache_misses,
            cost_saved_usd: self.cost_saved_usd,
            series,
        }
    }
}

impl Engine {
    /// Aggregates the tasks created in a window: of `owner`, or of every principal when
    /// `None` (admins).
    pub async fn analytics(
        &self,
        owner: Option<&str>,
        p: &AnalyticsParams,
    ) -> Result<AnalyticsView, EngineError> {
        let (q, name) = parse(p, self.now(), owner.map(str::to_string))?;
        let limit = match p.limit {
            Some(n) if n == 0 || n > MAX_GROUPS => {
                return Err(InvalidRequest::new(
                    "limit",
                    format!("must be between 1 and {MAX_GROUPS}"),
                )
                .into());
            }
            Some(n) => n,
            None => DEFAULT_GROUPS,
        };
        let rows = self.inner().store.analytics(&q).await?;
        Ok(self.assemble(rows, &q, name, limit as usize))
    }

    fn assemble(
        &self,
        rows: AnalyticsRows,
        q: &AnalyticsQuery,
        name: &str,
        limit: usize,
    ) -> AnalyticsView {
        let config = &self.inner().config;
        let key = |group: Option<String>, tool: &str| -> String {
            match name {
                "server" => baton_core::tool::split_qualified(tool, &config.separator)
                    .map_or(tool, |(s, _)| s)
                    .to_string(),
                _ => group.unwrap_or_default(),
            }
        };
        let buckets = DURATION_BOUNDS_MS.len() + 1;
        let mut groups: BTreeMap<String, Acc> = BTreeMap::new();
        let mut all = Acc::default();
        let blank = || Acc {
            wait: vec![0; buckets],
            run: vec![0; buckets],
            ..Acc::default()
        };
        all.wait = vec![0; buckets];
        all.run = vec![0; buckets];
        for c in rows.counts {
            let price = config.price_of(&c.tool).unwrap_or(0.0);
            let priced = if matches!(c.status.as_str(), "completed" | "failed") {
                // Calls answered from the cache were not made: they cost nothing.
                let made = c.n.saturating_sub(c.cache_hits);
                price * made.saturating_sub(c.costed) as f64
            } else {
                0.0
            };
            let saved = c.saved_usd + price * c.cache_hits.saturating_sub(c.saved_costed) as f64;
            for acc in [
                groups
                    .entry(key(c.group.clone(), &c.tool))
                    .or_insert_with(blank),
                &mut all,
            ] {
                *acc.counts.entry(c.status.clone()).or_default() += c.n;
                acc.retries += c.retries;
                acc.cost_usd += c.cost_usd + priced;
                acc.cache_hits += c.cache_hits;
                acc.cache_misses += c.cache_misses;
                acc.cost_saved_usd += saved;
                acc.input_tokens += c.input_tokens;
                acc.output_tokens += c.output_tokens;
                for (sum, n) in acc.wait.iter_mut().zip(&c.wait) {
                    *sum += n;
                }
                for (sum, n) in acc.run.iter_mut().zip(&c.run) {
                    *sum += n;
                }
            }
        }
        for s in rows.series {
            let slot = match s.status.as_str() {
                "completed" => 0,
                "failed" => 1,
                "cancelled" => 2,
                _ => continue,
            };
            for acc in [
                groups.entry(key(s.group, &s.tool)).or_insert_with(blank),
                &mut all,
            ] {
                acc.series.entry(s.bucket).or_default()[slot] += s.n;
            }
        }
        // Largest first; only the groups answered are finished (series built).
        let groups_total = groups.len() as u64;
        let mut groups: Vec<(String, Acc)> = groups.into_iter().collect();
        let size = |acc: &Acc| acc.counts.values().sum::<u64>();
        groups.sort_by(|(ka, a), (kb, b)| size(b).cmp(&size(a)).then_with(|| ka.cmp(kb)));
        groups.truncate(limit);
        let groups = groups
            .into_iter()
            .map(|(k, acc)| acc.finish(k, q))
            .collect();
        AnalyticsView {
            groups_total,
            since: q.since,
            until: q.until,
            group_by: name.to_string(),
            bucket_seconds: q.bucket_ms as f64 / 1000.0,
            totals: all.finish("*".into(), q),
            groups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let mut h = vec![0; DURATION_BOUNDS_MS.len() + 1];
        // 100 values in [10, 20) ms.
        h[4] = 100;
        assert_eq!(quantile(&h, 0.5), 15.0);
        assert_eq!(quantile(&h, 1.0), 20.0);
        // One slow outlier beyond the last bound.
        h[DURATION_BOUNDS_MS.len()] = 1;
        assert_eq!(quantile(&h, 1.0), 10_000_000.0);
        assert!(percentiles(&[0; 3]).is_none());
    }

    #[test]
    fn requests_are_checked() {
        let now = Timestamp::from_millis(1_000_000_000_000);
        let p = |since: &str, group: &str| AnalyticsParams {
            since: Some(since.into()),
            group_by: Some(group.into()),
            ..Default::default()
        };
        let (q, name) = parse(&p("1h", "server"), now, None).unwrap();
        assert_eq!(name, "server");
        assert_eq!(q.until.millis_since(q.since), 3_600_000);
        assert_eq!(q.bucket_ms, 60_000);
        let e = parse(&p("1h", "colour"), now, None).unwrap_err();
        assert_eq!(e.field, "group_by");
        let e = parse(&p("yesterday", "tool"), now, None).unwrap_err();
        assert_eq!(e.field, "since");
        let mut tiny = p("2h", "tool");
        tiny.bucket_seconds = Some(1);
        assert!(
            parse(&tiny, now, None)
                .unwrap_err()
                .message
                .contains("1000 points")
        );
        let mut backwards = p("1h", "tool");
        backwards.until = Some("2h".into());
        assert!(parse(&backwards, now, None).is_err());
    }
}
