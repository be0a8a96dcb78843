//! The peer statements of SQLite (where there is only one peer, the store's owner).

use sqlx::Sqlite;

use crate::shared::peers::PeerSql;
use crate::shared::rows::peer_columns;

impl PeerSql for Sqlite {
    const REPORT_PEER: &'static str = "INSERT INTO peers (id, role, address, version, state, \
         started_at, last_heartbeat, running, finished, throughput) \
         VALUES (?1, ?2, ?3, ?4, 'live', ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (id) DO UPDATE SET role = excluded.role, address = excluded.address, \
         version = excluded.version, state = 'live', started_at = excluded.started_at, \
         draining = CASE WHEN peers.started_at = excluded.started_at THEN peers.draining \
         ELSE 0 END, \
         last_heartbeat = excluded.last_heartbeat, running = excluded.running, \
         finished = excluded.finished, throughput = excluded.throughput \
         RETURNING draining";

    const LIST_PEERS: &'static str = concat!("SELECT ", peer_columns!(), " FROM peers ORDER BY id");

    const PEER_STOPPED: &'static str =
        "UPDATE peers SET state = 'stopped', running = 0, last_heartbeat = ?1 WHERE id = ?2";

    const FORGET_PEERS: &'static str =
        "DELETE FROM peers WHERE state <> 'live' AND last_heartbeat < ?1";

    const MARK_LOST: &'static str = concat!(
        "UPDATE peers SET state = 'lost' WHERE state = 'live' AND last_heartbeat < ?1 \
         AND id <> ?2 RETURNING ",
        peer_columns!()
    );
}
