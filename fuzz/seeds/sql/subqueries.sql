SELECT * FROM generate_series(1, 10) AS g(n)
WHERE n > (SELECT MIN(n) FROM generate_series(1, 3) AS h(n))
  AND EXISTS (SELECT 1 FROM (VALUES (1)) t(x) WHERE t.x = 1)
  AND n NOT IN (SELECT 4)
