-- Workflows: DAGs of steps, each step one task. A step's task names its workflow and
-- step; the workflow row keeps the definition, the overall status, and the state of
-- steps that ended without a task (skipped, cancelled before starting).

CREATE TABLE workflows (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    name         TEXT    NOT NULL,
    owner        TEXT    NOT NULL,
    definition   TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    steps        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    completed_at INTEGER
);
-- Listing a principal's workflows, newest first.
CREATE INDEX workflows_owner ON workflows (owner, seq);
-- The coordinator's scan of what is still running.
CREATE INDEX workflows_running ON workflows (seq) WHERE status = 'running';

ALTER TABLE tasks ADD COLUMN workflow_id TEXT;
ALTER TABLE tasks ADD COLUMN step_id TEXT;
-- A workflow's steps.
CREATE INDEX tasks_workflow ON tasks (workflow_id) WHERE workflow_id IS NOT NULL;
-- A task's children (tasks created by an agent while running it).
CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;
