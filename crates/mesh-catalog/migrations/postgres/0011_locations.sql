-- External locations: where a domain's source products may read (a platform admin registers
-- each; managed storage is never one). A source outside them is not read.
CREATE TABLE locations (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    domain TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX locations_domain ON locations (domain);
