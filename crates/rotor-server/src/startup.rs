//! Start-up and shutdown: typed configuration (secrets redacted), choosing
//! the store backend from the database URL, loading the server key, and
//! serving until a shutdown signal.

use std::future::Future;
use std::sync::Arc;

use anyhow::{bail, Context};
use rotor_core::{Clock, Keyring, Lifetimes, Secret, SystemClock};
use rotor_store::Store;
use rotor_store_postgres::{PgConfig, PgStore};
pub use rotor_store_sqlite::Durability;
use rotor_store_sqlite::{SqliteConfig, SqliteStore};
use tokio::net::TcpListener;

pub use crate::background::Background;
use crate::connections::ConnectionLimits;
use crate::http::AppState;
use crate::keyfile::{load_keyring, KeySource};
use crate::service::Service;
use crate::webhooks::WebhookSettings;

/// Everything `rotor serve` needs. Secrets print as `[redacted]`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database URL: `sqlite://rotor.db` (default) or a file path.
    pub database_url: String,
    /// The operator's token; `None` closes the admin API.
    pub admin_token: Option<Secret>,
    /// The server key (base64); `None` uses a key file next to a SQLite file.
    pub secret_key: Option<Secret>,
    /// Older keys still being rotated out (comma-separated base64).
    pub old_secret_keys: Option<Secret>,
    /// SQLite `synchronous` level.
    pub durability: Durability,
    /// Public base URL, the RFC 8414 issuer (`None`: from the `Host` header).
    pub public_url: Option<String>,
    /// Refresh-token idle limit and family lifetime.
    pub lifetimes: Lifetimes,
    /// PostgreSQL: most connections per node.
    pub pg_max_connections: u32,
    /// How long one request to an upstream provider may take.
    pub upstream_timeout: std::time::Duration,
    /// PostgreSQL: how long a request waits for a connection before 503.
    pub pg_acquire_timeout: std::time::Duration,
    /// Whether a missing SQLite file may be created (`serve`, `migrate`).
    pub create_database: bool,
    /// The platform's scope vocabulary.
    pub scopes: rotor_core::ScopeVocabulary,
    /// Webhook delivery settings.
    pub webhooks: WebhookSettings,
    /// How long events and audit records are kept (`None`: forever).
    pub events_retention: Option<chrono::Duration>,
    /// Per-request deadlines.
    pub deadlines: crate::http::Deadlines,
    /// Failed-authentication limits.
    pub throttle: crate::service::ThrottleSettings,
    /// Connection limits and timeouts of the listener.
    pub connections: ConnectionLimits,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` name the client.
    pub trusted_proxies: crate::http::client_ip::TrustedProxies,
}

impl Config {
    /// A configuration with defaults for everything but the database URL.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            admin_token: None,
            secret_key: None,
            old_secret_keys: None,
            durability: Durability::Normal,
            public_url: None,
            lifetimes: Lifetimes::default(),
            pg_max_connections: 16,
            upstream_timeout: std::time::Duration::from_secs(20),
            pg_acquire_timeout: std::time::Duration::from_secs(3),
            create_database: true,
            scopes: rotor_core::ScopeVocabulary::default(),
            webhooks: WebhookSettings::default(),
            events_retention: Some(chrono::Duration::days(90)),
            deadlines: crate::http::Deadlines::default(),
            throttle: crate::service::ThrottleSettings::default(),
            connections: ConnectionLimits::default(),
            trusted_proxies: Default::default(),
        }
    }
}

/// A SQLite URL for `database_url`, which may be a bare path.
pub fn sqlite_url(database_url: &str) -> Option<String> {
    if database_url.starts_with("sqlite:") {
        Some(database_url.to_owned())
    } else if database_url.contains("://") {
        None
    } else {
        Some(format!("sqlite://{database_url}"))
    }
}

/// The database a URL names, for logs and errors: the absolute path of a
/// SQLite file, or a PostgreSQL URL's host, port and database — never its
/// user or password.
pub fn describe_database(database_url: &str) -> String {
    if let Some(path) =
        sqlite_url(database_url).and_then(|u| rotor_store_sqlite::database_file(&u).ok())
    {
        return std::path::absolute(&path)
            .unwrap_or(path)
            .display()
            .to_string();
    }
    match url::Url::parse(database_url) {
        Ok(u) => format!(
            "{}://{}:{}{}",
            u.scheme(),
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "(unparsable database URL)".into(),
    }
}

/// Whether the URL names a PostgreSQL database.
fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the backend the URL names and runs its pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match sqlite_url(&config.database_url) {
        Some(url) => {
            let mut cfg = SqliteConfig::new(url);
            cfg.durability = config.durability;
            cfg.create = config.create_database;
            let store = SqliteStore::open(&cfg).await.with_context(|| {
                format!(
                    "opening the SQLite database {}",
                    describe_database(&config.database_url)
                )
            })?;
            Ok(Arc::new(store))
        }
        None if is_postgres(&config.database_url) => {
            let mut cfg = PgConfig::new(config.database_url.clone());
            cfg.max_connections = config.pg_max_connections;
            cfg.acquire_timeout = config.pg_acquire_timeout;
            let store = PgStore::open(&cfg)
                .await
                .context("opening the PostgreSQL database")?;
            Ok(Arc::new(store))
        }
        None => bail!(
            "unsupported database URL scheme {:?}: use sqlite://PATH or postgres://…",
            config.database_url.split("://").next().unwrap_or("")
        ),
    }
}

/// Loads the server keyring for `config` and says where it came from. A key
/// file is created only when nothing is sealed yet (`sealed_with` empty).
pub fn keyring(config: &Config, sealed_with: &[String]) -> anyhow::Result<(Keyring, KeySource)> {
    let key_file = key_file(config);
    load_keyring(
        config.secret_key.as_ref(),
        config.old_secret_keys.as_ref(),
        key_file.as_deref(),
        sealed_with,
    )
}

/// The key file a configuration uses: beside a SQLite database, when no
/// key is configured.
pub fn key_file(config: &Config) -> Option<std::path::PathBuf> {
    if config.secret_key.is_some() {
        return None;
    }
    sqlite_url(&config.database_url)
        .and_then(|u| rotor_store_sqlite::database_file(&u).ok())
        .map(|p| {
            let mut name = p.file_name().unwrap_or_default().to_owned();
            name.push(".key");
            p.with_file_name(name)
        })
}

/// Refuses a keyring that lacks a key some stored data was sealed under:
/// without it those values could never be opened again, and every exchange
/// of an app sealed under it would fail.
pub fn check_keys(
    keyring: &Keyring,
    sealed: &[(String, u64)],
    source: &KeySource,
) -> anyhow::Result<()> {
    let missing: Vec<String> = sealed
        .iter()
        .filter(|(id, _)| !keyring.all().any(|k| k.id() == id))
        .map(|(id, n)| format!("{id} ({n} value(s))"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let from = match source {
        KeySource::Configured => "ROTOR_SECRET_KEY and ROTOR_SECRET_KEYS_OLD".to_owned(),
        KeySource::File(p) | KeySource::Created(p) => format!(
            "the key file {} (or ROTOR_SECRET_KEY and ROTOR_SECRET_KEYS_OLD)",
            p.display()
        ),
    };
    bail!(
        "the database holds data sealed under key id(s) {} that the keyring (from {from}) does \
         not have: give Rotor those keys (an older key goes in ROTOR_SECRET_KEYS_OLD) and start again",
        missing.join(", ")
    )
}

/// Builds the application state: store, key, clock.
pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let store = open_store(config).await?;
    let sealed = store
        .sealed_key_ids()
        .await
        .context("reading which server keys sealed the stored data")?;
    let ids: Vec<String> = sealed.iter().map(|(id, _)| id.clone()).collect();
    let (keyring, source) = keyring(config, &ids)?;
    check_keys(&keyring, &sealed, &source)?;
    match &source {
        KeySource::Created(p) => tracing::warn!(
            key_file = %p.display(),
            key_id = keyring.primary().id(),
            "no server key configured: created a new key file (owner-only); back it up, \
             and give every node on this database the same key"
        ),
        KeySource::File(p) => {
            tracing::info!(key_file = %p.display(), key_id = keyring.primary().id(), "server key loaded")
        }
        KeySource::Configured => {
            tracing::info!(
                key_id = keyring.primary().id(),
                "server key from configuration"
            )
        }
    }
    Ok(AppState {
        service: Service::new(store, clock, keyring)
            .with_lifetimes(config.lifetimes)
            .with_scopes(config.scopes.clone())
            .with_webhooks(config.webhooks.clone())
            .with_events_retention(config.events_retention)
            .with_throttle(config.throttle)
            .with_upstream(Arc::new(rotor_upstream::ReqwestClient::new(
                config.upstream_timeout,
            ))),
        admin_token: config.admin_token.clone().map(Arc::new),
        issuer: config
            .public_url
            .as_ref()
            .map(|u| u.trim_end_matches('/').to_owned()),
        deadlines: config.deadlines,
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
    })
}

/// Builds the state with the system clock.
pub async fn build_default(config: &Config) -> anyhow::Result<AppState> {
    build(config, Arc::new(SystemClock)).await
}

/// Serves `state` on `listener` until `shutdown` resolves, with the default
/// connection limits; see [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, ConnectionLimits::default(), shutdown).await
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish within the drain deadline and closes the rest.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::connections::serve(listener, crate::http::router(state), limits, shutdown).await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
