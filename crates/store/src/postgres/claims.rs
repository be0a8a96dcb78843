//! Claims on PostgreSQL. Candidates are picked with `FOR UPDATE SKIP LOCKED`: concurrent
//! claimers (threads or nodes) never get the same task and never wait for each other.
//! Claims with concurrency limits count running tasks, so they first take a
//! transaction-scoped advisory lock (one per schema): two limited claimers never count
//! the same free slot. Claims without limits never take it.

use baton_core::Task;
use sqlx::postgres::PgConnection;

use super::error::db_err;
use crate::shared::claims::{Candidate, ClaimWrites, Round};
use crate::shared::rows::{task_columns, task_from_row};
use crate::{ClaimRequest, StoreResult, ToolSelector};

/// First key of the advisory lock that serialises claims with concurrency limits (the
/// second is the hash of the schema, so Baton instances in different schemas of one
/// database do not wait for each other). Arbitrary, but fixed: every node must agree.
const CLAIM_LIMITS_LOCK: i32 = 0x6261_746e; // "batn"

// The statements.

/// The shared candidate filter of a claim: pending, due (`$1`), queue not paused. The
/// `ORDER BY … LIMIT` that follows it walks the partial index `tasks_pending`.
macro_rules! runnable {
    () => {
        "FROM tasks WHERE status = 'pending' AND follows IS NULL AND run_at <= $1 \
         AND NOT EXISTS (SELECT 1 FROM queue_settings q WHERE q.paused \
                         AND q.owner = tasks.owner AND q.name = tasks.queue)"
    };
}

/// What a claim writes into each claimed task; `$1` is `now`, `$2..$4` the lease.
macro_rules! claim_set {
    () => {
        "UPDATE tasks SET status = 'running', attempt = attempt + 1, started_at = $1, \
         updated_at = $1, progress = NULL, progress_message = NULL, lease_owner = $2, \
         lease_token = $3, lease_expires_at = $4"
    };
}

/// Held until the transaction ends, after its claims are visible to the next holder.
const LOCK_LIMITS: &str = "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))";

const RUNNING_PER_TOOL: &str =
    "SELECT tool, count(*) FROM tasks WHERE status = 'running' GROUP BY tool";

const RUNNING_PER_GROUP: &str = "SELECT owner, group_key, count(*) FROM tasks \
     WHERE status = 'running' GROUP BY owner, group_key";

/// Candidates are locked (`SKIP LOCKED`) as they are read, so no concurrent claimer,
/// limited or not, can take them; the ones passed over stay locked until commit, which
/// only makes other claimers skip them for that long.
const CANDIDATES: &str = concat!(
    "SELECT seq, tool, owner, group_key ",
    runnable!(),
    " AND tool <> ALL($2::text[]) \
     AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) AS p(prefix) WHERE starts_with(tasks.tool, p.prefix)) \
     AND seq <> ALL($4::bigint[]) \
     AND NOT EXISTS (SELECT 1 FROM unnest($6::text[], $7::text[]) AS g(owner, group_key) \
                     WHERE g.owner = tasks.owner AND g.group_key = tasks.group_key) \
     ORDER BY priority DESC, fair_key, run_at, seq LIMIT $5 FOR UPDATE SKIP LOCKED"
);

const LEASE_CHOSEN: &str = concat!(
    claim_set!(),
    " WHERE seq = ANY($5) AND status = 'pending' RETURNING ",
    task_columns!()
);

/// One statement: `WITH c AS (SELECT … FOR UPDATE SKIP LOCKED) UPDATE … FROM c RETURNING …`.
const LEASE_NEXT: &str = concat!(
    "WITH c AS (SELECT seq AS claim_seq ",
    runnable!(),
    " ORDER BY priority DESC, fair_key, run_at, seq LIMIT $5 FOR UPDATE SKIP LOCKED) ",
    claim_set!(),
    " FROM c WHERE tasks.seq = c.claim_seq AND tasks.status = 'pending' RETURNING ",
    task_columns!()
);

impl ClaimWrites for PgConnection {
    /// Limited claims count running tasks; only one at a time may count, or two nodes
    /// would both see the same free slot: takes the advisory lock first.
    async fn running_per_tool(&mut self) -> StoreResult<Vec<(String, i64)>> {
        sqlx::query(LOCK_LIMITS)
            .bind(CLAIM_LIMITS_LOCK)
            .execute(&mut *self)
            .await
            .map_err(db_err)?;
        sqlx::query_as(RUNNING_PER_TOOL)
            .fetch_all(&mut *self)
            .await
            .map_err(db_err)
    }

    async fn running_per_group(&mut self) -> StoreResult<Vec<(String, String, i64)>> {
        sqlx::query_as(RUNNING_PER_GROUP)
            .fetch_all(&mut *self)
            .await
            .map_err(db_err)
    }

    async fn candidates(&mut self, round: &Round<'_>) -> StoreResult<Vec<Candidate>> {
        let mut tools: Vec<&str> = Vec::new();
        let mut prefixes: Vec<&str> = Vec::new();
        for sel in &round.excluded {
            match sel {
                ToolSelector::Tool(t) => tools.push(t),
                ToolSelector::Prefix(p) => prefixes.push(p),
            }
        }
        let (owners, groups): (Vec<&str>, Vec<&str>) = round
            .excluded_groups
            .iter()
            .map(|(o, g)| (o.as_str(), g.as_str()))
            .unzip();
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(CANDIDATES)
            .bind(round.now.as_millis())
            .bind(tools)
            .bind(prefixes)
            .bind(round.chosen)
            .bind(round.want as i64)
            .bind(owners)
            .bind(groups)
            .fetch_all(&mut *self)
            .await
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(seq, tool, owner, group_key)| Candidate {
                seq,
                tool,
                owner,
                group_key,
            })
            .collect())
    }

    async fn lease_chosen(
        &mut self,
        req: &ClaimRequest<'_>,
        chosen: &[i64],
    ) -> StoreResult<Vec<Task>> {
        let rows = sqlx::query(LEASE_CHOSEN)
            .bind(req.now.as_millis())
            .bind(req.owner)
            .bind(req.token)
            .bind(req.lease_until.as_millis())
            .bind(chosen)
            .fetch_all(&mut *self)
            .await
            .map_err(db_err)?;
        rows.iter().map(task_from_row).collect()
    }

    async fn lease_next(&mut self, req: &ClaimRequest<'_>) -> StoreResult<Vec<Task>> {
        let rows = sqlx::query(LEASE_NEXT)
            .bind(req.now.as_millis())
            .bind(req.owner)
            .bind(req.token)
            .bind(req.lease_until.as_millis())
            .bind(req.limit as i64)
            .fetch_all(&mut *self)
            .await
            .map_err(db_err)?;
        rows.iter().map(task_from_row).collect()
    }
}
