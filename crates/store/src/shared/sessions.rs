//! What the front doors share across a deployment: secrets made once (the key that
//! signs MCP session ids) and the MCP sessions their clients ended. Each dialect's
//! statements are a [`SessionSql`].

use baton_core::Timestamp;
use sqlx::Executor;

use super::dialect::{Bind, Dialect, execute, fetch_all, fetch_one};
use super::rows::Columns;
use crate::StoreResult;

/// The session statements of a dialect. Parameters are numbered as PostgreSQL numbers
/// them.
pub(crate) trait SessionSql: Dialect {
    /// Secret `$1` is `$2` (made at `$3`) unless it already exists.
    const PUT_SECRET: &'static str;
    /// The `value` of secret `$1`.
    const GET_SECRET: &'static str;
    /// Session `$1` (a hash of its id) ended at `$2`, unless already recorded.
    const END_SESSION: &'static str;
    /// `id_hash, ended_at` of the sessions ended at `$1` or later, oldest first.
    const ENDED_SINCE: &'static str;
    /// Forgets sessions ended before `$1`.
    const FORGET_ENDED: &'static str;
}

/// Stores secret `name` as `candidate` unless it exists (see
/// [`Store::shared_secret`](crate::Store::shared_secret)).
pub(crate) async fn put_secret<'c, D: SessionSql>(
    db: impl Executor<'c, Database = D>,
    name: &str,
    candidate: &str,
    now: Timestamp,
) -> StoreResult<()>
where
    String: Bind<D>,
    i64: Bind<D>,
{
    let put = sqlx::query(D::PUT_SECRET)
        .bind(name.to_string())
        .bind(candidate.to_string())
        .bind(now.as_millis());
    execute(db, put).await?;
    Ok(())
}

pub(crate) async fn get_secret<'c, D: SessionSql>(
    db: impl Executor<'c, Database = D>,
    name: &str,
) -> StoreResult<String>
where
    String: Bind<D>,
{
    let get = sqlx::query(D::GET_SECRET).bind(name.to_string());
    fetch_one(db, get, |r| r.text("value")).await
}

pub(crate) async fn end_session<'c, D: SessionSql>(
    db: impl Executor<'c, Database = D>,
    id_hash: &str,
    now: Timestamp,
) -> StoreResult<()>
where
    String: Bind<D>,
    i64: Bind<D>,
{
    let q = sqlx::query(D::END_SESSION)
        .bind(id_hash.to_string())
        .bind(now.as_millis());
    execute(db, q).await?;
    Ok(())
}

pub(crate) async fn ended_sessions<'c, D: SessionSql>(
    db: impl Executor<'c, Database = D>,
    since: Timestamp,
) -> StoreResult<Vec<(String, Timestamp)>>
where
    i64: Bind<D>,
{
    let q = sqlx::query(D::ENDED_SINCE).bind(since.as_millis());
    fetch_all(db, q, |r| {
        Ok((
            r.text("id_hash")?,
            Timestamp::from_millis(r.int("ended_at")?),
        ))
    })
    .await
}

pub(crate) async fn forget_ended_sessions<'c, D: SessionSql>(
    db: impl Executor<'c, Database = D>,
    before: Timestamp,
) -> StoreResult<u64>
where
    i64: Bind<D>,
{
    execute(db, sqlx::query(D::FORGET_ENDED).bind(before.as_millis())).await
}
