//! The writes of a run under its lease on SQLite: progress, finished runs, checkpoints.
//! Each batch statement joins the tasks with the batch as `VALUES` (`v.column1…`), in
//! chunks.

use std::collections::HashMap;

use baton_core::TaskId;
use sqlx::{QueryBuilder, Sqlite};

use super::error::db_err;
use super::writer::{CHUNK, Writer};
use crate::shared::events::storable_message;
use crate::shared::rows::{Columns, leased};
use crate::shared::runs::{Progressed, RunSql, RunWrites, finish_columns};
use crate::{Finish, ProgressUpdate, StoreResult};

impl RunSql for Sqlite {
    const SAVE_CHECKPOINT: &'static str = concat!(
        "UPDATE tasks SET checkpoint = ?1, updated_at = ?2 WHERE id = ?3 AND lease_token = ?4 AND ",
        leased!(),
        " AND lease_expires_at >= ?2"
    );
}

// The batch statements.

/// Followed by the updates (id, token, progress, message, at) as `VALUES`, then
/// [`PROGRESS_END`].
const PROGRESS: &str = "UPDATE tasks SET progress = coalesce(v.column3, progress), \
     progress_message = coalesce(v.column4, progress_message), updated_at = v.column5 FROM (";

const PROGRESS_END: &str = ") AS v WHERE tasks.id = v.column1 AND tasks.lease_token = v.column2 \
     AND tasks.status = 'running' AND tasks.lease_expires_at >= v.column5 \
     RETURNING id, attempt, progress, progress_message";

/// Followed by the runs (id, token, status, result, error, completed_at, run_at, at,
/// result_zstd) as `VALUES`, then [`FINISH_END`].
const FINISH: &str = "UPDATE tasks SET status = v.column3, result = v.column4, error = v.column5, \
     result_zstd = v.column9, \
     completed_at = v.column6, run_at = coalesce(v.column7, run_at), updated_at = v.column8, \
     progress = CASE v.column3 WHEN 'completed' THEN 1.0 WHEN 'pending' THEN NULL ELSE progress END, \
     progress_message = CASE v.column3 WHEN 'pending' THEN NULL ELSE progress_message END, \
     cancel_requested = CASE v.column3 WHEN 'cancelled' THEN 1 ELSE cancel_requested END, \
     input_requests = NULL, input_responses = NULL, checkpoint = NULL, \
     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL FROM (";

const FINISH_END: &str = ") AS v WHERE tasks.id = v.column1 AND tasks.lease_token = v.column2 \
     AND tasks.status IN ('running', 'input_required') AND tasks.lease_expires_at >= v.column8 \
     RETURNING id, attempt";

impl RunWrites for Writer {
    async fn progress_round(&mut self, round: &[&ProgressUpdate]) -> StoreResult<Vec<Progressed>> {
        let mut done = Vec::with_capacity(round.len());
        for chunk in round.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(PROGRESS);
            qb.push_values(chunk, |mut b, u| {
                b.push_bind(u.id.to_string())
                    .push_bind(u.token)
                    .push_bind(u.progress)
                    .push_bind(storable_message(u.message.as_deref()).map(|m| m.into_owned()))
                    .push_bind(u.at.as_millis());
            });
            qb.push(PROGRESS_END);
            for row in qb.build().fetch_all(&mut self.conn).await.map_err(db_err)? {
                done.push(Progressed::from_row(&row)?);
            }
        }
        Ok(done)
    }

    async fn finish_round(
        &mut self,
        round: &[&Finish],
        applied: &mut HashMap<(TaskId, i64), u32>,
    ) -> StoreResult<()> {
        for chunk in round.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(FINISH);
            qb.push_values(chunk, |mut b, f| {
                let c = finish_columns(&f.transition);
                let completed_at = f.transition.status().is_final().then(|| f.at.as_millis());
                b.push_bind(f.id.to_string())
                    .push_bind(f.token)
                    .push_bind(f.transition.status().as_str())
                    .push_bind(c.result)
                    .push_bind(c.error)
                    .push_bind(completed_at)
                    .push_bind(c.run_at)
                    .push_bind(f.at.as_millis())
                    .push_bind(c.result_zstd);
            });
            qb.push(FINISH_END);
            // Within a round a task appears once, so its id names the run.
            let tokens: HashMap<TaskId, i64> = chunk.iter().map(|f| (f.id, f.token)).collect();
            for row in qb.build().fetch_all(&mut self.conn).await.map_err(db_err)? {
                let id = row.task_id("id")?;
                let attempt = row.int("attempt")? as u32;
                if let Some(token) = tokens.get(&id) {
                    applied.insert((id, *token), attempt);
                }
            }
        }
        Ok(())
    }
}
