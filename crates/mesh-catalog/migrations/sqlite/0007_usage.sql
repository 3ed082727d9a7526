-- Who reads which output port: one row per reader and port major, counted at every governed
-- read. The input for "consumers of this also use" and for telling readers of a deprecation
-- (the event log keeps every read; this is its running sum).
CREATE TABLE port_usage (
    reader     TEXT NOT NULL,
    product    TEXT NOT NULL,
    port       TEXT NOT NULL,
    major      BIGINT NOT NULL,
    reads      BIGINT NOT NULL,
    rows_read  BIGINT NOT NULL,
    first_at   TEXT NOT NULL,
    last_at    TEXT NOT NULL,
    PRIMARY KEY (reader, product, port, major)
);
CREATE INDEX port_usage_product ON port_usage (product, last_at);
