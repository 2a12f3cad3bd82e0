-- Pre-fills a Rotor PostgreSQL schema with a week of refresh history for the
-- realistic benchmark, as bench/prefill_history.py does on SQLite: :pairs
-- retired pairs spread over the seeded installations' live families, and the
-- two event rows Rotor writes per exchange. Selector pairs (legacy = false,
-- naming a successor) where the schema has them.
--
--   psql "$URL" -v pairs=1000000 -f bench/prefill_history_pg.sql
\set ON_ERROR_STOP on
SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
    AND table_name = 'tokens' AND column_name = 'legacy') AS selector_pairs \gset
CREATE TEMP TABLE fams AS
    SELECT id, installation_id, app_id, row_number() OVER () AS n
    FROM token_families WHERE revoked_at IS NULL;
CREATE TEMP TABLE hist AS
    SELECT f.id AS family_id, f.installation_id, f.app_id,
           now() - random() * interval '7 days' AS created_at
    FROM (SELECT 1 + floor(random() * (SELECT count(*) FROM fams))::bigint AS pick
          FROM generate_series(1, :pairs)) g
    JOIN fams f ON f.n = g.pick;
\if :selector_pairs
INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, refresh_hash, scopes,
    expires_at, refresh_expires_at, created_at, parent_id, retired_at, revoked_at, successor_id,
    legacy)
SELECT gen_random_uuid(), family_id, installation_id, app_id,
       sha256(gen_random_uuid()::text::bytea), sha256(gen_random_uuid()::text::bytea),
       ARRAY['project:read'], created_at + interval '8 hours', created_at + interval '30 days',
       created_at, NULL, created_at + interval '1 minute', NULL, gen_random_uuid(), false
FROM hist;
\else
INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, refresh_hash, scopes,
    expires_at, refresh_expires_at, created_at, parent_id, retired_at, revoked_at)
SELECT gen_random_uuid(), family_id, installation_id, app_id,
       sha256(gen_random_uuid()::text::bytea), sha256(gen_random_uuid()::text::bytea),
       ARRAY['project:read'], created_at + interval '8 hours', created_at + interval '30 days',
       created_at, NULL, created_at + interval '1 minute', NULL
FROM hist;
\endif
INSERT INTO events (kind, installation_id, exchange_type, ip, actor, created_at)
SELECT k.kind, h.installation_id, 'refresh', k.ip, 'bench-history', h.created_at
FROM hist h CROSS JOIN (VALUES ('token_exchanged', NULL), ('token_exchange_audit', '127.0.0.1'))
    AS k(kind, ip)
ORDER BY h.created_at;
VACUUM ANALYZE tokens;
VACUUM ANALYZE events;
