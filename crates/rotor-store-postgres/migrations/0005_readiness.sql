-- One row rewritten by every readiness probe: /readyz answers ready only
-- when the database accepts a write (a PostgreSQL in recovery or a full disk
-- fails it).
CREATE TABLE readiness (
    id         INTEGER     PRIMARY KEY CHECK (id = 1),
    checked_at TIMESTAMPTZ NOT NULL
);
