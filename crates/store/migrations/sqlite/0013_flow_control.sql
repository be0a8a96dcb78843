-- Rate limits: one token bucket per limited tool or server, shared by every process. A
-- bucket holds `milli_tokens` thousandths of a token as of `at` (ms); claims refill it
-- from the time passed, take a token per task they start, and write it back, all in the
-- claim's transaction.
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    milli_tokens BIGINT NOT NULL,
    at BIGINT NOT NULL
);

-- Fair shares: within a priority, claims go by `fair_key` (the place the store gave the
-- task in its group's line, never behind the head of the whole line), so groups (owner
-- and group key) take turns. `tasks_pending_group` finds a group's last pending task.
ALTER TABLE tasks ADD COLUMN group_key TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN fair_key BIGINT NOT NULL DEFAULT 0;
DROP INDEX tasks_pending;
CREATE INDEX tasks_pending ON tasks (priority DESC, fair_key, run_at, seq) WHERE status = 'pending';
CREATE INDEX tasks_pending_group ON tasks (owner, group_key, fair_key) WHERE status = 'pending';
