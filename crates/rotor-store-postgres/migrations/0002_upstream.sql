-- Upstream providers and identities. Secrets and tokens are sealed with
-- XChaCha20-Poly1305 under the server key (`*_key` names the key), bound to
-- their row and field.

CREATE TABLE upstream_providers (
    key         TEXT        PRIMARY KEY,
    kind        TEXT        NOT NULL,
    config      TEXT        NOT NULL,
    secrets_key TEXT        NOT NULL,
    secrets_ct  BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE upstream_identities (
    id                UUID        PRIMARY KEY,
    provider          TEXT        NOT NULL REFERENCES upstream_providers (key),
    external_id       TEXT        NOT NULL,
    scopes            TEXT[]      NOT NULL,
    access_key        TEXT,
    access_ct         BYTEA,
    refresh_key       TEXT,
    refresh_ct        BYTEA,
    token_type        TEXT        NOT NULL,
    expires_at        TIMESTAMPTZ,
    installation_id   TEXT,
    status            TEXT        NOT NULL,
    last_refreshed_at TIMESTAMPTZ,
    failure_count     BIGINT      NOT NULL,
    last_error        TEXT,
    next_attempt_at   TIMESTAMPTZ,
    lease_owner       TEXT,
    lease_until       TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX upstream_identities_due ON upstream_identities (status, expires_at);
