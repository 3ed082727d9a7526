-- What the orchestrator runs: a product version's pipeline (its transform.sql, published and
-- versioned with it) and its schedule (the `schedule` custom property's value, JSON), so any
-- server of the catalog can run it without the team's checkout.
ALTER TABLE product_versions ADD COLUMN transform TEXT;
ALTER TABLE product_versions ADD COLUMN schedule TEXT;
-- Why a slot ran (`cron` or `upstream`), and what its run read and ran (a hash of the code and
-- the inputs' versions): a slot whose fingerprint equals the last success's is skipped.
ALTER TABLE schedule_slots ADD COLUMN cause TEXT;
ALTER TABLE schedule_slots ADD COLUMN fingerprint TEXT;
-- Why a failed slot failed (its last attempt's error).
ALTER TABLE schedule_slots ADD COLUMN error TEXT;
