-- BigQuery: STRUCT, ARRAY, OPTIONS(description=...).
CREATE TABLE shop.sessions (
  session_id STRING NOT NULL OPTIONS(description="One visit"),
  user STRUCT<id INT64, country STRING>,
  pages ARRAY<STRING>,
  revenue NUMERIC,
  started_at TIMESTAMP NOT NULL
);
