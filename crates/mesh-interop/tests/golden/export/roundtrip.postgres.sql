-- Written by `mesh export --to sql --dialect postgres` from contract shop.orders 1.2.0.

CREATE TABLE customers (
  customer_id UUID NOT NULL,
  email VARCHAR(320) NOT NULL UNIQUE,
  PRIMARY KEY (customer_id)
);

CREATE TABLE orders (
  order_id BIGINT NOT NULL,
  line_no INTEGER NOT NULL,
  customer_id UUID NOT NULL,
  "status" TEXT NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  currency VARCHAR(3) NOT NULL,
  placed_at TIMESTAMPTZ NOT NULL,
  shipped_on DATE,
  tags TEXT[],
  attributes JSONB,
  address JSONB,
  PRIMARY KEY (order_id, line_no),
  CHECK ("status" IN ('placed', 'shipped', 'delivered')),
  CHECK (amount >= 0 AND amount <= 100000),
  CHECK (LENGTH(currency) >= 3 AND currency ~ '^[A-Z]{3}$'),
  FOREIGN KEY (customer_id) REFERENCES customers (customer_id)
);
COMMENT ON TABLE orders IS 'One row per order line.';
COMMENT ON COLUMN orders.order_id IS 'The order''s number.';
COMMENT ON COLUMN orders."status" IS 'Where the order is.';
COMMENT ON COLUMN orders.amount IS 'Line total.';
