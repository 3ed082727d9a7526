-- Snowflake: NUMBER precision, VARIANT, TIMESTAMP_NTZ, a column comment.
CREATE OR REPLACE TABLE analytics.events (
  event_id NUMBER(38,0) NOT NULL,
  session_id VARCHAR(64) NOT NULL,
  kind VARCHAR NOT NULL COMMENT 'page_view, click or purchase',
  value NUMBER(10,2),
  payload VARIANT,
  occurred_at TIMESTAMP_NTZ NOT NULL,
  CONSTRAINT pk_events PRIMARY KEY (event_id)
) COMMENT = 'Clickstream events';
