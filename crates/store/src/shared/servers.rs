//! MCP servers registered at runtime. Each dialect's statements are a [`ServerSql`].

use baton_core::Timestamp;
use serde_json::Value;
use sqlx::Executor;

use super::dialect::{Bind, Dialect, execute, fetch_all};
use super::rows::server_from_row;
use crate::{StoreResult, StoredServer};

/// The server statements of a dialect. Parameters are numbered as PostgreSQL numbers
/// them.
pub(crate) trait ServerSql: Dialect {
    /// `name, config, created_at, updated_at` of every server, by name.
    const LIST_SERVERS: &'static str;
    /// Inserts server `$1` with definition `$2` (JSON text) at `$3`, or replaces its
    /// definition.
    const PUT_SERVER: &'static str;
    /// Deletes server `$1`.
    const DELETE_SERVER: &'static str;
}

pub(crate) async fn list_servers<'c, D: ServerSql>(
    db: impl Executor<'c, Database = D>,
) -> StoreResult<Vec<StoredServer>> {
    fetch_all(db, sqlx::query(D::LIST_SERVERS), server_from_row).await
}

pub(crate) async fn put_server<'c, D: ServerSql>(
    db: impl Executor<'c, Database = D>,
    name: &str,
    config: &Value,
    now: Timestamp,
) -> StoreResult<()>
where
    String: Bind<D>,
    i64: Bind<D>,
{
    let query = sqlx::query(D::PUT_SERVER)
        .bind(name.to_string())
        .bind(config.to_string())
        .bind(now.as_millis());
    execute(db, query).await?;
    Ok(())
}

/// `false` when there was no such server.
pub(crate) async fn delete_server<'c, D: ServerSql>(
    db: impl Executor<'c, Database = D>,
    name: &str,
) -> StoreResult<bool>
where
    String: Bind<D>,
{
    let query = sqlx::query(D::DELETE_SERVER).bind(name.to_string());
    Ok(execute(db, query).await? > 0)
}
