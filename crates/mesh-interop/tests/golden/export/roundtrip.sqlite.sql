-- Written by `mesh export --to sql --dialect sqlite` from contract shop.orders 1.2.0.

CREATE TABLE customers (
  customer_id TEXT NOT NULL,
  email VARCHAR(320) NOT NULL UNIQUE,
  PRIMARY KEY (customer_id)
);

CREATE TABLE orders (
  -- order_id: The order's number.
  order_id INTEGER NOT NULL,
  line_no INTEGER NOT NULL,
  customer_id TEXT NOT NULL,
  -- status: Where the order is.
  "status" TEXT NOT NULL,
  -- amount: Line total.
  amount DECIMAL(12,2) NOT NULL,
  currency VARCHAR(3) NOT NULL,
  placed_at TIMESTAMP NOT NULL,
  shipped_on DATE,
  tags TEXT,
  attributes TEXT,
  address TEXT,
  PRIMARY KEY (order_id, line_no),
  CHECK ("status" IN ('placed', 'shipped', 'delivered')),
  CHECK (amount >= 0 AND amount <= 100000),
  CHECK (LENGTH(currency) >= 3),
  FOREIGN KEY (customer_id) REFERENCES customers (customer_id)
);
