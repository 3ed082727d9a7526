-- Who hears of what: a domain, a team or a product's events (run failures and recoveries, SLA
-- violations and recoveries, access requests and decisions, grants about to expire,
-- deprecations and retirements) sent to a webhook, a Slack-compatible webhook or an e-mail
-- address.
CREATE TABLE subscriptions (
    id         TEXT PRIMARY KEY,
    -- domain | team | product
    scope      TEXT NOT NULL,
    -- The domain, the team or the product id.
    subject    TEXT NOT NULL,
    -- webhook | slack | email
    channel    TEXT NOT NULL,
    -- A URL, or an e-mail address.
    target     TEXT NOT NULL,
    -- The notification kinds, comma-separated; `*` for all.
    events     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX subscriptions_subject ON subscriptions (scope, subject);
