-- Rotor core schema (SQLite). Times are Unix microseconds (UTC); ids are
-- UUID text; token and code columns hold SHA-256 digests, never tokens.

CREATE TABLE apps (
    id                       TEXT    PRIMARY KEY,
    slug                     TEXT    NOT NULL,
    name                     TEXT    NOT NULL,
    client_id                TEXT    NOT NULL,
    -- the client secret sealed with XChaCha20-Poly1305 under server key secret_key_id
    secret_key_id            TEXT    NOT NULL,
    secret_ct                BLOB    NOT NULL,
    scopes                   TEXT    NOT NULL, -- JSON array of strings
    webhook_url              TEXT,
    verify_install           INTEGER NOT NULL,
    access_token_ttl_seconds INTEGER NOT NULL,
    refresh_grace_seconds    INTEGER NOT NULL,
    reuse_policy             TEXT    NOT NULL,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL,
    CONSTRAINT apps_slug_key UNIQUE (slug),
    CONSTRAINT apps_client_id_key UNIQUE (client_id)
);

CREATE TABLE installations (
    id               TEXT    PRIMARY KEY,
    app_id           TEXT    NOT NULL REFERENCES apps (id),
    org_slug         TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    current_token_id TEXT,
    created_at       INTEGER NOT NULL,
    deleted_at       INTEGER
);
-- an organization holds at most one live installation of an app
CREATE UNIQUE INDEX installations_live_key ON installations (app_id, org_slug) WHERE deleted_at IS NULL;

CREATE TABLE grants (
    code_hash       BLOB    PRIMARY KEY,
    installation_id TEXT    NOT NULL REFERENCES installations (id),
    app_id          TEXT    NOT NULL REFERENCES apps (id),
    expires_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX grants_installation ON grants (installation_id);
CREATE INDEX grants_expires ON grants (expires_at);

-- every pair descended from one grant exchange (or manual refresh); revoking
-- the family row revokes all of them, and rotation checks it in its CAS
CREATE TABLE token_families (
    id              TEXT    PRIMARY KEY,
    installation_id TEXT    NOT NULL REFERENCES installations (id),
    app_id          TEXT    NOT NULL REFERENCES apps (id),
    created_at      INTEGER NOT NULL,
    -- absolute end of the family, however often it is refreshed
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);
CREATE INDEX token_families_installation ON token_families (installation_id);

CREATE TABLE tokens (
    id              TEXT    PRIMARY KEY,
    family_id       TEXT    NOT NULL REFERENCES token_families (id),
    installation_id TEXT    NOT NULL REFERENCES installations (id),
    app_id          TEXT    NOT NULL REFERENCES apps (id),
    access_hash     BLOB    NOT NULL,
    refresh_hash    BLOB    NOT NULL,
    scopes          TEXT    NOT NULL,
    expires_at      INTEGER NOT NULL,
    -- idle limit of the refresh token, capped at the family's end; retired and
    -- revoked rows are kept until then so that reuse can be detected
    refresh_expires_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    parent_id       TEXT,
    retired_at      INTEGER,
    revoked_at      INTEGER,
    CONSTRAINT tokens_access_hash_key UNIQUE (access_hash),
    CONSTRAINT tokens_refresh_hash_key UNIQUE (refresh_hash)
);
-- a pair has at most one successor, whatever the code above does
CREATE UNIQUE INDEX tokens_parent_key ON tokens (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX tokens_family ON tokens (family_id);
CREATE INDEX tokens_installation ON tokens (installation_id);
CREATE INDEX tokens_refresh_expires ON tokens (refresh_expires_at);

-- jti of client-secret JWTs, kept until the JWT expires so it is used once
CREATE TABLE used_jtis (
    app_id     TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, jti)
);
CREATE INDEX used_jtis_expires ON used_jtis (expires_at);

CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,
    installation_id TEXT,
    identity_id     TEXT,
    exchange_type   TEXT,
    ip              TEXT,
    actor           TEXT,
    detail          TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX events_installation ON events (installation_id, id);
CREATE INDEX events_identity ON events (identity_id, id);
CREATE INDEX events_kind ON events (kind, id);
