-- Rows a run read from its sources and input ports.
ALTER TABLE runs ADD COLUMN rows_in BIGINT;
