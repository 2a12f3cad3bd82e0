//! The use cases of Rotor, independent of HTTP: each reads as the reference
//! design does — validate (pure, in `rotor_core::validate`), then one atomic
//! store call, then record and log the event. The HTTP routes and the `rotor`
//! CLI both call these; wire formats live elsewhere.

mod apps;
mod exchange;
mod installs;
mod jwt;
mod keys;
mod throttle;
mod tokens;
pub mod upstream;
pub mod webhooks;

use std::sync::Arc;

use rotor_core::{Clock, CoreError, Keyring, Lifetimes, ScopeVocabulary};
use rotor_store::{Store, StoreError};

pub use apps::{AppPatch, CreatedApp, NewApp, WhileInstalled};
pub use exchange::{ClientAuth, Issued};
pub use installs::CreatedInstallation;
pub use keys::{KeyStatus, KeyUse, Resealed};
pub use throttle::{AuthThrottle, ThrottleKey, ThrottleSettings};
pub use tokens::{Introspection, Introspector};

/// Why a use case did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The domain refused the request (authentication or validation).
    #[error(transparent)]
    Refused(#[from] CoreError),
    /// The thing named in the route does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule refused it.
    #[error("{0}")]
    Conflict(String),
    /// Too many failed authentications from this client or address: try
    /// again after this many seconds.
    #[error("too many failed authentication attempts; retry in {0} s")]
    Throttled(u64),
    /// The input is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value sealed at rest (a client secret, a provider secret, an
    /// upstream token) does not open with the keyring: the key that sealed
    /// it is missing from the server's keys, or the value was tampered with.
    /// Not a store fault: the database answered.
    #[error("{what} does not open with the server keys")]
    Sealed {
        /// Which value.
        what: String,
        /// The keyring's reason.
        #[source]
        cause: rotor_core::KeyError,
    },
}

/// Result of a use case.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Everything the use cases need, built once at start-up.
#[derive(Clone)]
pub struct Service {
    /// The storage backend chosen in `main`.
    store: Arc<dyn Store>,
    /// Where "now" comes from.
    clock: Arc<dyn Clock>,
    /// Seals client secrets.
    keyring: Arc<Keyring>,
    /// Refresh-token idle limit and family lifetime.
    lifetimes: Lifetimes,
    /// Upstream refresh state (HTTP client, single-flight locks, node name).
    upstream: Option<upstream::Upstream>,
    /// Derives a refresh's successor pair from the presented refresh token,
    /// so that a replay within the grace window can be answered with the same
    /// pair without storing it. Derived once from the server key.
    /// The first is the primary key's; older keys' follow, so a replay that
    /// spans a key rotation still finds its successor.
    successor_keys: Arc<Vec<[u8; 32]>>,
    /// The platform's scope vocabulary (`ROTOR_SCOPES`).
    scopes: Arc<ScopeVocabulary>,
    /// Webhook settings: what is queued (platform endpoint) and how it is
    /// sent and retried.
    webhooks: Arc<crate::webhooks::WebhookSettings>,
    /// Wakes this node's webhook worker when a change queued deliveries.
    webhook_wake: Arc<tokio::sync::Notify>,
    /// Events and audit records older than this are purged by the janitor;
    /// `None` keeps them forever.
    events_retention: Option<chrono::Duration>,
    /// Failed-authentication throttle (per node).
    throttle: Arc<AuthThrottle>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("keyring", &self.keyring)
            .field("lifetimes", &self.lifetimes)
            .field("successor_keys", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

impl Service {
    /// Builds the service over a store, a clock and the server keyring.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, keyring: Keyring) -> Self {
        let successor_keys = Arc::new(
            keyring
                .all()
                .map(|k| k.subkey("refresh-successor"))
                .collect::<Vec<_>>(),
        );
        Self {
            store,
            clock,
            keyring: Arc::new(keyring),
            lifetimes: Lifetimes::default(),
            upstream: None,
            successor_keys,
            scopes: Arc::new(ScopeVocabulary::default()),
            webhooks: Arc::new(crate::webhooks::WebhookSettings::default()),
            webhook_wake: Arc::new(tokio::sync::Notify::new()),
            events_retention: Some(chrono::Duration::days(90)),
            throttle: Arc::new(AuthThrottle::new(ThrottleSettings::default())),
        }
    }

    /// Sets the failed-authentication limits.
    pub fn with_throttle(mut self, settings: ThrottleSettings) -> Self {
        self.throttle = Arc::new(AuthThrottle::new(settings));
        self
    }

    /// Refuses with [`ServiceError::Throttled`] while any of `keys` is over
    /// its failure limit.
    pub fn check_throttle(&self, keys: &[ThrottleKey]) -> ServiceResult<()> {
        match self.throttle.refused(keys, self.now()) {
            Some(wait) => Err(ServiceError::Throttled(wait.num_seconds().max(1) as u64)),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication for `keys`, logging the keys that
    /// reached their limit (once per window).
    pub fn count_failure(&self, keys: &[ThrottleKey], what: &str) {
        for k in self.throttle.failed(keys, self.now()) {
            tracing::warn!(key = ?k, what, "failed authentication limit reached: refusing with 429 until the window ends");
        }
    }

    /// Sets how long events and audit records are kept (`None`: forever).
    pub fn with_events_retention(mut self, keep: Option<chrono::Duration>) -> Self {
        self.events_retention = keep;
        self
    }

    /// Whether the database accepts reads and writes now (readiness).
    pub async fn ready(&self) -> ServiceResult<()> {
        self.store.ping().await?;
        self.store.check_writable(self.now()).await?;
        Ok(())
    }

    /// Rows by status for the metrics' gauges (see [`Store::status_counts`]).
    pub async fn status_counts(&self) -> ServiceResult<Vec<(String, String, u64)>> {
        Ok(self.store.status_counts().await?)
    }

    /// The platform's scope vocabulary.
    pub fn scopes(&self) -> &ScopeVocabulary {
        &self.scopes
    }

    /// The webhook settings (the worker reads them).
    pub fn webhook_settings(&self) -> Arc<crate::webhooks::WebhookSettings> {
        self.webhooks.clone()
    }

    /// Closes the store: queued writes commit, connections close.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Sets the platform's scope vocabulary.
    pub fn with_scopes(mut self, scopes: ScopeVocabulary) -> Self {
        self.scopes = Arc::new(scopes);
        self
    }

    /// Sets the webhook settings.
    pub fn with_webhooks(mut self, settings: crate::webhooks::WebhookSettings) -> Self {
        self.webhooks = Arc::new(settings);
        self
    }

    /// Enables upstream refresh through `http`.
    pub fn with_upstream(mut self, http: Arc<dyn rotor_upstream::HttpClient>) -> Self {
        self.upstream = Some(upstream::Upstream::new(http));
        self
    }

    /// Sets the refresh-token and family lifetimes.
    pub fn with_lifetimes(mut self, lifetimes: Lifetimes) -> Self {
        self.lifetimes = lifetimes;
        self
    }

    /// The current time at the precision every backend stores (microseconds),
    /// so what is answered is exactly what is stored.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        use chrono::SubsecRound;
        self.clock.now().trunc_subsecs(6)
    }
}
