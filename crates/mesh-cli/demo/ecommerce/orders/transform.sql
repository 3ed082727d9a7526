-- ecommerce.orders: the order service's extract, typed.
SELECT CAST(order_id AS VARCHAR) AS order_id,
       CAST(customer_id AS VARCHAR) AS customer_id,
       CAST(sku AS VARCHAR) AS sku,
       CAST(quantity AS BIGINT) AS quantity,
       CAST(amount AS DOUBLE) AS amount,
       CAST(status AS VARCHAR) AS status,
       CAST(ordered_at AS TIMESTAMP) AS ordered_at,
       CAST(updated_at AS TIMESTAMP) AS updated_at
FROM raw_orders
WHERE order_id IS NOT NULL
