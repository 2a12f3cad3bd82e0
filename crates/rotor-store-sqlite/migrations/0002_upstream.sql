-- Upstream providers and identities. Secrets and tokens are sealed with
-- XChaCha20-Poly1305 under the server key (`*_key` names the key), bound to
-- their row and field.

CREATE TABLE upstream_providers (
    key         TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    config      TEXT    NOT NULL, -- public settings, JSON
    secrets_key TEXT    NOT NULL,
    secrets_ct  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE upstream_identities (
    id                TEXT    PRIMARY KEY,
    provider          TEXT    NOT NULL REFERENCES upstream_providers (key),
    external_id       TEXT    NOT NULL,
    scopes            TEXT    NOT NULL, -- JSON array
    access_key        TEXT,
    access_ct         BLOB,
    refresh_key       TEXT,
    refresh_ct        BLOB,
    token_type        TEXT    NOT NULL,
    expires_at        INTEGER,
    installation_id   TEXT,
    status            TEXT    NOT NULL,
    last_refreshed_at INTEGER,
    failure_count     INTEGER NOT NULL,
    last_error        TEXT,
    next_attempt_at   INTEGER,
    -- the refresh lease: one refresher at a time across nodes
    lease_owner       TEXT,
    lease_until       INTEGER,
    created_at        INTEGER NOT NULL
);
CREATE INDEX upstream_identities_due ON upstream_identities (status, expires_at);
