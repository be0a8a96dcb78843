-- Workflows: DAGs of steps, each step one task (PostgreSQL; the same model as SQLite's
-- 0004). A step's task names its workflow and step; the workflow row keeps the
-- definition, the overall status, and the state of steps that ended without a task.

CREATE TABLE workflows (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    name         TEXT    NOT NULL,
    owner        TEXT    NOT NULL,
    definition   JSON    NOT NULL,
    status       TEXT    NOT NULL,
    steps        JSON    NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    completed_at BIGINT
);
CREATE INDEX workflows_owner ON workflows (owner, seq);
CREATE INDEX workflows_running ON workflows (seq) WHERE status = 'running';

ALTER TABLE tasks ADD COLUMN workflow_id TEXT;
ALTER TABLE tasks ADD COLUMN step_id TEXT;
CREATE INDEX tasks_workflow ON tasks (workflow_id) WHERE workflow_id IS NOT NULL;
CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;
