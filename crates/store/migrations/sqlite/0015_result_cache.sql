-- The result cache. A task whose call may be cached carries `cache_key` (a digest of its
-- principal, tool and canonical arguments) while it is an entry or may become one; a
-- later identical call completes at once from the newest completed entry still fresh
-- (`cached_from`), or, while one is in flight, waits for it (`follows`: not claimed
-- until that call ends, then completed with its result, or released to run itself).
-- Invalidating a tool's entries (`*`: every tool's) records when: only calls completed
-- after that answer.
ALTER TABLE tasks ADD COLUMN cache_key TEXT;
ALTER TABLE tasks ADD COLUMN cached_from TEXT;
ALTER TABLE tasks ADD COLUMN follows TEXT;
CREATE INDEX tasks_cache ON tasks (cache_key, completed_at) WHERE cache_key IS NOT NULL;
CREATE INDEX tasks_followers ON tasks (follows) WHERE follows IS NOT NULL;
-- Followers are never claimed: the claim order leaves them out, so claims need not look
-- at them (and the planner, which knows nothing of `follows` on a young table, sees the
-- claim's condition in the index's own).
DROP INDEX tasks_pending;
CREATE INDEX tasks_pending ON tasks (priority DESC, fair_key, run_at, seq)
    WHERE status = 'pending' AND follows IS NULL;
CREATE TABLE cache_invalidations (
    tool TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);

-- Analytics count the calls the cache answered and the ones that ran, and what the hits
-- saved (what their calls reported they cost).
ALTER TABLE analytics_minutes ADD COLUMN cache_hits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE analytics_minutes ADD COLUMN cache_misses BIGINT NOT NULL DEFAULT 0;
ALTER TABLE analytics_minutes ADD COLUMN saved_usd REAL;
ALTER TABLE analytics_minutes ADD COLUMN saved_costed BIGINT NOT NULL DEFAULT 0;
