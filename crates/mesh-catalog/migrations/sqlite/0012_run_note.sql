-- Why a run ended as it did when no one saw it end: a run settled from the Delta log by a later
-- run (its process died after or before its commit) says so here.
ALTER TABLE runs ADD COLUMN note TEXT;
