-- analytics.user_behaviour: the tracker's event log, typed; anonymous visits keep no customer.
SELECT CAST(event_id AS VARCHAR) AS event_id,
       nullif(CAST(customer_id AS VARCHAR), '') AS customer_id,
       CAST(event_type AS VARCHAR) AS event_type,
       CAST(sku AS VARCHAR) AS sku,
       CAST(occurred_at AS TIMESTAMP) AS occurred_at
FROM raw_events
WHERE event_id IS NOT NULL
