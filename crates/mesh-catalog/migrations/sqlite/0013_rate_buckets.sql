-- Rate limits shared by every server on this catalog: one token bucket per key (what is counted
-- and for whom), so N servers enforce one limit, not N.
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    at_ms INTEGER NOT NULL
);
