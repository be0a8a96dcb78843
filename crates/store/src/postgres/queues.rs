//! The queue statements of PostgreSQL.

use sqlx::Postgres;

use crate::shared::queues::QueueSql;
use crate::shared::rows::leased;

impl QueueSql for Postgres {
    const PAUSED: &'static str =
        "SELECT name, paused FROM queue_settings WHERE ($1::text IS NULL OR owner = $1)";

    const PER_STATUS: &'static str = "SELECT queue, status, count(*) AS n FROM tasks WHERE ($1::text IS NULL OR owner = $1) \
         GROUP BY status, queue";

    const COMPLETED_SINCE: &'static str = "SELECT queue, count(*) AS n FROM tasks \
         WHERE completed_at IS NOT NULL AND completed_at >= $1 AND status = 'completed' \
         AND ($2::text IS NULL OR owner = $2) GROUP BY queue";

    const OLDEST_RUNNABLE: &'static str = "SELECT queue, min(run_at) AS oldest FROM tasks \
         WHERE status = 'pending' AND run_at <= $1 AND ($2::text IS NULL OR owner = $2) \
         GROUP BY queue";

    const SET_PAUSED: &'static str = "INSERT INTO queue_settings (owner, name, paused, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (owner, name) DO UPDATE \
         SET paused = excluded.paused, updated_at = excluded.updated_at";

    const RECENT_DURATIONS: &'static str = "SELECT completed_at - started_at AS ms FROM tasks \
         WHERE status = 'completed' AND tool = $1 AND started_at IS NOT NULL \
         ORDER BY completed_at DESC LIMIT $2";

    /// Two counts, so each is answered from its partial index (`tasks_pending`,
    /// `tasks_leased`) instead of a scan over every task ever stored.
    const COUNT_ACTIVE: &'static str = concat!(
        "SELECT (SELECT count(*) FROM tasks WHERE status = 'pending') \
         + (SELECT count(*) FROM tasks WHERE ",
        leased!(),
        ") AS n"
    );
}
