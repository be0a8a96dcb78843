-- A task's own time to live (an MCP client may ask for one): past `expires_at` a finished
-- task may be deleted before the retention period is over. NULL: retention alone.
ALTER TABLE tasks ADD COLUMN expires_at BIGINT;
CREATE INDEX tasks_expiring ON tasks (expires_at) WHERE expires_at IS NOT NULL AND completed_at IS NOT NULL;
