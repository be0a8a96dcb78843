-- Rate limits: one token bucket per limited tool or server, shared by every process. A
-- bucket holds `milli_tokens` thousandths of a token as of `at` (ms); claims refill it
-- from the time passed, take a token per task they start, and write it back, all in the
-- claim's transaction.
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    milli_tokens BIGINT NOT NULL,
    at BIGINT NOT NULL
);
