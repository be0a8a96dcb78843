//! A transaction's connection as a write transaction: where statements run, and how
//! events are appended (and announced).

use baton_core::TaskEvent;
use baton_core::event::NewEvent;
use sqlx::postgres::PgConnection;
use sqlx::{Executor, Postgres};

use super::error::db_err;
use super::listen::notify_events;
use super::rows::uuid;
use crate::shared::dialect::Tx;
use crate::shared::events::{json_or_null, storable_events};
use crate::shared::webhooks;
use crate::{StoreError, StoreResult};

// The statements.

/// Appends the events and, in the same statement, the webhook deliveries they make (see
/// `shared::webhooks`: nothing to do while no webhook and no callback exists).
static INSERT_EVENTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH s AS MATERIALIZED \
             (SELECT nextval('task_event_seq') AS seq FROM generate_series(1, $1)), \
         r AS (SELECT seq, row_number() OVER (ORDER BY seq) AS ord FROM s), \
         ins AS (INSERT INTO task_events \
                     (seq, task_id, at, kind, status, attempt, progress, message, data) \
         SELECT r.seq, v.task_id, v.at, v.kind, v.status, v.attempt, v.progress, v.message, \
                v.data::json \
         FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], \
                     $7::float8[], $8::text[], $9::text[]) \
              WITH ORDINALITY AS v(task_id, at, kind, status, attempt, progress, message, \
                                   data, ord) \
         JOIN r ON r.ord = v.ord \
         RETURNING seq, task_id, kind, status, at), \
         hooks AS ({}{} ON CONFLICT (id) DO NOTHING) \
         SELECT seq FROM ins",
        webhooks::INSERT_DELIVERY_COLUMNS,
        webhooks::TASK_DELIVERIES
            .replace("{events}", "ins e")
            .replace("{task_id_text}", "e.task_id::text")
    )
});

impl Tx for PgConnection {
    type Db = Postgres;

    fn exec(&mut self) -> impl Executor<'_, Database = Postgres> {
        &mut *self
    }

    /// One statement. The numbers are drawn in the statement itself (`nextval` once per
    /// event, in a materialised CTE) and handed to the events in ascending order of their
    /// position in `events`, whatever order PostgreSQL evaluates rows in; so a task's
    /// events within one call are numbered in order. Across calls, a task's next event is
    /// always written after its row was locked by a later transaction than the one that
    /// wrote the previous event, hence after that one's `nextval`: numbers grow per task.
    /// (Across tasks, number order need not be commit order.)
    async fn insert_events(&mut self, events: Vec<NewEvent>) -> StoreResult<Vec<TaskEvent>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let events = storable_events(events);
        let n = events.len();
        let mut task_ids = Vec::with_capacity(n);
        let mut at = Vec::with_capacity(n);
        let mut kind = Vec::with_capacity(n);
        let mut status = Vec::with_capacity(n);
        let mut attempt = Vec::with_capacity(n);
        let mut progress = Vec::with_capacity(n);
        let mut message = Vec::with_capacity(n);
        let mut data = Vec::with_capacity(n);
        for e in &events {
            task_ids.push(uuid(e.task_id));
            at.push(e.at.as_millis());
            kind.push(e.kind.as_str());
            status.push(e.status.as_str());
            attempt.push(e.attempt.map(i64::from));
            progress.push(e.progress);
            message.push(e.message.as_deref());
            data.push(json_or_null(&e.data));
        }
        let mut seqs: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(INSERT_EVENTS.as_str()))
            .bind(n as i32)
            .bind(task_ids)
            .bind(at)
            .bind(kind)
            .bind(status)
            .bind(attempt)
            .bind(progress)
            .bind(message)
            .bind(data)
            .fetch_all(&mut *self)
            .await
            .map_err(db_err)?;
        if seqs.len() != n {
            return Err(StoreError::Database(format!(
                "{n} events written but {} numbered",
                seqs.len()
            )));
        }
        seqs.sort_unstable();
        let events: Vec<TaskEvent> = events
            .into_iter()
            .zip(seqs)
            .map(|(e, seq)| e.with_seq(seq))
            .collect();
        notify_events(self, &events).await?;
        Ok(events)
    }
}
