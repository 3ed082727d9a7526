-- Scheduled runs: one row per product and schedule slot. The key makes a slot claimable once,
-- by whichever server asks first, so N servers on one catalog run each slot exactly once.
CREATE TABLE schedule_slots (
    product TEXT NOT NULL,
    -- The slot's instant, RFC 3339 in UTC (sorts as text).
    slot_at TEXT NOT NULL,
    -- The server that claimed it, and when.
    claimed_by TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    -- claimed | succeeded | skipped | failed
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_id TEXT,
    finished_at TEXT,
    PRIMARY KEY (product, slot_at)
);
