-- The archive of finished tasks and workflows in object storage (`[archive]`).
-- Retention first records a batch with its members (`writing`), then writes the batch's
-- object, then in one transaction writes the index, deletes the members' rows and marks
-- the batch `done`. A batch still `writing` after a crash is written again, from its
-- recorded members, to the same path: nothing is lost and nothing archived twice.
CREATE TABLE archive_batches (
    id         TEXT    PRIMARY KEY,
    -- 'task' (tasks of no workflow) or 'workflow' (with its steps' tasks)
    kind       TEXT    NOT NULL,
    -- the UTC day (YYYY-MM-DD) its members finished
    day        TEXT    NOT NULL,
    -- the object's key under the archive's prefix
    path       TEXT    NOT NULL,
    -- 'writing' or 'done'
    state      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    done_at    INTEGER
);
CREATE INDEX archive_batches_writing ON archive_batches (created_at) WHERE state = 'writing';

-- The items of the batches still being written; an item is in at most one batch.
CREATE TABLE archive_members (
    kind     TEXT NOT NULL,
    item_id  TEXT NOT NULL,
    batch_id TEXT NOT NULL REFERENCES archive_batches (id),
    PRIMARY KEY (kind, item_id)
);
CREATE INDEX archive_members_batch ON archive_members (batch_id);

-- Where each archived task (workflow steps included) and workflow is: reads of an id the
-- store no longer has look here.
CREATE TABLE archive_index (
    kind        TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    archived_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
