-- Governance policies kept in the catalog, versioned per scope: `global` (the platform's, added to
-- the standard pack shipped in the binary) or `domain:<name>` (a domain's own). Each version is
-- the whole bundle: its Rego files, as JSON [{"path", "text"}], and the domain's tightenings of
-- global policies, as JSON {"policy-id": "block" | "warn" | "audit"}.

CREATE TABLE policy_bundles (
    scope        TEXT NOT NULL,
    version      BIGINT NOT NULL,
    files        TEXT NOT NULL,
    overrides    TEXT NOT NULL,
    digest       TEXT NOT NULL,
    published_by TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (scope, version)
);
