SELECT upper(trim(label)) AS l, coalesce(amount, 0) + 1 AS a,
       CASE WHEN amount > 100 THEN 'big' WHEN amount IS NULL THEN NULL ELSE 'small' END AS size,
       date_trunc('day', updated_at) AS day, regexp_like(label, '^[a-z]+$') AS plain,
       array_length(make_array(1, 2, 3)) AS three, struct(1 AS x, 'y' AS y) AS s,
       '{"a": {"b": [1, 2]}}'::VARCHAR AS doc, 10 % 3 AS m, -amount AS neg
FROM ecommerce.orders WHERE label LIKE 'n%' OR label ILIKE '%EAST' OR id IN (1, 2, 3)
