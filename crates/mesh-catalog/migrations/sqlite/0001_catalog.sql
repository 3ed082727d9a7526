-- The mesh catalog (SQLite). Timestamps are RFC 3339 UTC text; documents are JSON text.
-- Keep in step with ../postgres/0001_catalog.sql: the conformance suite runs on both.

CREATE TABLE domains (
    name        TEXT PRIMARY KEY,
    description TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE teams (
    name       TEXT PRIMARY KEY,
    domain     TEXT NOT NULL REFERENCES domains (name),
    created_at TEXT NOT NULL
);

CREATE TABLE products (
    id         TEXT PRIMARY KEY,
    domain     TEXT NOT NULL REFERENCES domains (name),
    team       TEXT,
    name       TEXT,
    latest     TEXT,
    status     TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX products_domain ON products (domain, id);

CREATE TABLE product_versions (
    product         TEXT NOT NULL REFERENCES products (id),
    version         TEXT NOT NULL,
    major           INTEGER NOT NULL,
    status          TEXT NOT NULL,
    digest          TEXT NOT NULL,
    descriptor      TEXT NOT NULL,
    published_by    TEXT NOT NULL,
    published_at    TEXT NOT NULL,
    sunset          TEXT,
    migration_guide TEXT,
    deprecated_at   TEXT,
    revision        INTEGER NOT NULL,
    PRIMARY KEY (product, version)
);

CREATE TABLE port_contracts (
    product       TEXT NOT NULL,
    version       TEXT NOT NULL,
    port          TEXT NOT NULL,
    major         INTEGER NOT NULL,
    contract_id   TEXT NOT NULL,
    compatibility TEXT NOT NULL,
    digest        TEXT NOT NULL,
    contract      TEXT NOT NULL,
    PRIMARY KEY (product, version, port),
    FOREIGN KEY (product, version) REFERENCES product_versions (product, version)
);
CREATE INDEX port_contracts_history ON port_contracts (product, port);

-- Input ports: which product version reads which contract (consumers of a port).
CREATE TABLE dependencies (
    product     TEXT NOT NULL,
    version     TEXT NOT NULL,
    input_port  TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    PRIMARY KEY (product, version, input_port),
    FOREIGN KEY (product, version) REFERENCES product_versions (product, version)
);
CREATE INDEX dependencies_contract ON dependencies (contract_id);

CREATE TABLE events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    actor   TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX events_subject ON events (subject, seq);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    principal  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);

CREATE TABLE role_bindings (
    principal TEXT NOT NULL,
    role      TEXT NOT NULL,
    domain    TEXT NOT NULL,
    PRIMARY KEY (principal, role, domain)
);
