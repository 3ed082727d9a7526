-- analytics.customer_lifetime_value: orders joined with customers, per customer.
-- `orders` and `customers` are the input ports, read through the grants e-commerce gave this product.
SELECT o.customer_id,
       max(c.country) AS country,
       max(c.segment) AS segment,
       count(*) AS orders,
       sum(CASE WHEN o.status = 'returned' THEN 0 ELSE o.amount END) AS revenue,
       min(o.ordered_at) AS first_order_at,
       max(o.ordered_at) AS last_order_at,
       max(o.updated_at) AS updated_at
FROM orders o
JOIN customers c ON c.customer_id = o.customer_id
GROUP BY o.customer_id
