-- Cross-domain access: requests to read an output port (per major version), the owning domain's
-- decisions, and the time-boxed grants they make. Nothing here is ever deleted: a decision,
-- an expiry or a revocation is a new state, and every change is also in the event log.

CREATE TABLE access_requests (
    id           TEXT PRIMARY KEY,
    product      TEXT NOT NULL,
    port         TEXT NOT NULL,
    major        BIGINT NOT NULL,
    requester    TEXT NOT NULL,
    consumer     TEXT,
    purpose      TEXT NOT NULL,
    columns      TEXT NOT NULL,
    days         BIGINT NOT NULL,
    state        TEXT NOT NULL,
    approvals    TEXT NOT NULL,
    needed       BIGINT NOT NULL,
    policy       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    decided_at   TEXT,
    reason       TEXT,
    revision     BIGINT NOT NULL
);
CREATE INDEX access_requests_port ON access_requests (product, port, state);
CREATE INDEX access_requests_requester ON access_requests (requester, state);

CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    request     TEXT NOT NULL,
    product     TEXT NOT NULL,
    port        TEXT NOT NULL,
    major       BIGINT NOT NULL,
    grantee     TEXT NOT NULL,
    columns     TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    granted_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT,
    revoked_by  TEXT,
    reason      TEXT
);
CREATE INDEX grants_grantee ON grants (grantee, product, port, major);
CREATE INDEX grants_port ON grants (product, port);
