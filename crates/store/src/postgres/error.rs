//! PostgreSQL's SQLSTATE codes as the errors a client can act on, and running again the
//! transactions that lost a deadlock or a serialization conflict.

use std::time::Duration;

use crate::StoreError;

/// How often a transaction that lost a deadlock or serialization conflict is run again.
pub(super) const MAX_CONFLICT_RETRIES: u32 = 8;

/// The prefix of a `StoreError::Busy` that stands for a conflict worth retrying.
pub(super) const CONFLICT: &str = "transaction conflict";

/// Maps PostgreSQL's SQLSTATE codes to the errors a client can act on.
pub(super) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let msg = db.message().to_string();
            match code.as_str() {
                // serialization_failure, deadlock_detected: run the transaction again.
                "40001" | "40P01" => StoreError::Busy(format!("{CONFLICT}: {msg}")),
                // lock_not_available, query_canceled (lock or statement timeout).
                "55P03" | "57014" => StoreError::Busy(msg),
                "53100" => StoreError::DiskFull(msg),
                // read_only_sql_transaction: a standby, or default_transaction_read_only.
                "25006" => StoreError::ReadOnly(msg),
                "XX001" | "XX002" => StoreError::Corrupt(msg),
                // Connection exceptions, shutdowns and restarts (57P01..57P04), lack of
                // resources (too many connections, out of memory), failed logins, a
                // missing database: nothing a retry of the same request could not fix
                // once the server is back or reconfigured.
                c if c.starts_with("08")
                    || c.starts_with("57P")
                    || c.starts_with("53")
                    || c.starts_with("28")
                    || c == "3D000" =>
                {
                    StoreError::Unavailable(msg)
                }
                _ => StoreError::Database(msg),
            }
        }
        sqlx::Error::PoolTimedOut => {
            StoreError::Busy("timed out waiting for a database connection".into())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the store is closed".into()),
        sqlx::Error::Io(io) => StoreError::Unavailable(io.to_string()),
        sqlx::Error::Tls(t) => StoreError::Unavailable(format!("TLS: {t}")),
        _ => StoreError::Database(e.to_string()),
    }
}

/// A failure to connect: whatever is not more specific is unavailability.
pub(super) fn connect_error(target: &str, e: sqlx::Error) -> StoreError {
    match db_err(e) {
        StoreError::Database(m) | StoreError::Unavailable(m) => {
            StoreError::Unavailable(format!("cannot connect to PostgreSQL at {target}: {m}"))
        }
        other => other,
    }
}

pub(super) fn is_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Busy(m) if m.starts_with(CONFLICT))
}

/// A short random pause before running a conflicting transaction again, growing with
/// each retry, so that the transactions that collided do not collide again.
pub(super) async fn conflict_backoff(retry: u32) {
    let cap = 2u64 << retry.min(6);
    tokio::time::sleep(Duration::from_millis(rand::random_range(1..=cap))).await;
}

/// Evaluates `$attempt` (an expression yielding a `StoreResult`) again while it fails
/// with a conflict (deadlock, serialization failure), a few times.
macro_rules! retry_conflicts {
    ($attempt:expr) => {{
        let mut retries = 0u32;
        loop {
            match $attempt {
                Err(e)
                    if $crate::postgres::error::is_conflict(&e)
                        && retries < $crate::postgres::error::MAX_CONFLICT_RETRIES =>
                {
                    retries += 1;
                    tracing::debug!(retries, error = %e, "retrying a conflicting transaction");
                    $crate::postgres::error::conflict_backoff(retries).await;
                }
                other => break other,
            }
        }
    }};
}
pub(super) use retry_conflicts;

/// Runs `$body` (a future using `$c: &mut PgConnection`) in a transaction and commits it;
/// rolled back on error and run again on conflicts. A macro rather than a function taking
/// a closure, so the body can borrow the caller's arguments across the retry loop.
macro_rules! transaction {
    ($pool:expr, |$c:ident| $body:expr) => {
        $crate::postgres::error::retry_conflicts!({
            let attempt: $crate::StoreResult<_> = async {
                let mut tx = $pool
                    .begin()
                    .await
                    .map_err($crate::postgres::error::db_err)?;
                let value = {
                    let $c: &mut sqlx::postgres::PgConnection = &mut tx;
                    $body.await
                };
                match value {
                    Ok(v) => {
                        tx.commit().await.map_err($crate::postgres::error::db_err)?;
                        Ok(v)
                    }
                    Err(e) => {
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                }
            }
            .await;
            attempt
        })
    };
}
pub(super) use transaction;
