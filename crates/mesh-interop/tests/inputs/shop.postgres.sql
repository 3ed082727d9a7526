-- The shop's tables in PostgreSQL, as a team keeps them in its migrations.
CREATE TABLE public.customers (
    customer_id uuid PRIMARY KEY,
    email varchar(320) NOT NULL UNIQUE,
    country char(2) NOT NULL CHECK (length(country) = 2),
    signed_up_at timestamptz NOT NULL DEFAULT now(),
    tier text NOT NULL CHECK (tier IN ('free', 'plus', 'pro'))
);

CREATE TABLE public.orders (
    order_id bigint NOT NULL,
    line_no integer NOT NULL,
    customer_id uuid NOT NULL REFERENCES customers (customer_id),
    amount numeric(12,2) NOT NULL CHECK (amount >= 0 AND amount <= 100000),
    currency char(3) NOT NULL,
    status text NOT NULL,
    tags text[],
    attributes jsonb,
    placed_at timestamptz NOT NULL,
    shipped_on date,
    PRIMARY KEY (order_id, line_no),
    CONSTRAINT known_status CHECK (status IN ('placed', 'shipped', 'delivered', 'cancelled')),
    CONSTRAINT shipped_after_placed CHECK (shipped_on IS NULL OR shipped_on >= placed_at::date)
);

COMMENT ON TABLE public.orders IS 'One row per order line.';
COMMENT ON COLUMN public.orders.amount IS 'Line total in the order''s currency.';
COMMENT ON COLUMN public.customers.email IS 'Where receipts go.';

CREATE INDEX orders_by_customer ON public.orders (customer_id);

CREATE TRIGGER orders_audit AFTER INSERT ON public.orders
    FOR EACH ROW EXECUTE FUNCTION audit_row();
