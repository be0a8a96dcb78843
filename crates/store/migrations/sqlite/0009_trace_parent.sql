-- The W3C traceparent of the request that made a task: its runs join that trace.
ALTER TABLE tasks ADD COLUMN trace_parent TEXT;
