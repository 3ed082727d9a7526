-- DuckDB: MAP, lists, HUGEINT.
CREATE TABLE metrics (
  id HUGEINT PRIMARY KEY,
  labels MAP(VARCHAR, VARCHAR),
  samples DOUBLE[],
  taken_at TIMESTAMP NOT NULL
);
