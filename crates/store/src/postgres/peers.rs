//! The peer statements of PostgreSQL, and the clock the peers agree on.

use baton_core::Timestamp;
use sqlx::Postgres;
use sqlx::postgres::PgPool;

use super::error::db_err;
use crate::StoreResult;
use crate::shared::peers::PeerSql;
use crate::shared::rows::peer_columns;

impl PeerSql for Postgres {
    const REPORT_PEER: &'static str = "INSERT INTO peers (id, role, address, version, state, \
         started_at, last_heartbeat, running, finished, throughput) \
         VALUES ($1, $2, $3, $4, 'live', $5, $6, $7, $8, $9) \
         ON CONFLICT (id) DO UPDATE SET role = excluded.role, address = excluded.address, \
         version = excluded.version, state = 'live', started_at = excluded.started_at, \
         draining = CASE WHEN peers.started_at = excluded.started_at THEN peers.draining \
         ELSE 0 END, \
         last_heartbeat = excluded.last_heartbeat, running = excluded.running, \
         finished = excluded.finished, throughput = excluded.throughput \
         RETURNING draining";

    const LIST_PEERS: &'static str = concat!("SELECT ", peer_columns!(), " FROM peers ORDER BY id");

    const PEER_STOPPED: &'static str =
        "UPDATE peers SET state = 'stopped', running = 0, last_heartbeat = $1 WHERE id = $2";

    const FORGET_PEERS: &'static str =
        "DELETE FROM peers WHERE state <> 'live' AND last_heartbeat < $1";

    const MARK_LOST: &'static str = concat!(
        "UPDATE peers SET state = 'lost' WHERE state = 'live' AND last_heartbeat < $1 \
         AND id <> $2 RETURNING ",
        peer_columns!()
    );
}

const CLOCK: &str = "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The database server's clock (see [`Store::clock`](crate::Store::clock)).
pub(super) async fn clock(pool: &PgPool) -> StoreResult<Timestamp> {
    let ms: i64 = sqlx::query_scalar(CLOCK)
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    Ok(Timestamp::from_millis(ms))
}
