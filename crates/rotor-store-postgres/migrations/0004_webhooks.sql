-- Webhooks: an app's redirect URL, and the durable outbox of deliveries.
-- A delivery row is inserted in the same transaction as the change it
-- reports; its body is sealed under the server key (it may carry a grant
-- code), bound to the row's id.

ALTER TABLE apps ADD COLUMN redirect_url TEXT;

CREATE TABLE webhook_deliveries (
    -- commit order of writers that conflict (an installation's created is
    -- committed before its delete can start); same order_key → seq order
    seq             BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              UUID        NOT NULL,
    -- the app whose webhookUrl and client secret apply; 'platform' for the
    -- platform's own endpoint
    target          TEXT        NOT NULL,
    resource        TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    url             TEXT        NOT NULL,
    body_key        TEXT        NOT NULL,
    body_ct         BYTEA       NOT NULL,
    order_key       TEXT        NOT NULL,
    installation_id UUID,
    org_slug        TEXT,
    identity_id     UUID,
    status          TEXT        NOT NULL,
    attempts        BIGINT      NOT NULL,
    response_code   INTEGER,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    retry_from      TIMESTAMPTZ NOT NULL,
    last_attempt_at TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,
    -- the worker (node) that has it in flight, until when
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ,
    CONSTRAINT webhook_deliveries_id_key UNIQUE (id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (order_key, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_target ON webhook_deliveries (target, seq);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (last_attempt_at) WHERE status <> 'pending';
