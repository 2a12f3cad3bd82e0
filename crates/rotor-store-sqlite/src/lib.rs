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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rotor_store::{Conflict, StoreError};
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
            return Err(StoreError::other(format!(
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
        .map_err(|_| StoreError::other("opening the SQLite database panicked"))??;
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
        .ok_or_else(|| StoreError::other(format!("not a SQLite URL: {url:?}")))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Err(StoreError::other(
            "a SQLite URL must name a file (in-memory databases are not supported)",
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
                let rules = [
                    ("apps.slug", Conflict::Slug),
                    ("apps.client_id", Conflict::ClientId),
                    ("installations.app_id", Conflict::Installation),
                    ("used_jtis", Conflict::Jti),
                    ("webhook_deliveries", Conflict::Delivery),
                    ("upstream_providers", Conflict::Provider),
                ];
                let what = rules
                    .iter()
                    .find(|(name, _)| msg.contains(name))
                    .map_or(Conflict::Unique, |(_, c)| *c);
                StoreError::Conflict(what)
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::NotFound,
            _ => match err.code {
                ffi::ErrorCode::DatabaseBusy
                | ffi::ErrorCode::DatabaseLocked
                | ffi::ErrorCode::CannotOpen
                | ffi::ErrorCode::DiskFull
                | ffi::ErrorCode::SystemIoFailure
                | ffi::ErrorCode::ReadOnly => StoreError::unavailable(e),
                _ => StoreError::other(e),
            },
        },
        _ => StoreError::other(e),
    }
}

/// Copies the live database at `url` to `dest` with SQLite's online backup
/// API, while Rotor keeps serving. The copy is one consistent snapshot: the
/// whole database is copied in a single step inside one read transaction,
/// which in WAL mode does not block the writer (a backup made in small
/// steps would restart whenever Rotor commits, and never end under load).
/// `dest` must not exist; it is written beside, fsynced and renamed into
/// place, so a failed backup leaves nothing that looks like one. Answers the
/// number of pages copied.
pub fn backup(url: &str, dest: &Path) -> Result<u64, StoreError> {
    use rusqlite::{backup::Backup, Connection, OpenFlags};
    let src_path = database_file(url)?;
    if !src_path.exists() {
        return Err(StoreError::other(format!(
            "no Rotor database at {}",
            std::path::absolute(&src_path)
                .unwrap_or(src_path.clone())
                .display()
        )));
    }
    if dest.exists() {
        return Err(StoreError::other(format!(
            "{} already exists; a backup never overwrites a file",
            dest.display()
        )));
    }
    let src = Connection::open_with_flags(
        &src_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(map_err)?;
    src.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(map_err)?;
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.partial",
        dest.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("backup")
    ));
    let _ = std::fs::remove_file(&tmp);
    let pages = (|| {
        let mut out = Connection::open(&tmp).map_err(map_err)?;
        let pages = {
            let b = Backup::new(&src, &mut out).map_err(map_err)?;
            loop {
                match b.step(-1).map_err(map_err)? {
                    rusqlite::backup::StepResult::Done => break,
                    // Locked or busy: the writer holds a lock that a WAL
                    // reader should never meet; wait and try again.
                    _ => std::thread::sleep(std::time::Duration::from_millis(50)),
                }
            }
            b.progress().pagecount
        };
        // A standalone file: no WAL beside it.
        out.pragma_update(None, "journal_mode", "DELETE")
            .map_err(map_err)?;
        drop(out);
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::other(format!("syncing {}: {e}", tmp.display())))?;
        Ok::<u64, StoreError>(pages as u64)
    })();
    match pages {
        Ok(pages) => {
            std::fs::rename(&tmp, dest)
                .map_err(|e| StoreError::other(format!("renaming into {}: {e}", dest.display())))?;
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
            Ok(pages)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
