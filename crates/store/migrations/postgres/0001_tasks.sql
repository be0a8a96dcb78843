-- Tasks, their append-only event log, and queue settings (PostgreSQL).
--
-- The same model as the SQLite schema, version for version. Times are milliseconds since
-- the Unix epoch (BIGINT), as in SQLite, so both backends share one notion of time and
-- no time zone is ever involved. Task ids are native UUIDs: 16 bytes instead of 36
-- characters in the two indexes that hold them (`tasks.id`, `task_events.task_id`).
-- JSON documents are `json`, not `jsonb`: `json` keeps the exact text it was given (key
-- order, number spelling, `\u0000` escapes, which `jsonb` rejects), so every value reads
-- back exactly as it was written, while still being validated and queryable with the
-- JSON operators. Nothing in Baton searches inside these documents, so `jsonb`'s
-- parse-and-convert on every write would buy nothing.

-- Insertion order of tasks: scheduling tie-break and list cursor. A sequence (never an
-- identity with a per-session cache) so numbers only grow and a purged task's number is
-- never handed out again; the store draws a batch's numbers itself (see `postgres.rs`).
CREATE SEQUENCE task_seq;

CREATE TABLE tasks (
    seq              BIGINT  PRIMARY KEY DEFAULT nextval('task_seq'),
    id               UUID    NOT NULL UNIQUE,
    tool             TEXT    NOT NULL,
    arguments        JSON    NOT NULL,
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    progress         DOUBLE PRECISION,
    progress_message TEXT,
    attempt          BIGINT  NOT NULL DEFAULT 0,
    max_attempts     BIGINT  NOT NULL,
    run_at           BIGINT  NOT NULL,
    timeout_ms       BIGINT,
    idempotency_key  TEXT,
    owner            TEXT    NOT NULL,
    parent_id        UUID,
    metadata         JSON,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    updated_at       BIGINT  NOT NULL,
    completed_at     BIGINT,
    result           JSON,
    error            JSON,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    lease_owner      TEXT,
    lease_token      BIGINT,
    lease_expires_at BIGINT,
    input_requests   JSON,
    checkpoint       JSON
);
ALTER SEQUENCE task_seq OWNED BY tasks.seq;

-- Every task is updated a few times in its life (claimed, heartbeats, progress,
-- finished): leave room on each page so updates that touch no indexed column
-- (heartbeats, progress) stay on the page (HOT) and need no index entries. Vacuum early:
-- claims walk `tasks_pending`, and dead entries of claimed tasks slow every claim down
-- until vacuum removes them.
ALTER TABLE tasks SET (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02,
                       autovacuum_analyze_scale_factor = 0.02);

-- The claim order, over runnable candidates only.
CREATE INDEX tasks_pending ON tasks (priority DESC, run_at, seq) WHERE status = 'pending';
-- Heartbeats (by owner) and lease rescue scan only leased tasks.
CREATE INDEX tasks_leased ON tasks (lease_owner) WHERE status IN ('running', 'input_required');
-- Same owner + key = same task (also the arbiter of `ON CONFLICT` when concurrent nodes
-- store the same key).
CREATE UNIQUE INDEX tasks_idempotency ON tasks (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Retention, oldest completion first.
CREATE INDEX tasks_finished ON tasks (completed_at) WHERE completed_at IS NOT NULL;
-- Recent durations of a tool (completion estimates).
CREATE INDEX tasks_tool_completed ON tasks (tool, completed_at) WHERE status = 'completed';
-- Counts by status (active cap, queue stats, running per tool for concurrency limits).
CREATE INDEX tasks_status ON tasks (status, queue, tool);
-- Listing a principal's tasks, newest first.
CREATE INDEX tasks_owner ON tasks (owner, seq);

-- Event numbers: unique across tasks and increasing per task. CACHE 1 (the default) is
-- required: with a per-session cache two connections would hand out interleaved ranges,
-- and a task's later event could get a smaller number than its earlier one.
CREATE SEQUENCE task_event_seq;

CREATE TABLE task_events (
    seq      BIGINT PRIMARY KEY DEFAULT nextval('task_event_seq'),
    task_id  UUID   NOT NULL,
    at       BIGINT NOT NULL,
    kind     TEXT   NOT NULL,
    status   TEXT   NOT NULL,
    attempt  BIGINT,
    progress DOUBLE PRECISION,
    message  TEXT,
    data     JSON
);
ALTER SEQUENCE task_event_seq OWNED BY task_events.seq;
CREATE INDEX task_events_task ON task_events (task_id, seq);

CREATE TABLE queues (
    name       TEXT    PRIMARY KEY,
    paused     BOOLEAN NOT NULL DEFAULT false,
    updated_at BIGINT  NOT NULL
);
