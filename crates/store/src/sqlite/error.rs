//! SQLite's result codes as the errors a client can act on.

use std::path::Path;

use crate::StoreError;

/// Maps SQLite's result codes to the errors a client can act on.
pub(super) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            let msg = db.message().to_string();
            match primary {
                Some(5) | Some(6) => StoreError::Busy(msg),
                Some(13) => StoreError::DiskFull(msg),
                Some(8) => StoreError::ReadOnly(msg),
                Some(11) | Some(26) => StoreError::Corrupt(msg),
                Some(10) if msg.contains("full") => StoreError::DiskFull(msg),
                Some(10) | Some(14) => StoreError::Unavailable(msg),
                _ => StoreError::Database(msg),
            }
        }
        sqlx::Error::PoolTimedOut => {
            StoreError::Busy("timed out waiting for a database connection".into())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the store is closed".into()),
        sqlx::Error::Io(io) => StoreError::Unavailable(io.to_string()),
        _ => StoreError::Database(e.to_string()),
    }
}

/// A failure to open the database: whatever is not more specific is unavailability.
pub(super) fn open_error(path: &Path, e: sqlx::Error) -> StoreError {
    match db_err(e) {
        StoreError::Database(m) => {
            StoreError::Unavailable(format!("cannot open {}: {m}", path.display()))
        }
        other => other,
    }
}

/// A write sent to a writer task that is gone.
pub(super) fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}
