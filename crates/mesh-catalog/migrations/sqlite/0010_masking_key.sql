-- The deployment's masking key: `hash` masks are HMAC-SHA256 under it, so a masked value cannot
-- be checked against a guess, nor joined with another deployment's. One row, made when the
-- catalog is first opened, replaced (never kept) when an admin rotates it.
CREATE TABLE masking_key (
    slot INTEGER PRIMARY KEY CHECK (slot = 1),
    key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
