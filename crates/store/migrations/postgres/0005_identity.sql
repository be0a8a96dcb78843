-- Identity and audit: API keys, the audit log, and queues that belong to a principal
-- (PostgreSQL; the same model as SQLite's 0005).

-- API keys. Only a SHA-256 of each secret is kept (the secret is 256 random bits, shown
-- once). A rotation keeps the previous secret's hash valid until `previous_until`.
CREATE TABLE api_keys (
    key_id         TEXT   PRIMARY KEY,
    name           TEXT   NOT NULL,
    principal      TEXT   NOT NULL,
    scopes         JSON   NOT NULL,
    secret_hash    TEXT   NOT NULL,
    previous_hash  TEXT,
    previous_until BIGINT,
    rate_limit     TEXT,
    max_active     BIGINT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT,
    revoked_at     BIGINT,
    updated_at     BIGINT NOT NULL
);
-- Nodes refresh their key caches with what changed since they last looked.
CREATE INDEX api_keys_updated ON api_keys (updated_at);

-- The audit log: append-only (one log for a cluster); retention deletes the oldest.
CREATE TABLE audit_log (
    seq        BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    principal  TEXT   NOT NULL,
    credential TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    target     TEXT,
    outcome    TEXT   NOT NULL,
    status     BIGINT,
    remote     TEXT,
    request_id TEXT,
    detail     JSON
);
CREATE INDEX audit_log_principal ON audit_log (principal, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- A queue's settings belong to the principal whose tasks it holds: pausing one tenant's
-- queue does not stop another's tasks of the same queue name.
CREATE TABLE queue_settings (
    owner      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    paused     BOOLEAN NOT NULL DEFAULT false,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (owner, name)
);
INSERT INTO queue_settings (owner, name, paused, updated_at)
    SELECT DISTINCT t.owner, q.name, q.paused, q.updated_at
    FROM queues q JOIN tasks t ON t.queue = q.name;
DROP TABLE queues;
