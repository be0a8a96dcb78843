-- The processes of a deployment (nodes, workers), as they last reported themselves.
CREATE TABLE peers (
    id             TEXT    PRIMARY KEY,
    role           TEXT    NOT NULL,
    address        TEXT,
    version        TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    started_at     INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL,
    running        INTEGER NOT NULL,
    finished       INTEGER NOT NULL,
    throughput     REAL    NOT NULL
);
