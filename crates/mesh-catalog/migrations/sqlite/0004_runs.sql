-- Pipeline runs (write-audit-publish) and the snapshot of each output port readers get.
--
-- A run is recorded before it writes (`running`), marked `committing` with the Delta version it
-- is about to commit, and finished as `succeeded` (the port's snapshot moves to that version in
-- the same transaction) or `failed`. A run found `running` or `committing` whose process is gone
-- is settled from the Delta log: its commit is there (a crash after the Delta commit: the snapshot
-- moves) or it is not (it failed; its files were never committed, so nobody sees them).

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    product       TEXT NOT NULL,
    version       TEXT NOT NULL,
    port          TEXT NOT NULL,
    major         BIGINT NOT NULL,
    location      TEXT NOT NULL,
    state         TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL,
    finished_at   TEXT,
    owner         TEXT NOT NULL,
    delta_version BIGINT,
    rows_out      BIGINT,
    bytes_out     BIGINT,
    inputs        TEXT NOT NULL,
    checks        TEXT,
    error         TEXT,
    actor         TEXT NOT NULL
);
CREATE INDEX runs_port ON runs (product, port, started_at);

CREATE TABLE snapshots (
    product       TEXT NOT NULL,
    port          TEXT NOT NULL,
    major         BIGINT NOT NULL,
    version       TEXT NOT NULL,
    run           TEXT NOT NULL,
    location      TEXT NOT NULL,
    delta_version BIGINT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (product, port, major)
);
