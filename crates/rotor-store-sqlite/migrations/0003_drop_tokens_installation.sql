-- Nothing looks tokens up by installation (revocation goes through
-- token_families, and installations are never deleted, only marked), so this
-- index only cost every rotation one more random page to write.
DROP INDEX IF EXISTS tokens_installation;
