//! The PostgreSQL backend of the Rotor store: many stateless Rotor nodes on
//! one database, with the same guarantees as the embedded SQLite default.
//!
//! It owns the PostgreSQL schema (`migrations/`, embedded; sqlx takes an
//! advisory lock, so nodes starting together migrate once), row mapping, and
//! the pool settings. The races are decided by the database: a rotation is a
//! conditional `UPDATE` of the old pair's row (row lock, re-checked after a
//! concurrent writer commits), a grant exchange a conditional `DELETE`, and a
//! family's revocation lives on its family row, which every token read joins —
//! so a successor committed by a racing rotation is revoked with its family.
//! Rotations are group-committed: many in one statement (`rotations`).
#![forbid(unsafe_code)]

mod outbox;
mod rotations;
mod rows;
mod store;
mod upstream;

use std::str::FromStr;
use std::time::Duration;

use rotor_store::{Conflict, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Pool settings of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user@host:port/database`.
    pub url: String,
    /// Most connections this node opens.
    pub max_connections: u32,
    /// How long a request waits for a free connection before it is answered
    /// 503; also bounds how long a dead database is waited for.
    pub acquire_timeout: Duration,
    /// Schema to work in (`search_path`); `None` uses the server's default.
    pub schema: Option<String>,
}

impl PgConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            schema: None,
        }
    }
}

/// The PostgreSQL store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    rotations: rotations::Rotations,
}

impl PgStore {
    /// Connects and runs pending migrations.
    pub async fn open(config: &PgConfig) -> Result<Self, StoreError> {
        let mut opts = PgConnectOptions::from_str(&config.url)
            .map_err(|e| StoreError::other(format!("bad PostgreSQL URL: {e}")))?
            .statement_cache_capacity(256);
        if let Some(schema) = &config.schema {
            opts = opts.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.acquire_timeout)
            // A connection that broke while the database was away is dropped
            // on its next checkout instead of failing a request. Only one
            // idle for a while is pinged (as HikariCP does): under load every
            // connection was used a moment ago, and a ping per checkout was
            // a round trip per query.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        use sqlx::Connection;
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(opts)
            .await
            .map_err(map_err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::other(format!("migration failed: {e}")))?;
        let rotations = rotations::Rotations::start(pool.clone());
        Ok(Self { pool, rotations })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A pooled connection idle this long is pinged before it is handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_millis(500);

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Maps a sqlx error to the store's vocabulary, by constraint name and
/// SQLSTATE class.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => StoreError::unavailable(e),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.is_unique_violation() {
                let what = match db.constraint().unwrap_or_default() {
                    "apps_slug_key" => Conflict::Slug,
                    "apps_client_id_key" => Conflict::ClientId,
                    "installations_live_key" => Conflict::Installation,
                    "used_jtis_pkey" => Conflict::Jti,
                    "webhook_deliveries_id_key" => Conflict::Delivery,
                    "upstream_providers_pkey" => Conflict::Provider,
                    _ => Conflict::Unique,
                };
                StoreError::Conflict(what)
            } else if db.is_foreign_key_violation() {
                StoreError::NotFound
            } else if code.starts_with("08") || code.starts_with("57P") || code == "53300" {
                // connection exceptions, admin/crash shutdown, too many connections
                StoreError::unavailable(e)
            } else {
                StoreError::other(e)
            }
        }
        _ => StoreError::other(e),
    }
}
