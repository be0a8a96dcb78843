//! The writer connection as a write transaction: where statements run, and how events
//! are appended.

use baton_core::TaskEvent;
use baton_core::event::NewEvent;
use sqlx::{Executor, QueryBuilder, Sqlite};

use super::error::db_err;
use super::writer::{CHUNK, Writer};
use crate::StoreResult;
use crate::shared::dialect::Tx;
use crate::shared::events::{json_or_null, storable_events};
use crate::shared::webhooks;

const LAST_EVENT_SEQ: &str =
    "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'task_events'), 0)";

/// The deliveries of the events numbered `?1` to `?2` (see `shared::webhooks`).
static TASK_DELIVERIES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{}{}",
        webhooks::INSERT_DELIVERY_COLUMNS,
        webhooks::TASK_DELIVERIES
            .replace(
                "{events}",
                "(SELECT seq, task_id, kind, status, at FROM task_events \
                 WHERE seq BETWEEN ?1 AND ?2) e",
            )
            .replace("{task_id_text}", "e.task_id")
    )
});

const INSERT_EVENTS: &str =
    "INSERT INTO task_events (seq, task_id, at, kind, status, attempt, progress, message, data) ";

impl Tx for Writer {
    type Db = Sqlite;

    fn exec(&mut self) -> impl Executor<'_, Database = Sqlite> {
        &mut self.conn
    }

    /// Runs inside the caller's write transaction, which holds SQLite's write lock, so the
    /// numbers after `sqlite_sequence` are ours to hand out in order.
    async fn insert_events(&mut self, events: Vec<NewEvent>) -> StoreResult<Vec<TaskEvent>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let events = storable_events(events);
        let last: i64 = match self.last_event_seq {
            Some(n) => n,
            None => sqlx::query_scalar(LAST_EVENT_SEQ)
                .fetch_one(&mut self.conn)
                .await
                .map_err(db_err)?,
        };
        let stored: Vec<TaskEvent> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| e.with_seq(last + 1 + i as i64))
            .collect();
        for chunk in stored.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(INSERT_EVENTS);
            qb.push_values(chunk, |mut b, e| {
                b.push_bind(e.seq)
                    .push_bind(e.task_id.to_string())
                    .push_bind(e.at.as_millis())
                    .push_bind(e.kind.as_str())
                    .push_bind(e.status.as_str())
                    .push_bind(e.attempt.map(i64::from))
                    .push_bind(e.progress)
                    .push_bind(e.message.clone())
                    .push_bind(json_or_null(&e.data));
            });
            qb.build().execute(&mut self.conn).await.map_err(db_err)?;
        }
        if let (Some(first), Some(last)) = (stored.first(), stored.last()) {
            self.last_event_seq = Some(last.seq);
            let armed = match self.outbox_armed {
                Some(a) => a,
                None => {
                    let a = webhooks::armed(&mut self.conn).await?;
                    self.outbox_armed = Some(a);
                    a
                }
            };
            if armed {
                sqlx::query(sqlx::AssertSqlSafe(TASK_DELIVERIES.as_str()))
                    .bind(first.seq)
                    .bind(last.seq)
                    .execute(&mut self.conn)
                    .await
                    .map_err(db_err)?;
            }
        }
        Ok(stored)
    }

    fn arm_outbox(&mut self) {
        self.outbox_armed = Some(true);
    }
}
