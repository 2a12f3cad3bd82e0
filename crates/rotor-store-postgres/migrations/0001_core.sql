-- Rotor core schema (PostgreSQL). Token and code columns hold SHA-256
-- digests, never tokens; the client secret is sealed under the server key.

CREATE TABLE apps (
    id                       UUID        PRIMARY KEY,
    slug                     TEXT        NOT NULL,
    name                     TEXT        NOT NULL,
    client_id                TEXT        NOT NULL,
    secret_key_id            TEXT        NOT NULL,
    secret_ct                BYTEA       NOT NULL,
    scopes                   TEXT[]      NOT NULL,
    webhook_url              TEXT,
    verify_install           BOOLEAN     NOT NULL,
    access_token_ttl_seconds BIGINT      NOT NULL,
    refresh_grace_seconds    BIGINT      NOT NULL,
    reuse_policy             TEXT        NOT NULL,
    created_at               TIMESTAMPTZ NOT NULL,
    updated_at               TIMESTAMPTZ NOT NULL,
    CONSTRAINT apps_slug_key UNIQUE (slug),
    CONSTRAINT apps_client_id_key UNIQUE (client_id)
);

CREATE TABLE installations (
    id               UUID        PRIMARY KEY,
    app_id           UUID        NOT NULL REFERENCES apps (id),
    org_slug         TEXT        NOT NULL,
    status           TEXT        NOT NULL,
    current_token_id UUID,
    created_at       TIMESTAMPTZ NOT NULL,
    deleted_at       TIMESTAMPTZ
);
CREATE UNIQUE INDEX installations_live_key ON installations (app_id, org_slug) WHERE deleted_at IS NULL;

CREATE TABLE grants (
    code_hash       BYTEA       PRIMARY KEY,
    installation_id UUID        NOT NULL REFERENCES installations (id),
    app_id          UUID        NOT NULL REFERENCES apps (id),
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX grants_installation ON grants (installation_id);
CREATE INDEX grants_expires ON grants (expires_at);

CREATE TABLE token_families (
    id              UUID        PRIMARY KEY,
    installation_id UUID        NOT NULL REFERENCES installations (id),
    app_id          UUID        NOT NULL REFERENCES apps (id),
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ
);
CREATE INDEX token_families_installation ON token_families (installation_id);

CREATE TABLE tokens (
    id                 UUID        PRIMARY KEY,
    family_id          UUID        NOT NULL REFERENCES token_families (id),
    installation_id    UUID        NOT NULL REFERENCES installations (id),
    app_id             UUID        NOT NULL REFERENCES apps (id),
    access_hash        BYTEA       NOT NULL,
    refresh_hash       BYTEA       NOT NULL,
    scopes             TEXT[]      NOT NULL,
    expires_at         TIMESTAMPTZ NOT NULL,
    refresh_expires_at TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    parent_id          UUID,
    retired_at         TIMESTAMPTZ,
    revoked_at         TIMESTAMPTZ,
    CONSTRAINT tokens_access_hash_key UNIQUE (access_hash),
    CONSTRAINT tokens_refresh_hash_key UNIQUE (refresh_hash)
);
-- a pair has at most one successor, whatever the code above does
CREATE UNIQUE INDEX tokens_parent_key ON tokens (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX tokens_family ON tokens (family_id);
CREATE INDEX tokens_installation ON tokens (installation_id);
CREATE INDEX tokens_refresh_expires ON tokens (refresh_expires_at);

CREATE TABLE used_jtis (
    app_id     UUID        NOT NULL,
    jti        TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, jti)
);
CREATE INDEX used_jtis_expires ON used_jtis (expires_at);

CREATE TABLE events (
    id              BIGSERIAL   PRIMARY KEY,
    kind            TEXT        NOT NULL,
    installation_id UUID,
    identity_id     TEXT,
    exchange_type   TEXT,
    ip              TEXT,
    actor           TEXT,
    detail          TEXT,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_installation ON events (installation_id, id);
CREATE INDEX events_identity ON events (identity_id, id);
CREATE INDEX events_kind ON events (kind, id);
