//! The embedded SQLite backend of the Rotor store.
//!
//! It owns the SQLite schema (`migrations/`, embedded in the binary), the
//! mapping of rows to `rotor_core` records, and the connection set-up: WAL
//! journal, `synchronous=NORMAL` by default (`FULL` on request), foreign keys
//! on, a busy timeout, one **writer** connection and a pool of readers.
//!
//! A single writer connection serialises this process's writes without
//! `SQLITE_BUSY` churn; writes from other processes (the `rotor` CLI, a second
//! server) wait on the busy timeout. Every multi-row change runs in one
//! transaction whose first statement writes, so the write lock is taken at
//! the start and a compare-and-swap cannot be interleaved.
#![forbid(unsafe_code)]

mod group;
mod rows;
mod store;
mod upstream;

use std::str::FromStr;
use std::time::Duration;

use rotor_store::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// How SQLite syncs the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL`: a commit survives a crash of Rotor; the last
    /// commits before a power loss or OS crash may be lost (never corrupt).
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced before it is answered.
    Full,
}

/// Connection settings of the SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// `sqlite://path/to/rotor.db` (created if missing) or `sqlite::memory:`.
    pub url: String,
    /// How commits are synced.
    pub durability: Durability,
    /// Reader connections.
    pub readers: u32,
    /// How long a write waits for another process's lock.
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            durability: Durability::Normal,
            readers: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The SQLite store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Rotations waiting for the group-commit writer ([`group`]).
    rotations: tokio::sync::mpsc::Sender<group::Job>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and runs pending migrations.
    pub async fn open(config: &SqliteConfig) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(&config.url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match config.durability {
                Durability::Normal => SqliteSynchronous::Normal,
                Durability::Full => SqliteSynchronous::Full,
            })
            .foreign_keys(true)
            .busy_timeout(config.busy_timeout)
            .statement_cache_capacity(256);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // A local file: no network to go stale, so no ping per checkout.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await
            .map_err(map_err)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(config.readers.max(1))
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await
            .map_err(map_err)?;
        let rotations = group::spawn(writer.clone());
        Ok(Self {
            writer,
            reader,
            rotations,
        })
    }

    /// Closes both pools, waiting for connections in use.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Maps a sqlx error to the store's vocabulary.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let msg = db.message();
            let what = if msg.contains("apps.slug") {
                "slug"
            } else if msg.contains("apps.client_id") {
                "client_id"
            } else if msg.contains("installations.app_id") {
                "installation"
            } else if msg.contains("tokens.parent_id") {
                "successor"
            } else if msg.contains("used_jtis") {
                "jti"
            } else {
                "unique"
            };
            StoreError::Conflict(what.to_owned())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::Other(e.to_string()),
    }
}
