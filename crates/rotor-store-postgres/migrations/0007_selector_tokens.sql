-- Selector/verifier tokens. Access and refresh tokens issued from now on
-- carry their pair's id (see rotor-core's token module): the pair is found by
-- its primary key and the token checked against the hash stored here. So the
-- unique indexes over the two hashes, random by nature and the most
-- expensive part of issuing a pair, cover only the pairs issued before
-- (legacy), which are still found by hash until they expire. A rotation
-- records the successor's id on the retired pair (in the same
-- compare-and-swap that retires it) instead of indexing every pair's parent.
--
-- Every node must run a Rotor that knows this schema: an older one would
-- look its tokens up by hash without the partial indexes' condition.
ALTER TABLE tokens ADD COLUMN successor_id UUID;
-- existing rows take the default without a rewrite; new code writes false
ALTER TABLE tokens ADD COLUMN legacy BOOLEAN NOT NULL DEFAULT true;
CREATE UNIQUE INDEX tokens_access_hash_legacy ON tokens (access_hash) WHERE legacy;
CREATE UNIQUE INDEX tokens_refresh_hash_legacy ON tokens (refresh_hash) WHERE legacy;
ALTER TABLE tokens DROP CONSTRAINT tokens_access_hash_key,
    DROP CONSTRAINT tokens_refresh_hash_key;
DROP INDEX tokens_parent_key;
-- families are purged at their absolute end (no pair outlives its family)
CREATE INDEX token_families_expires ON token_families (expires_at);
