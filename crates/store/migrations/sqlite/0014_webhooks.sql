-- Webhooks: HTTP callbacks for task, workflow and server events, per principal, and the
-- outbox of their deliveries. A delivery row is written in the same transaction as the
-- event that causes it (see `shared/webhooks.rs`), so none is lost to a crash after the
-- commit; a delivery loop claims due rows under a lease (`lease_until`) and records
-- each attempt. `events` holds the concrete event types between commas
-- (`,task.completed,task.failed,`) so one LIKE matches a type.
CREATE TABLE webhooks (
    id              TEXT    NOT NULL PRIMARY KEY,
    owner           TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    events          TEXT    NOT NULL,
    tool            TEXT,
    queue           TEXT,
    workflow        TEXT,
    all_owners      INTEGER NOT NULL,
    secret          TEXT    NOT NULL,
    previous_secret TEXT,
    previous_until  INTEGER,
    description     TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks (owner, created_at);

-- A one-off callback URL given with a task (`callback_url` on submit): rare, so kept
-- apart from the task row, which stays as narrow as before.
CREATE TABLE task_callbacks (
    task_id TEXT NOT NULL PRIMARY KEY,
    url     TEXT NOT NULL
);

-- The outbox. `id` is the `webhook-id` header, the same for every attempt. `url` is
-- set for a task's callback (no webhook); `payload` is the body, fixed at the first
-- attempt. `attempts` counts claims and fences the write of an attempt's outcome.
CREATE TABLE webhook_deliveries (
    id               TEXT    NOT NULL PRIMARY KEY,
    webhook_id       TEXT,
    owner            TEXT    NOT NULL,
    url              TEXT,
    event_type       TEXT    NOT NULL,
    task_id          TEXT,
    workflow_id      TEXT,
    subject          TEXT,
    event_at         INTEGER NOT NULL,
    payload          TEXT,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    last_status_code INTEGER,
    last_error       TEXT,
    last_latency_ms  INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
-- The delivery loop's scan.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- A webhook's history, newest first.
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

-- The last health of each MCP server as some process saw it change: the process whose
-- write changes it enqueues `server.down` / `server.up`, so a change several processes
-- notice is delivered once.
CREATE TABLE server_health (
    name       TEXT    NOT NULL PRIMARY KEY,
    up         INTEGER NOT NULL,
    changed_at INTEGER NOT NULL
);
