//! Task logs: appending lines (and trimming each task's log to what is kept) and reading
//! them back in order. Each dialect's statements are a [`LogSql`].

use std::collections::BTreeSet;

use baton_core::log::{LogKeep, LogLine, NewLogLine};
use baton_core::{TaskId, Timestamp};
use sqlx::Executor;

use super::dialect::{Bind, Dialect, Tx, execute, fetch_all, fetch_one};
use super::rows::Columns;
use crate::StoreResult;

/// The log statements of a dialect. Parameters are numbered as PostgreSQL numbers them.
pub(crate) trait LogSql: Dialect {
    /// Appends a line (`task_id, attempt, at, level, logger, data, bytes` as `$1`…`$7`);
    /// returns its `seq`.
    const INSERT_LOG: &'static str;
    /// Deletes task `$1`'s lines beyond its newest `$2`, or beyond `$3` bytes of data.
    const TRIM_LOGS: &'static str;
    /// The lines of task `$1` after number `$2`, oldest first, at most `$3`.
    const TASK_LOGS: &'static str;
}

/// The columns [`log_from_row`] reads.
macro_rules! log_columns {
    () => {
        "seq, task_id, attempt, at, level, logger, data"
    };
}
pub(crate) use log_columns;

fn log_from_row<R: Columns>(r: &R) -> StoreResult<LogLine> {
    Ok(LogLine {
        seq: r.int("seq")?,
        task_id: r.task_id("task_id")?,
        attempt: r.int("attempt")? as u32,
        at: Timestamp::from_millis(r.int("at")?),
        level: r.text("level")?,
        logger: r.opt_text("logger")?,
        data: r.json("data")?.unwrap_or_default(),
    })
}

/// Appends `lines` in order, then trims the log of each task they belong to.
pub(crate) async fn append_logs<T: Tx<Db: LogSql>>(
    tx: &mut T,
    lines: &[NewLogLine],
    keep: LogKeep,
) -> StoreResult<Vec<LogLine>>
where
    String: Bind<T::Db>,
    Option<String>: Bind<T::Db>,
    i64: Bind<T::Db>,
{
    let mut stored = Vec::with_capacity(lines.len());
    let mut tasks = BTreeSet::new();
    for l in lines {
        let q = sqlx::query(T::Db::INSERT_LOG)
            .bind(T::Db::id(l.task_id))
            .bind(i64::from(l.attempt))
            .bind(l.at.as_millis())
            .bind(l.level.clone())
            .bind(l.logger.clone())
            .bind(l.data.clone())
            .bind(l.data.len() as i64);
        let seq = fetch_one(tx.exec(), q, |r| r.int("seq")).await?;
        stored.push(LogLine {
            seq,
            task_id: l.task_id,
            attempt: l.attempt,
            at: l.at,
            level: l.level.clone(),
            logger: l.logger.clone(),
            data: serde_json::from_str(&l.data).unwrap_or_default(),
        });
        tasks.insert(l.task_id);
    }
    for id in tasks {
        let q = sqlx::query(T::Db::TRIM_LOGS)
            .bind(T::Db::id(id))
            .bind(i64::from(keep.lines))
            .bind(keep.bytes.min(i64::MAX as u64) as i64);
        execute(tx.exec(), q).await?;
    }
    Ok(stored)
}

pub(crate) async fn task_logs<'c, D: LogSql>(
    db: impl Executor<'c, Database = D>,
    id: TaskId,
    after_seq: i64,
    limit: u32,
) -> StoreResult<Vec<LogLine>>
where
    i64: Bind<D>,
{
    let q = sqlx::query(D::TASK_LOGS)
        .bind(D::id(id))
        .bind(after_seq)
        .bind(i64::from(limit));
    fetch_all(db, q, log_from_row).await
}
