-- Answers to a task's input requests, waiting for its tool to pick them up.
ALTER TABLE tasks ADD COLUMN input_responses JSON;

-- MCP servers registered at runtime (servers from the config file are not stored).
CREATE TABLE servers (
    name       TEXT   PRIMARY KEY,
    config     JSON   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
