//! Claims on SQLite. The writer holds the write lock for the whole claim, so limited
//! claims count running tasks without racing anyone.

use baton_core::{Task, Timestamp};
use sqlx::{QueryBuilder, Sqlite};

use super::error::db_err;
use super::writer::{CHUNK, Writer};
use crate::shared::claims::{Candidate, ClaimWrites, Round};
use crate::shared::rows::{Columns, task_columns, task_from_row};
use crate::{ClaimRequest, ConcurrencyLimit, RateLimit, StoreResult, ToolSelector};

// The statements.

const RUNNING_PER_TOOL: &str =
    "SELECT tool, count(*) AS n FROM tasks WHERE status = 'running' GROUP BY tool";

/// `SELECT columns` of the runnable tasks: pending, due, queue not paused. The partial
/// index is named because, left to itself, the planner prefers `tasks_status` and then
/// sorts every pending row on each claim (17 ms at 100k pending, against 2 ms).
fn push_runnable(qb: &mut QueryBuilder<Sqlite>, columns: &str, now: Timestamp) {
    qb.push(format!(
        "SELECT {columns} FROM tasks INDEXED BY tasks_pending \
         WHERE status = 'pending' AND follows IS NULL AND run_at <= "
    ))
    .push_bind(now.as_millis())
    .push(
        " AND NOT EXISTS (SELECT 1 FROM queue_settings q WHERE q.paused = 1 \
         AND q.owner = tasks.owner AND q.name = tasks.queue)",
    );
}

/// The tasks a concurrency limit covers.
fn push_selector(qb: &mut QueryBuilder<Sqlite>, sel: &ToolSelector) {
    match sel {
        ToolSelector::Tool(t) => {
            qb.push("tool = ").push_bind(t.clone());
        }
        ToolSelector::Prefix(p) => {
            qb.push("substr(tool, 1, ")
                .push_bind(p.chars().count() as i64)
                .push(") = ")
                .push_bind(p.clone());
        }
    }
}

const RUNNING_PER_GROUP: &str = "SELECT owner, group_key, count(*) AS n FROM tasks \
     WHERE status = 'running' GROUP BY owner, group_key";

const CLAIM_ORDER: &str = " ORDER BY priority DESC, fair_key, run_at, seq LIMIT ";

/// `UPDATE … WHERE seq IN (`, to be followed by the chosen rows and [`CLAIM_END`].
fn claim_update(req: &ClaimRequest<'_>) -> QueryBuilder<Sqlite> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "UPDATE tasks SET status = 'running', attempt = attempt + 1, started_at = ",
    );
    qb.push_bind(req.now.as_millis())
        .push(", updated_at = ")
        .push_bind(req.now.as_millis())
        .push(", progress = NULL, progress_message = NULL, lease_owner = ")
        .push_bind(req.owner.to_string())
        .push(", lease_token = ")
        .push_bind(req.token)
        .push(", lease_expires_at = ")
        .push_bind(req.lease_until.as_millis())
        // `+status`: look rows up by seq; an index on status would walk every pending row.
        .push(" WHERE +status = 'pending' AND seq IN (");
    qb
}

const CLAIM_END: &str = concat!(") RETURNING ", task_columns!());

impl ClaimWrites for Writer {
    async fn running_per_tool(&mut self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(RUNNING_PER_TOOL)
            .fetch_all(&mut self.conn)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((r.text("tool")?, r.int("n")?)))
            .collect()
    }

    async fn running_per_group(&mut self) -> StoreResult<Vec<(String, String, i64)>> {
        let rows = sqlx::query(RUNNING_PER_GROUP)
            .fetch_all(&mut self.conn)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((r.text("owner")?, r.text("group_key")?, r.int("n")?)))
            .collect()
    }

    async fn candidates(&mut self, round: &Round<'_>) -> StoreResult<Vec<Candidate>> {
        let mut qb = QueryBuilder::<Sqlite>::new("");
        push_runnable(&mut qb, "seq, tool, owner, group_key", round.now);
        if !round.excluded_groups.is_empty() {
            qb.push(" AND (owner, group_key) NOT IN (VALUES ");
            let mut sep = qb.separated(", ");
            for (owner, group) in round.excluded_groups {
                sep.push("(")
                    .push_bind_unseparated(owner.clone())
                    .push_unseparated(", ")
                    .push_bind_unseparated(group.clone())
                    .push_unseparated(")");
            }
            qb.push(")");
        }
        for sel in &round.excluded {
            qb.push(" AND NOT (");
            push_selector(&mut qb, sel);
            qb.push(")");
        }
        if !round.chosen.is_empty() {
            qb.push(" AND seq NOT IN (");
            let mut sep = qb.separated(", ");
            for s in round.chosen {
                sep.push_bind(*s);
            }
            qb.push(")");
        }
        qb.push(CLAIM_ORDER).push_bind(round.want as i64);
        let rows = qb.build().fetch_all(&mut self.conn).await.map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(Candidate {
                    seq: r.int("seq")?,
                    tool: r.text("tool")?,
                    owner: r.text("owner")?,
                    group_key: r.text("group_key")?,
                })
            })
            .collect()
    }

    async fn lease_chosen(
        &mut self,
        req: &ClaimRequest<'_>,
        chosen: &[i64],
    ) -> StoreResult<Vec<Task>> {
        let mut claimed: Vec<Task> = Vec::with_capacity(chosen.len());
        for chunk in chosen.chunks(CHUNK) {
            let mut qb = claim_update(req);
            let mut sep = qb.separated(", ");
            for s in chunk {
                sep.push_bind(*s);
            }
            qb.push(CLAIM_END);
            for row in qb.build().fetch_all(&mut self.conn).await.map_err(db_err)? {
                claimed.push(task_from_row(&row)?);
            }
        }
        Ok(claimed)
    }

    /// One statement.
    async fn lease_next(&mut self, req: &ClaimRequest<'_>) -> StoreResult<Vec<Task>> {
        let mut qb = claim_update(req);
        push_runnable(&mut qb, "seq", req.now);
        qb.push(CLAIM_ORDER)
            .push_bind(req.limit as i64)
            .push(CLAIM_END);
        let rows = qb.build().fetch_all(&mut self.conn).await.map_err(db_err)?;
        rows.iter().map(task_from_row).collect()
    }
}

/// A claim request the writer task can own (it outlives the caller's borrow).
pub(super) struct OwnedClaim {
    owner: String,
    limits: Vec<ConcurrencyLimit>,
    rates: Vec<RateLimit>,
    group_max: Option<u32>,
    limit: usize,
    now: Timestamp,
    lease_until: Timestamp,
    token: i64,
}

impl OwnedClaim {
    pub(super) fn new(req: &ClaimRequest<'_>) -> OwnedClaim {
        OwnedClaim {
            owner: req.owner.to_string(),
            limits: req.limits.to_vec(),
            rates: req.rates.to_vec(),
            group_max: req.group_max,
            limit: req.limit,
            now: req.now,
            lease_until: req.lease_until,
            token: req.token,
        }
    }

    pub(super) fn request(&self) -> ClaimRequest<'_> {
        ClaimRequest {
            owner: &self.owner,
            limit: self.limit,
            now: self.now,
            lease_until: self.lease_until,
            token: self.token,
            limits: &self.limits,
            rates: &self.rates,
            group_max: self.group_max,
        }
    }
}
