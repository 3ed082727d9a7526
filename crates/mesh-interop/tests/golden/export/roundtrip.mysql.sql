-- Written by `mesh export --to sql --dialect mysql` from contract shop.orders 1.2.0.

CREATE TABLE customers (
  customer_id VARCHAR(255) NOT NULL,
  email VARCHAR(320) NOT NULL UNIQUE,
  PRIMARY KEY (customer_id)
);

CREATE TABLE orders (
  order_id BIGINT NOT NULL COMMENT 'The order''s number.',
  line_no INTEGER NOT NULL,
  customer_id TEXT NOT NULL,
  `status` TEXT NOT NULL COMMENT 'Where the order is.',
  amount DECIMAL(12,2) NOT NULL COMMENT 'Line total.',
  currency VARCHAR(3) NOT NULL,
  placed_at DATETIME(6) NOT NULL,
  shipped_on DATE,
  tags JSON,
  attributes JSON,
  address JSON,
  PRIMARY KEY (order_id, line_no),
  CHECK (`status` IN ('placed', 'shipped', 'delivered')),
  CHECK (amount >= 0 AND amount <= 100000),
  CHECK (LENGTH(currency) >= 3),
  FOREIGN KEY (customer_id) REFERENCES customers (customer_id)
) COMMENT='One row per order line.';
