-- When each principal was last revoked: identity-provider tokens issued (`iat`) before it are
-- refused, so a revocation holds against tokens the provider had already handed out.
CREATE TABLE principal_revocations (
    principal TEXT PRIMARY KEY,
    revoked_at TEXT NOT NULL
);
