-- What tools logged while they ran, per task, in order; trimmed to the newest lines and
-- bytes of each task as lines arrive. `data` is JSON text; `bytes` its length.
CREATE TABLE task_logs (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id  TEXT    NOT NULL,
    attempt  INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    level    TEXT    NOT NULL,
    logger   TEXT,
    data     TEXT    NOT NULL,
    bytes    INTEGER NOT NULL
);
CREATE INDEX task_logs_task ON task_logs (task_id, seq);
