-- A peer asked to stop claiming tasks (drained) keeps running what it holds; it reads the
-- flag with each heartbeat. A new start of the process (another started_at) clears it.
ALTER TABLE peers ADD COLUMN draining INTEGER NOT NULL DEFAULT 0;
