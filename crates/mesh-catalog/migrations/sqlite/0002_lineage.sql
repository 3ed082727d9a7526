-- Lineage: edges between datasets, jobs and dataset fields (OpenLineage / Marquez node ids),
-- grouped by origin (`product:ID`, `openlineage:NS:JOB`), and the data shown for each node.

CREATE TABLE lineage_edges (
    origin TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (origin, source, target)
);
CREATE INDEX lineage_edges_source ON lineage_edges (source);
CREATE INDEX lineage_edges_target ON lineage_edges (target);

CREATE TABLE lineage_nodes (
    id         TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
