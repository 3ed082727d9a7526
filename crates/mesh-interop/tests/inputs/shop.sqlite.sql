-- SQLite: loose types, a composite unique constraint, a foreign key clause.
CREATE TABLE products (
  sku TEXT PRIMARY KEY NOT NULL,
  name TEXT NOT NULL,
  price REAL NOT NULL CHECK (price > 0),
  stock INTEGER NOT NULL DEFAULT 0 CHECK (stock >= 0),
  supplier_id INTEGER,
  listed_on DATE,
  UNIQUE (name, supplier_id),
  FOREIGN KEY (supplier_id) REFERENCES suppliers (id)
);
CREATE TABLE suppliers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);
