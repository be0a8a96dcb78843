//! Deployment-wide singleton roles: a session-level advisory lock, keyed by the schema
//! and the role's name, on a connection of its own that the guard keeps. The lock lives
//! exactly as long as that connection, so PostgreSQL releases it when the holder dies.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::error::{connect_error, db_err};
use crate::{SingletonGuard, StoreResult};

/// First key of the advisory locks of singleton roles (the second hashes the schema and
/// the role's name).
const SINGLETON_LOCK: i32 = 0x6261_7473; // "bats"

// The statements.

const TRY_LOCK: &str = "SELECT pg_try_advisory_lock($1, hashtext(current_schema() || '/' || $2))";

const CHECK: &str = "SELECT 1";

/// See [`Store::try_singleton`](crate::Store::try_singleton).
pub(super) async fn try_singleton(
    connect: &PgConnectOptions,
    target: &str,
    name: &str,
) -> StoreResult<Option<Box<dyn SingletonGuard>>> {
    let mut conn = PgConnection::connect_with(connect)
        .await
        .map_err(|e| connect_error(target, e))?;
    let got: bool = sqlx::query_scalar(TRY_LOCK)
        .bind(SINGLETON_LOCK)
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .map_err(db_err)?;
    if !got {
        let _ = conn.close().await;
        return Ok(None);
    }
    Ok(Some(Box::new(PgSingleton {
        conn: tokio::sync::Mutex::new(conn),
    })))
}

/// The connection holding a singleton's advisory lock; the lock goes with it.
struct PgSingleton {
    conn: tokio::sync::Mutex<PgConnection>,
}

#[async_trait]
impl SingletonGuard for PgSingleton {
    async fn held(&self) -> bool {
        let mut conn = self.conn.lock().await;
        let check = sqlx::query(CHECK).execute(&mut *conn);
        matches!(
            tokio::time::timeout(Duration::from_secs(5), check).await,
            Ok(Ok(_))
        )
    }

    /// Ends the session holding the lock (PostgreSQL releases it at once), instead of
    /// dropping the socket and leaving the server to notice: after a failed check the
    /// connection may be half-open, and the lock held until the server times it out.
    async fn release(self: Box<Self>) {
        let conn = self.conn.into_inner();
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
    }
}
