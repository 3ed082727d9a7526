-- Scoped credentials: a token minted for one grant reads only through that grant (its port, its
-- columns, until the grant or the credential ends), whatever else its principal holds. `label`
-- names the service that holds it.
ALTER TABLE tokens ADD COLUMN grant_id TEXT;
ALTER TABLE tokens ADD COLUMN label TEXT;
CREATE INDEX tokens_grant ON tokens (grant_id);
