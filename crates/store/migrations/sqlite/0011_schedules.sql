-- Schedules: a task submitted on a cron, per principal. `next_at` is the next tick (ms);
-- a tick is fired by submitting with an idempotency key made from the schedule and the
-- tick, then moving `next_at` on only from the value read, so a tick fires once across
-- processes and restarts. `schedule_runs` lists the tasks each tick made.
CREATE TABLE schedules (
    owner        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    cron         TEXT    NOT NULL,
    timezone     TEXT    NOT NULL,
    task         TEXT    NOT NULL,
    overlap      TEXT    NOT NULL,
    catch_up     TEXT    NOT NULL,
    paused       INTEGER NOT NULL,
    next_at      INTEGER NOT NULL,
    last_at      INTEGER,
    last_task_id TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (owner, name)
);
CREATE INDEX schedules_due ON schedules (next_at) WHERE paused = 0;

CREATE TABLE schedule_runs (
    owner   TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    tick_at INTEGER NOT NULL,
    task_id TEXT    NOT NULL,
    PRIMARY KEY (owner, name, tick_at)
);
