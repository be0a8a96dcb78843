//! The processes of a deployment, as they report themselves. Each dialect's statements
//! are a [`PeerSql`].

use baton_core::Timestamp;
use sqlx::Executor;

use super::dialect::{Bind, Dialect, Tx, execute, fetch_all, fetch_one};
use super::rows::Columns;
use super::rows::peer_from_row;
use crate::{Peer, PeerReport, StoreResult};

/// The peer statements of a dialect. Parameters are numbered as PostgreSQL numbers them.
pub(crate) trait PeerSql: Dialect {
    /// Inserts peer `$1` as live, or makes it live again: `$2` role, `$3` address, `$4`
    /// version, `$5` started, `$6` now (its last heartbeat), `$7` running, `$8`
    /// finished, `$9` throughput; returns its `draining`.
    const REPORT_PEER: &'static str;
    /// The peer columns of every peer, by id.
    const LIST_PEERS: &'static str;
    /// Peer `$2` stopped at `$1`.
    const PEER_STOPPED: &'static str;
    /// Forgets the peers stopped or lost whose last heartbeat is older than `$1`.
    const FORGET_PEERS: &'static str;
    /// Live peers whose last heartbeat is older than `$1` become lost, except `$2`;
    /// returns their peer columns.
    const MARK_LOST: &'static str;
}

pub(crate) async fn report_peer<'c, D: PeerSql>(
    db: impl Executor<'c, Database = D>,
    r: &PeerReport,
) -> StoreResult<bool>
where
    String: Bind<D>,
    Option<String>: Bind<D>,
    i64: Bind<D>,
    f64: Bind<D>,
{
    let query = sqlx::query(D::REPORT_PEER)
        .bind(r.id.clone())
        .bind(r.role.clone())
        .bind(r.address.clone())
        .bind(r.version.clone())
        .bind(r.started_at.as_millis())
        .bind(r.now.as_millis())
        .bind(r.running as i64)
        .bind(r.finished as i64)
        .bind(r.throughput);
    Ok(fetch_one(db, query, |row| row.int4("draining")).await? != 0)
}

pub(crate) async fn list_peers<'c, D: PeerSql>(
    db: impl Executor<'c, Database = D>,
) -> StoreResult<Vec<Peer>> {
    fetch_all(db, sqlx::query(D::LIST_PEERS), peer_from_row).await
}

/// See [`Store::drain_peer`](crate::Store::drain_peer).
pub(crate) async fn drain_peer<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    id: &str,
) -> StoreResult<bool>
where
    String: Bind<D>,
{
    let sql = super::dialect::numbered::<D>(
        "UPDATE peers SET draining = 1 WHERE id = $1 AND state = 'live'",
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string());
    Ok(execute(db, query).await? > 0)
}

/// `false` if the peer was unknown.
pub(crate) async fn peer_stopped<'c, D: PeerSql>(
    db: impl Executor<'c, Database = D>,
    id: &str,
    now: Timestamp,
) -> StoreResult<bool>
where
    String: Bind<D>,
    i64: Bind<D>,
{
    let query = sqlx::query(D::PEER_STOPPED)
        .bind(now.as_millis())
        .bind(id.to_string());
    Ok(execute(db, query).await? > 0)
}

/// See [`Store::mark_lost_peers`](crate::Store::mark_lost_peers).
pub(crate) async fn mark_lost_peers<T: Tx<Db: PeerSql>>(
    tx: &mut T,
    before: Timestamp,
    forget_before: Timestamp,
    caller: &str,
) -> StoreResult<Vec<Peer>>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
{
    let forget = sqlx::query(T::Db::FORGET_PEERS).bind(forget_before.as_millis());
    execute(tx.exec(), forget).await?;
    let mark = sqlx::query(T::Db::MARK_LOST)
        .bind(before.as_millis())
        .bind(caller.to_string());
    fetch_all(tx.exec(), mark, peer_from_row).await
}
