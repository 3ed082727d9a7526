COPY (SELECT 1) TO '/tmp/out.csv'; CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/';
INSERT INTO ecommerce.orders VALUES (1); DROP TABLE ecommerce.orders; SET datafusion.execution.batch_size = 1
