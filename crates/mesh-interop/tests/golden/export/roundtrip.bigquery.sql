-- Written by `mesh export --to sql --dialect bigquery` from contract shop.orders 1.2.0.

CREATE TABLE customers (
  customer_id STRING NOT NULL,
  email STRING(320) NOT NULL,
  PRIMARY KEY (customer_id) NOT ENFORCED
);

CREATE TABLE orders (
  order_id INT64 NOT NULL OPTIONS(description="The order's number."),
  line_no INT64 NOT NULL,
  customer_id STRING NOT NULL,
  `status` STRING NOT NULL OPTIONS(description="Where the order is."),
  amount NUMERIC(12,2) NOT NULL OPTIONS(description="Line total."),
  currency STRING(3) NOT NULL,
  placed_at TIMESTAMP NOT NULL,
  shipped_on DATE,
  tags ARRAY<STRING>,
  attributes JSON,
  address JSON,
  PRIMARY KEY (order_id, line_no) NOT ENFORCED
) OPTIONS(description="One row per order line.");
