-- Values every process of a deployment shares, made once by whichever asks first (e.g.
-- the key that signs MCP session ids).
CREATE TABLE cluster_secrets (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- MCP sessions their clients ended (by a hash of the session id): refused on every node.
CREATE TABLE ended_sessions (
    id_hash  TEXT    PRIMARY KEY,
    ended_at INTEGER NOT NULL
);
CREATE INDEX ended_sessions_by_time ON ended_sessions (ended_at);
