-- The processes of a deployment (nodes, workers), as they last reported themselves.
CREATE TABLE peers (
    id             TEXT             PRIMARY KEY,
    role           TEXT             NOT NULL,
    address        TEXT,
    version        TEXT             NOT NULL,
    state          TEXT             NOT NULL,
    started_at     BIGINT           NOT NULL,
    last_heartbeat BIGINT           NOT NULL,
    running        BIGINT           NOT NULL,
    finished       BIGINT           NOT NULL,
    throughput     DOUBLE PRECISION NOT NULL
);
