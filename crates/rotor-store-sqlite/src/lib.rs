//! The embedded SQLite backend of the Rotor store.
//!
//! It owns the SQLite schema (`migrations/`, embedded in the binary), the
//! mapping of rows to `rotor_core` records, and the connection set-up: WAL
//! journal, `synchronous=NORMAL` by default (`FULL` on request), foreign keys
//! on, a busy timeout.
//!
//! Connections are synchronous (`rusqlite`, SQLite compiled in): one writer
//! thread that group-commits every write of the process, and read-only
//! connections used on the caller's thread ([`db`] explains why). A single
//! writer serialises this process's writes without `SQLITE_BUSY` churn;
//! writes from other processes (the `rotor` CLI, a second server) wait on the
//! busy timeout. Every write runs inside a `BEGIN IMMEDIATE` transaction, so
//! the write lock is held from its first statement and a compare-and-swap
//! cannot be interleaved.
#![forbid(unsafe_code)]

mod db;
mod migrate;
mod outbox;
mod rows;
mod store;
mod upstream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rotor_store::StoreError;
use rusqlite::ffi;

pub use migrate::MIGRATIONS;

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
    /// `sqlite://path/to/rotor.db` or `sqlite:path` (created if missing).
    pub url: String,
    /// How commits are synced.
    pub durability: Durability,
    /// Idle read-only connections kept open.
    pub readers: u32,
    /// How long a write waits for another process's lock.
    pub busy_timeout: Duration,
    /// Whether a missing database file is created (`serve`, `migrate`); the
    /// other commands refuse to make an empty database by accident.
    pub create: bool,
}

impl SqliteConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            durability: Durability::Normal,
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            create: true,
        }
    }
}

/// The SQLite store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Arc<db::Writer>,
    readers: Arc<db::Readers>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and runs pending migrations.
    pub async fn open(config: &SqliteConfig) -> Result<Self, StoreError> {
        let path = database_file(&config.url)?;
        if !config.create && !path.exists() {
            let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
            return Err(StoreError::Other(format!(
                "no Rotor database at {}: point --database-url (ROTOR_DATABASE_URL) at an \
                 existing one, or create it with `rotor migrate`",
                shown.display()
            )));
        }
        let (durability, busy) = (config.durability, config.busy_timeout);
        let open_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || {
            let conn = db::connect(&open_path, true, durability, busy)?;
            migrate::run(&conn)?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|_| StoreError::Other("opening the SQLite database panicked".into()))??;
        let writer = db::Writer::start(conn)?;
        let readers = db::Readers::new(path, durability, busy, config.readers as usize);
        // Fail now, not on the first request, if readers cannot open.
        readers.read(|c| c.execute_batch("SELECT 1").map_err(map_err))?;
        Ok(Self {
            writer: Arc::new(writer),
            readers: Arc::new(readers),
        })
    }

    /// Commits queued writes, stops the writer and closes the connections.
    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.clear();
    }
}

/// The file a `sqlite://PATH` or `sqlite:PATH` URL names (any `?query` is
/// ignored). In-memory databases are refused: a token store that forgets
/// everything on restart would log every installation out.
pub fn database_file(url: &str) -> Result<PathBuf, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Other(format!("not a SQLite URL: {url:?}")))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Err(StoreError::Other(
            "a SQLite URL must name a file (in-memory databases are not supported)".into(),
        ));
    }
    Ok(PathBuf::from(path))
}

/// Maps a rusqlite error to the store's vocabulary.
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(err, msg) => match err.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                let msg = msg.as_deref().unwrap_or_default();
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
                } else if msg.contains("webhook_deliveries") {
                    "delivery"
                } else if msg.contains("upstream_providers") {
                    "provider"
                } else {
                    "unique"
                };
                StoreError::Conflict(what.to_owned())
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::NotFound,
            _ => match err.code {
                ffi::ErrorCode::DatabaseBusy
                | ffi::ErrorCode::DatabaseLocked
                | ffi::ErrorCode::CannotOpen
                | ffi::ErrorCode::DiskFull
                | ffi::ErrorCode::SystemIoFailure
                | ffi::ErrorCode::ReadOnly => StoreError::Unavailable(e.to_string()),
                _ => StoreError::Other(e.to_string()),
            },
        },
        _ => StoreError::Other(e.to_string()),
    }
}
