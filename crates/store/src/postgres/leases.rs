//! Leases on PostgreSQL: heartbeats extend them, rescues and hand-backs give them back.
//! Multi-row writes on running tasks lock their rows first, in task-id order, so two of
//! them cannot deadlock whatever join order the planner picks.

use baton_core::{TaskId, Timestamp};
use sqlx::Postgres;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::types::Uuid;

use super::error::{db_err, retry_conflicts};
use crate::shared::leases::{LeaseSql, LeaseWrites, Requeued};
use crate::shared::rows::leased;
use crate::{HeartbeatReply, StoreResult};

impl LeaseSql for Postgres {
    /// Locked in id order (see the module docs); rescuers on several nodes skip each
    /// other's rows instead of queueing behind them.
    const LEASES_EXPIRED_BEFORE: &'static str = concat!(
        "SELECT seq, id, attempt, max_attempts, lease_owner FROM tasks WHERE ",
        leased!(),
        " AND lease_expires_at < $1 ORDER BY id FOR UPDATE SKIP LOCKED"
    );

    /// Locked in id order; a hand-back by owner waits, since it must return every lease
    /// the node holds.
    const LEASES_OF: &'static str = concat!(
        "SELECT seq, id, attempt, max_attempts, lease_owner FROM tasks WHERE ",
        leased!(),
        " AND lease_owner = $1 ORDER BY id FOR UPDATE"
    );
}

// The statements of heartbeats and of giving leases back.

/// One statement: lock the owner's unexpired leases in id order, extend them, and list
/// the owner's tasks with a cancellation request.
const HEARTBEAT: &str = concat!(
    "WITH l AS (SELECT seq FROM tasks WHERE lease_owner = $1 AND ",
    leased!(),
    " AND lease_expires_at >= $2 ORDER BY id FOR UPDATE), \
     u AS (UPDATE tasks SET lease_expires_at = $3 FROM l WHERE tasks.seq = l.seq \
           RETURNING tasks.id, tasks.lease_token) \
     SELECT id, lease_token, true FROM u \
     UNION ALL SELECT id, NULL, false FROM tasks WHERE lease_owner = $1 AND ",
    leased!(),
    " AND cancel_requested"
);

const REQUEUE: &str = "UPDATE tasks SET status = v.status, attempt = v.attempt, updated_at = $1, \
     error = CASE WHEN v.status = 'failed' THEN v.error::json ELSE tasks.error END, \
     completed_at = CASE WHEN v.status = 'failed' THEN $1 ELSE tasks.completed_at END, \
     run_at = CASE WHEN v.status = 'pending' THEN $1 ELSE tasks.run_at END, \
     progress = CASE WHEN v.status = 'pending' THEN NULL ELSE tasks.progress END, \
     progress_message = CASE WHEN v.status = 'pending' THEN NULL ELSE tasks.progress_message END, \
     input_requests = NULL, input_responses = NULL, \
     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
     FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[]) AS v(seq, status, attempt, error) \
     WHERE tasks.seq = v.seq";

/// See [`Store::heartbeat`](crate::Store::heartbeat). One statement, so no explicit
/// transaction.
pub(super) async fn heartbeat(
    pool: &PgPool,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> StoreResult<HeartbeatReply> {
    let rows: Vec<(Uuid, Option<i64>, bool)> = retry_conflicts!(
        sqlx::query_as(HEARTBEAT)
            .bind(owner)
            .bind(now.as_millis())
            .bind(lease_until.as_millis())
            .fetch_all(pool)
            .await
            .map_err(db_err)
    )?;
    let mut reply = HeartbeatReply::default();
    for (id, token, held) in rows {
        if held {
            reply
                .held
                .push((TaskId::from_uuid(id), token.unwrap_or_default()));
        } else {
            reply.cancel_requested.push(TaskId::from_uuid(id));
        }
    }
    Ok(reply)
}

impl LeaseWrites for PgConnection {
    /// One statement for all of them.
    async fn requeue(&mut self, tasks: &[Requeued], now: Timestamp) -> StoreResult<()> {
        sqlx::query(REQUEUE)
            .bind(now.as_millis())
            .bind(tasks.iter().map(|t| t.seq).collect::<Vec<_>>())
            .bind(tasks.iter().map(|t| t.status.as_str()).collect::<Vec<_>>())
            .bind(
                tasks
                    .iter()
                    .map(|t| i64::from(t.attempt))
                    .collect::<Vec<_>>(),
            )
            .bind(tasks.iter().map(|t| t.error.as_deref()).collect::<Vec<_>>())
            .execute(&mut *self)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
