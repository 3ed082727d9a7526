-- ecommerce.customers: the customer database's nightly export, typed and normalised.
SELECT CAST(customer_id AS VARCHAR) AS customer_id,
       lower(CAST(email AS VARCHAR)) AS email,
       upper(CAST(country AS VARCHAR)) AS country,
       CAST(segment AS VARCHAR) AS segment,
       CAST(signed_up_at AS TIMESTAMP) AS signed_up_at,
       CAST(updated_at AS TIMESTAMP) AS updated_at
FROM raw_customers
WHERE customer_id IS NOT NULL
