-- Webhooks: an app's redirect URL, and the durable outbox of deliveries.
-- A delivery row is inserted in the same transaction as the change it
-- reports; its body is sealed under the server key (it may carry a grant
-- code), bound to the row's id.

ALTER TABLE apps ADD COLUMN redirect_url TEXT;

CREATE TABLE webhook_deliveries (
    -- commit order; deliveries sharing an order_key go out in seq order
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL,
    -- the app whose webhookUrl and client secret apply; 'platform' for the
    -- platform's own endpoint
    target          TEXT    NOT NULL,
    resource        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    body_key        TEXT    NOT NULL,
    body_ct         BLOB    NOT NULL,
    order_key       TEXT    NOT NULL,
    installation_id TEXT,
    org_slug        TEXT,
    identity_id     TEXT,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    response_code   INTEGER,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    retry_from      INTEGER NOT NULL,
    last_attempt_at INTEGER,
    next_attempt_at INTEGER,
    -- the worker that has it in flight, until when
    lease_owner     TEXT,
    lease_until     INTEGER,
    CONSTRAINT webhook_deliveries_id_key UNIQUE (id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (order_key, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_target ON webhook_deliveries (target, seq);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (last_attempt_at) WHERE status <> 'pending';
