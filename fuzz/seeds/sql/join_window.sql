WITH recent AS (
  SELECT o.customer_id, o.amount, o.updated_at,
         row_number() OVER (PARTITION BY o.customer_id ORDER BY o.updated_at DESC) AS rank
  FROM ecommerce.orders o
  WHERE o.updated_at > TIMESTAMP '2026-01-01 00:00:00' AND o.amount BETWEEN 0 AND 1e6
)
SELECT c.region, COUNT(*) AS orders, SUM(r.amount) AS total, AVG(r.amount)::DOUBLE AS mean
FROM recent r LEFT JOIN crm.customers c ON c.id = r.customer_id
WHERE r.rank <= 3 AND c.region IS NOT NULL
GROUP BY c.region HAVING SUM(r.amount) > 10
ORDER BY total DESC NULLS LAST
LIMIT 20 OFFSET 5
