-- What the platform observes of each output port: every governed read (by anyone, through
-- any protocol), with how long it took and whether it failed. The SLA monitor computes
-- availability, error rate and query latency over a rolling window from these, and prunes what
-- is older than the longest window (90 days).
CREATE TABLE port_observations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    product    TEXT NOT NULL,
    port       TEXT NOT NULL,
    major      BIGINT NOT NULL,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    rows_read  BIGINT,
    error      TEXT
);
CREATE INDEX port_observations_port ON port_observations (product, port, major, at);
CREATE INDEX port_observations_at ON port_observations (at);

-- The monitor's probes of each output port, added up per hour: a probe a minute for 90 days
-- would otherwise be 130,000 rows per port. Stored in its key's order (WITHOUT ROWID): a pass
-- reads each port's hours as one range.
CREATE TABLE port_probes (
    product    TEXT NOT NULL,
    port       TEXT NOT NULL,
    major      BIGINT NOT NULL,
    hour       TEXT NOT NULL,
    probes     BIGINT NOT NULL,
    failures   BIGINT NOT NULL,
    last_at    TEXT NOT NULL,
    last_error TEXT,
    PRIMARY KEY (product, port, major, hour)
) WITHOUT ROWID;
CREATE INDEX port_probes_hour ON port_probes (hour);

-- Service-level violations: one row per breach of one objective of one port, open while it lasts.
-- At most one open row per objective, whichever monitor (or `mesh sla check`) saw it first.
CREATE TABLE sla_violations (
    id          TEXT PRIMARY KEY,
    product     TEXT NOT NULL,
    port        TEXT NOT NULL,
    major       BIGINT NOT NULL,
    property    TEXT NOT NULL,
    objective   TEXT NOT NULL,
    observed    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    detected_at TEXT NOT NULL,
    ended_at    TEXT
);
CREATE UNIQUE INDEX sla_violations_open ON sla_violations (product, port, major, property)
    WHERE ended_at IS NULL;
CREATE INDEX sla_violations_product ON sla_violations (product, started_at);

-- Every webhook delivery: what was sent where, how many attempts, how it ended.
CREATE TABLE webhook_deliveries (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    event       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    BIGINT NOT NULL,
    last_status BIGINT,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
