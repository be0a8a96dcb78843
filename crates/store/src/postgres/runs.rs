//! The writes of a run under its lease on PostgreSQL: progress, finished runs,
//! checkpoints. Each tests the token and the expiry in the `WHERE` of the statement that
//! locks the row, which PostgreSQL re-checks against the newest row version after
//! waiting for a concurrent writer: a lease taken over in the meantime fails the test.
//! Batches bind arrays and lock their rows in task-id order (`… ORDER BY id FOR UPDATE`
//! in a CTE, then the `UPDATE`).

use std::collections::HashMap;

use baton_core::TaskId;
use sqlx::Postgres;
use sqlx::postgres::PgConnection;
use sqlx::types::Uuid;

use super::error::db_err;
use super::rows::uuid;
use crate::shared::events::storable_message;
use crate::shared::rows::leased;
use crate::shared::runs::{Progressed, RunSql, RunWrites, finish_columns};
use crate::{Finish, ProgressUpdate, StoreResult};

impl RunSql for Postgres {
    const SAVE_CHECKPOINT: &'static str = concat!(
        "UPDATE tasks SET checkpoint = $1::json, updated_at = $2 WHERE id = $3 \
         AND lease_token = $4 AND ",
        leased!(),
        " AND lease_expires_at >= $2"
    );
}

// The batch statements.

const PROGRESS: &str = "WITH l AS (SELECT tasks.seq AS lock_seq, v.* \
       FROM unnest($1::uuid[], $2::bigint[], $3::float8[], $4::text[], $5::bigint[]) \
            AS v(id, token, progress, message, at) \
       JOIN tasks ON tasks.id = v.id \
       WHERE tasks.lease_token = v.token AND tasks.status = 'running' AND tasks.lease_expires_at >= v.at \
       ORDER BY tasks.id FOR UPDATE OF tasks) \
     UPDATE tasks SET progress = coalesce(l.progress, tasks.progress), \
     progress_message = coalesce(l.message, tasks.progress_message), updated_at = l.at \
     FROM l WHERE tasks.seq = l.lock_seq \
     RETURNING tasks.id, tasks.attempt, tasks.progress, tasks.progress_message";

const FINISH: &str = "WITH l AS (SELECT tasks.seq AS lock_seq, v.* \
       FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
                   $7::bigint[], $8::bigint[], $9::bytea[]) \
            AS v(id, token, status, result, error, completed_at, run_at, at, result_zstd) \
       JOIN tasks ON tasks.id = v.id \
       WHERE tasks.lease_token = v.token AND tasks.status IN ('running', 'input_required') \
         AND tasks.lease_expires_at >= v.at \
       ORDER BY tasks.id FOR UPDATE OF tasks) \
     UPDATE tasks SET status = l.status, result = l.result::json, error = l.error::json, \
     result_zstd = l.result_zstd, \
     completed_at = l.completed_at, run_at = coalesce(l.run_at, tasks.run_at), updated_at = l.at, \
     progress = CASE l.status WHEN 'completed' THEN 1.0 WHEN 'pending' THEN NULL ELSE tasks.progress END, \
     progress_message = CASE l.status WHEN 'pending' THEN NULL ELSE tasks.progress_message END, \
     cancel_requested = (l.status = 'cancelled') OR tasks.cancel_requested, \
     input_requests = NULL, input_responses = NULL, checkpoint = NULL, \
     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
     FROM l WHERE tasks.seq = l.lock_seq \
     RETURNING tasks.id, tasks.attempt, l.token";

impl RunWrites for PgConnection {
    async fn progress_round(&mut self, round: &[&ProgressUpdate]) -> StoreResult<Vec<Progressed>> {
        let rows = sqlx::query(PROGRESS)
            .bind(round.iter().map(|u| uuid(u.id)).collect::<Vec<_>>())
            .bind(round.iter().map(|u| u.token).collect::<Vec<_>>())
            .bind(round.iter().map(|u| u.progress).collect::<Vec<_>>())
            .bind(
                round
                    .iter()
                    .map(|u| storable_message(u.message.as_deref()))
                    .collect::<Vec<_>>(),
            )
            .bind(round.iter().map(|u| u.at.as_millis()).collect::<Vec<_>>())
            .fetch_all(&mut *self)
            .await
            .map_err(db_err)?;
        rows.iter().map(Progressed::from_row).collect()
    }

    async fn finish_round(
        &mut self,
        round: &[&Finish],
        applied: &mut HashMap<(TaskId, i64), u32>,
    ) -> StoreResult<()> {
        let n = round.len();
        let mut ids = Vec::with_capacity(n);
        let mut tokens = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut results = Vec::with_capacity(n);
        let mut errors = Vec::with_capacity(n);
        let mut completed = Vec::with_capacity(n);
        let mut run_at = Vec::with_capacity(n);
        let mut at = Vec::with_capacity(n);
        let mut compressed = Vec::with_capacity(n);
        for f in round {
            let c = finish_columns(&f.transition);
            let (result, error, retry_at) = (c.result, c.error, c.run_at);
            compressed.push(c.result_zstd);
            ids.push(uuid(f.id));
            tokens.push(f.token);
            statuses.push(f.transition.status().as_str());
            results.push(result);
            errors.push(error);
            completed.push(f.transition.status().is_final().then(|| f.at.as_millis()));
            run_at.push(retry_at);
            at.push(f.at.as_millis());
        }
        let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(FINISH)
            .bind(ids)
            .bind(tokens)
            .bind(statuses)
            .bind(results)
            .bind(errors)
            .bind(completed)
            .bind(run_at)
            .bind(at)
            .bind(compressed)
            .fetch_all(&mut *self)
            .await
            .map_err(db_err)?;
        for (id, attempt, token) in rows {
            applied.insert((TaskId::from_uuid(id), token), attempt as u32);
        }
        Ok(())
    }
}
