-- One row rewritten by every readiness probe: /readyz answers ready only
-- when the database accepts a write (a full disk or a read-only file fails it).
CREATE TABLE readiness (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
