-- The result cache. A task whose call may be cached carries `cache_key` (a digest of its
-- principal, tool and canonical arguments) while it is an entry or may become one; a
-- later identical call completes at once from the newest completed entry still fresh
-- (`cached_from`), or, while one is in flight, waits for it (`follows`: not claimed
-- until that call ends, then completed with its result, or released to run itself).
ALTER TABLE tasks ADD COLUMN cache_key TEXT;
ALTER TABLE tasks ADD COLUMN cached_from UUID;
ALTER TABLE tasks ADD COLUMN follows UUID;
CREATE INDEX tasks_cache ON tasks (cache_key, completed_at) WHERE cache_key IS NOT NULL;
CREATE INDEX tasks_followers ON tasks (follows) WHERE follows IS NOT NULL;
