-- Selector/verifier tokens. Access and refresh tokens issued from now on
-- carry their pair's id (see rotor-core's token module): the pair is found by
-- its primary key and the token checked against the hash stored here. So the
-- unique indexes over the two hashes, random by nature and the most
-- expensive part of issuing a pair, cover only the pairs issued before
-- (legacy = 1), which are still found by hash until they expire. A
-- rotation records the successor's id on the retired pair (in the same
-- compare-and-swap that retires it) instead of indexing every pair's parent.
--
-- Families are purged at their absolute end (every pair's refresh token
-- ends no later) instead of "once no pair is left", so `tokens(family_id)`
-- and its foreign key, which cost every rotation an insert on a random page
-- of that index, go too; `token_families(expires_at)` finds them.
--
-- SQLite cannot drop a table's UNIQUE constraint, so the table is rebuilt:
-- on a large database this migration takes a while (about a second per
-- million pairs), once.
CREATE TABLE tokens_v7 (
    id                 TEXT    PRIMARY KEY,
    -- no foreign key: see above; every read joins the family
    family_id          TEXT    NOT NULL,
    installation_id    TEXT    NOT NULL REFERENCES installations (id),
    app_id             TEXT    NOT NULL REFERENCES apps (id),
    access_hash        BLOB    NOT NULL,
    refresh_hash       BLOB    NOT NULL,
    scopes             TEXT    NOT NULL,
    expires_at         INTEGER NOT NULL,
    refresh_expires_at INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    parent_id          TEXT,
    retired_at         INTEGER,
    revoked_at         INTEGER,
    -- the pair that replaced this one, set by the rotation that retired it
    successor_id       TEXT,
    -- 1: issued without a selector (before this migration), found by hash
    legacy             INTEGER NOT NULL DEFAULT 1
);
INSERT INTO tokens_v7 (id, family_id, installation_id, app_id, access_hash, refresh_hash, scopes,
    expires_at, refresh_expires_at, created_at, parent_id, retired_at, revoked_at, successor_id,
    legacy)
SELECT id, family_id, installation_id, app_id, access_hash, refresh_hash, scopes, expires_at,
    refresh_expires_at, created_at, parent_id, retired_at, revoked_at, NULL, 1
FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_v7 RENAME TO tokens;
CREATE UNIQUE INDEX tokens_access_hash_legacy ON tokens (access_hash) WHERE legacy = 1;
CREATE UNIQUE INDEX tokens_refresh_hash_legacy ON tokens (refresh_hash) WHERE legacy = 1;
CREATE INDEX token_families_expires ON token_families (expires_at);
CREATE INDEX tokens_refresh_expires ON tokens (refresh_expires_at);
