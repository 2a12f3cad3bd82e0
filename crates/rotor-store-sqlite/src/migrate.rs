//! The embedded schema migrations and the code that applies them.
//!
//! The schema version is SQLite's own `PRAGMA user_version`: migration `n` is
//! applied, together with setting the version to `n`, in one transaction, so
//! a crash leaves the database at `n - 1` or `n`, never in between. A
//! database created by Rotor's earlier sqlx-based backend records its
//! applied migrations in `_sqlx_migrations` instead; its versions are the
//! same numbers and are taken over on first open.
//!
//! (A few lines of our own rather than `rusqlite_migration`: its releases
//! follow the newest rusqlite, while Rotor is held to the rusqlite whose
//! `libsqlite3-sys` matches sqlx's, and this is all the behaviour Rotor needs.)

use rusqlite::{Connection, OptionalExtension};

use crate::map_err;
use rotor_store::{StoreError, StoreResult};

/// `(version, name, sql)`, in order. Append only; never edit one that shipped.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "core", include_str!("../migrations/0001_core.sql")),
    (
        2,
        "upstream",
        include_str!("../migrations/0002_upstream.sql"),
    ),
    (
        3,
        "drop tokens_installation",
        include_str!("../migrations/0003_drop_tokens_installation.sql"),
    ),
    (
        4,
        "webhooks",
        include_str!("../migrations/0004_webhooks.sql"),
    ),
    (
        5,
        "readiness",
        include_str!("../migrations/0005_readiness.sql"),
    ),
    (
        6,
        "installation lists",
        include_str!("../migrations/0006_installation_lists.sql"),
    ),
    (
        7,
        "selector tokens",
        include_str!("../migrations/0007_selector_tokens.sql"),
    ),
];

/// The version the schema is at.
pub fn current_version(conn: &Connection) -> StoreResult<i64> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(map_err)?;
    if version != 0 {
        return Ok(version);
    }
    let legacy: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |_| Ok(true),
        )
        .optional()
        .map_err(map_err)?
        .unwrap_or(false);
    if !legacy {
        return Ok(0);
    }
    let max: Option<i64> = conn
        .query_row(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
            [],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    Ok(max.unwrap_or(0))
}

/// Applies every migration newer than the database, each in a transaction.
/// Refuses a database whose schema is newer than this build knows.
pub fn run(conn: &Connection) -> StoreResult<()> {
    let at = current_version(conn)?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if at > latest {
        return Err(StoreError::other(format!(
            "the database schema is at version {at}, newer than this Rotor knows ({latest}); \
             run a newer Rotor"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > at) {
        let apply = format!("BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {version};\nCOMMIT;");
        if let Err(e) = conn.execute_batch(&apply) {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(StoreError::other(format!(
                "migration {version} ({name}) failed: {e}"
            )));
        }
        tracing::info!(version, name, "applied SQLite migration");
    }
    // Records the version also when it was taken over from `_sqlx_migrations`.
    conn.execute_batch(&format!("PRAGMA user_version = {latest}"))
        .map_err(map_err)?;
    Ok(())
}
