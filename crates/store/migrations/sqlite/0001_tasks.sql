-- Tasks, their append-only event log, and queue settings.
-- Times are milliseconds since the Unix epoch; JSON columns hold serialised JSON text.

CREATE TABLE tasks (
    -- Insertion order: scheduling tie-break and list cursor. AUTOINCREMENT so a purged
    -- task's number is never handed out again (cursors stay meaningful).
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    tool             TEXT    NOT NULL,
    arguments        TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    progress         REAL,
    progress_message TEXT,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    timeout_ms       INTEGER,
    idempotency_key  TEXT,
    owner            TEXT    NOT NULL,
    parent_id        TEXT,
    metadata         TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    updated_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    result           TEXT,
    error            TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_token      INTEGER,
    lease_expires_at INTEGER,
    input_requests   TEXT,
    checkpoint       TEXT
);

-- The claim order, over runnable candidates only.
CREATE INDEX tasks_pending ON tasks (priority DESC, run_at, seq) WHERE status = 'pending';
-- Heartbeats (by owner) and lease rescue scan only leased tasks.
CREATE INDEX tasks_leased ON tasks (lease_owner) WHERE status IN ('running', 'input_required');
-- Same owner + key = same task.
CREATE UNIQUE INDEX tasks_idempotency ON tasks (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Retention, oldest completion first.
CREATE INDEX tasks_finished ON tasks (completed_at) WHERE completed_at IS NOT NULL;
-- Recent durations of a tool (completion estimates).
CREATE INDEX tasks_tool_completed ON tasks (tool, completed_at) WHERE status = 'completed';
-- Counts by status (active cap, queue stats, running per tool).
CREATE INDEX tasks_status ON tasks (status, queue, tool);
-- Listing a principal's tasks, newest first.
CREATE INDEX tasks_owner ON tasks (owner, seq);

CREATE TABLE task_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id  TEXT    NOT NULL,
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    status   TEXT    NOT NULL,
    attempt  INTEGER,
    progress REAL,
    message  TEXT,
    data     TEXT
);
CREATE INDEX task_events_task ON task_events (task_id, seq);

CREATE TABLE queues (
    name       TEXT    PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
