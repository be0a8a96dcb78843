//! Leases on SQLite: heartbeats extend them, rescues and hand-backs give them back.

use baton_core::{EventKind, TaskId, TaskStatus, Timestamp};
use sqlx::Sqlite;

use super::error::db_err;
use super::writer::Writer;
use crate::shared::leases::{LeaseSql, LeaseWrites, Requeued};
use crate::shared::rows::{decode_err, leased};
use crate::{HeartbeatReply, LeaseSelector, Requeue, StoreResult};

impl LeaseSql for Sqlite {
    const LEASES_EXPIRED_BEFORE: &'static str = concat!(
        "SELECT seq, id, attempt, max_attempts, lease_owner FROM tasks WHERE ",
        leased!(),
        " AND lease_expires_at < ?1"
    );

    const LEASES_OF: &'static str = concat!(
        "SELECT seq, id, attempt, max_attempts, lease_owner FROM tasks WHERE ",
        leased!(),
        " AND lease_owner = ?1"
    );
}

// The statements of heartbeats and of giving leases back.

const EXTEND_LEASES: &str = concat!(
    "UPDATE tasks SET lease_expires_at = ? WHERE lease_owner = ? AND ",
    leased!(),
    " AND lease_expires_at >= ? RETURNING id, lease_token"
);

const CANCEL_REQUESTED: &str = concat!(
    "SELECT id FROM tasks WHERE lease_owner = ? AND ",
    leased!(),
    " AND cancel_requested = 1"
);

const FAIL_LEASED: &str = "UPDATE tasks SET status = 'failed', error = ?, completed_at = ?, \
     updated_at = ?, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
     input_requests = NULL, input_responses = NULL WHERE seq = ?";

const REQUEUE_LEASED: &str = "UPDATE tasks SET status = 'pending', attempt = ?, run_at = ?, \
     updated_at = ?, progress = NULL, progress_message = NULL, input_requests = NULL, \
     input_responses = NULL, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
     WHERE seq = ?";

/// See [`Store::heartbeat`](crate::Store::heartbeat).
pub(super) async fn heartbeat(
    w: &mut Writer,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> StoreResult<HeartbeatReply> {
    let held: Vec<(String, i64)> = sqlx::query_as(EXTEND_LEASES)
        .bind(lease_until.as_millis())
        .bind(owner)
        .bind(now.as_millis())
        .fetch_all(&mut w.conn)
        .await
        .map_err(db_err)?;
    let cancel: Vec<String> = sqlx::query_scalar(CANCEL_REQUESTED)
        .bind(owner)
        .fetch_all(&mut w.conn)
        .await
        .map_err(db_err)?;
    let parse = |ids: Vec<String>| -> StoreResult<Vec<TaskId>> {
        ids.iter().map(|s| s.parse().map_err(decode_err)).collect()
    };
    Ok(HeartbeatReply {
        held: held
            .into_iter()
            .map(|(id, token)| Ok((id.parse().map_err(decode_err)?, token)))
            .collect::<StoreResult<_>>()?,
        cancel_requested: parse(cancel)?,
    })
}

impl LeaseWrites for Writer {
    /// One statement per task.
    async fn requeue(&mut self, tasks: &[Requeued], now: Timestamp) -> StoreResult<()> {
        let now = now.as_millis();
        for t in tasks {
            let query = if t.status == TaskStatus::Failed {
                sqlx::query(FAIL_LEASED).bind(t.error.clone())
            } else {
                sqlx::query(REQUEUE_LEASED).bind(i64::from(t.attempt))
            };
            // `completed_at` or `run_at`, then `updated_at`.
            query
                .bind(now)
                .bind(now)
                .bind(t.seq)
                .execute(&mut self.conn)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }
}

/// A requeue request the writer task can own (it outlives the caller's borrow).
pub(super) struct OwnedRequeue {
    selector: OwnedSelector,
    now: Timestamp,
    count_attempt: bool,
    kind: EventKind,
    message: String,
}

enum OwnedSelector {
    ExpiredBefore(Timestamp),
    Owner(String),
}

impl OwnedRequeue {
    pub(super) fn new(req: &Requeue<'_>) -> OwnedRequeue {
        OwnedRequeue {
            selector: match req.selector {
                LeaseSelector::ExpiredBefore(t) => OwnedSelector::ExpiredBefore(t),
                LeaseSelector::Owner(o) => OwnedSelector::Owner(o.to_string()),
            },
            now: req.now,
            count_attempt: req.count_attempt,
            kind: req.kind,
            message: req.message.to_string(),
        }
    }

    pub(super) fn request(&self) -> Requeue<'_> {
        Requeue {
            selector: match &self.selector {
                OwnedSelector::ExpiredBefore(t) => LeaseSelector::ExpiredBefore(*t),
                OwnedSelector::Owner(o) => LeaseSelector::Owner(o),
            },
            now: self.now,
            count_attempt: self.count_attempt,
            kind: self.kind,
            message: &self.message,
        }
    }
}
