-- ecommerce.product_catalog: the product information system's nightly export, typed.
SELECT CAST(sku AS VARCHAR) AS sku,
       CAST(name AS VARCHAR) AS name,
       lower(CAST(category AS VARCHAR)) AS category,
       CAST(price AS DOUBLE) AS price,
       CAST(updated_at AS TIMESTAMP) AS updated_at
FROM raw_products
WHERE sku IS NOT NULL
