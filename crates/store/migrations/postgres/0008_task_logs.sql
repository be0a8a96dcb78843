-- What tools logged while they ran, per task, in order; trimmed to the newest lines and
-- bytes of each task as lines arrive. `data` is JSON; `bytes` the length of its text.
CREATE TABLE task_logs (
    seq      BIGSERIAL PRIMARY KEY,
    task_id  UUID    NOT NULL,
    attempt  BIGINT  NOT NULL,
    at       BIGINT  NOT NULL,
    level    TEXT    NOT NULL,
    logger   TEXT,
    data     JSON    NOT NULL,
    bytes    BIGINT  NOT NULL
);
CREATE INDEX task_logs_task ON task_logs (task_id, seq);
