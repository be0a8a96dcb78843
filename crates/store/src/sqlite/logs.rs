//! The task log statements of SQLite.

use sqlx::Sqlite;

use crate::shared::logs::{LogSql, log_columns};

impl LogSql for Sqlite {
    const INSERT_LOG: &'static str = "INSERT INTO task_logs \
         (task_id, attempt, at, level, logger, data, bytes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING seq";

    const TRIM_LOGS: &'static str = "DELETE FROM task_logs WHERE seq IN \
         (SELECT seq FROM (SELECT seq, \
              row_number() OVER (ORDER BY seq DESC) AS n, \
              sum(bytes) OVER (ORDER BY seq DESC) AS total \
          FROM task_logs WHERE task_id = ?1) WHERE n > ?2 OR total > ?3)";

    const TASK_LOGS: &'static str = concat!(
        "SELECT ",
        log_columns!(),
        " FROM task_logs WHERE task_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    );
}
