//! Upstream identities: hand out a valid provider access token, refreshing it
//! first when needed — exactly once however many callers ask at the same
//! moment, in this process (a per-identity lock) and across nodes (a lease
//! claimed by compare-and-swap in the store, with the identity re-read after
//! the lease is won so a refresh just done by another node is reused).
//!
//! `records`: providers and identities (create, read, re-authorize,
//! delete; tokens sealed at rest). `refresh`: handing out a token, and the
//! refresh itself (single flight, lease, classification, backoff), in the
//! foreground and in the background sweep.

mod records;
mod refresh;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rotor_core::{Secret, UpstreamIdentityRecord};
use rotor_store::StoreError;
use rotor_upstream::HttpClient;
use uuid::Uuid;

use crate::service::{Service, ServiceError, ServiceResult};

/// How long a node may hold an identity's refresh lease: longer than a
/// refresh can take (two provider requests of at most 20 s each by default),
/// so a slow refresh does not lose its lease to another node mid-way.
pub(super) const LEASE: Duration = Duration::seconds(90);
/// Identities nobody asked for are refreshed at least this often, so that
/// their refresh tokens never expire from idleness (providers' idle limits
/// are weeks to months).
pub const IDLE_REFRESH: Duration = Duration::days(7);
/// How long a caller waits for another node's refresh before giving up.
pub(super) const WAIT_FOR_OTHER_NODE: StdDuration = StdDuration::from_secs(10);

/// Per-process state of the upstream use cases.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Outbound HTTP to providers.
    pub http: Arc<dyn HttpClient>,
    /// One lock per identity being refreshed in this process.
    flights: Arc<Mutex<HashMap<Uuid, Weak<tokio::sync::Mutex<()>>>>>,
    /// This node's lease owner name.
    node: String,
}

impl Upstream {
    /// Upstream state over an HTTP client.
    pub fn new(http: Arc<dyn HttpClient>) -> Self {
        Self {
            http,
            flights: Arc::default(),
            node: format!("node-{}", Uuid::new_v4().simple()),
        }
    }

    pub(super) fn flight(&self, id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(lock) = map.get(&id).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(id, Arc::downgrade(&lock));
        lock
    }
}

/// What an operator gives to register an identity.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    /// The provider's key.
    pub provider: String,
    /// The account at the provider.
    pub external_id: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// A current access token, if the caller has one.
    pub access_token: Option<Secret>,
    /// The refresh token (kinds that use one).
    pub refresh_token: Option<Secret>,
    /// When `access_token` expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// GitHub App installation id.
    pub installation_id: Option<String>,
}

/// New credentials for an identity (re-authorization); `None` keeps a value.
#[derive(Debug, Clone, Default)]
pub struct IdentityPatch {
    /// A new access token.
    pub access_token: Option<Secret>,
    /// A new refresh token.
    pub refresh_token: Option<Secret>,
    /// When the (new) access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// New scopes.
    pub scopes: Option<Vec<String>>,
}

/// Why a token could not be handed out.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The identity needs re-authorization (409).
    #[error("{0}")]
    Invalid(String),
    /// The provider is unreachable and the stored token is not good enough (503).
    #[error("{0}")]
    Unavailable(String),
    /// The provider answered, but even its fresh token expires sooner than
    /// the caller asked (`minValidSeconds` too large for it): asking again
    /// will not help, asking for less will (400).
    #[error("the provider's fresh token lives {lives} s, less than the {asked} s asked")]
    TooShort {
        /// Seconds the fresh token lives.
        lives: i64,
        /// Seconds asked for.
        asked: i64,
    },
    /// Anything else.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for UpstreamError {
    fn from(e: StoreError) -> Self {
        UpstreamError::Service(e.into())
    }
}

/// Whether [`Service::upstream_token`] refreshes a token that is still
/// fresh enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Only when it expires within the asked margin.
    IfDue,
    /// Now, whatever its expiry (the operator's forced refresh, or a token
    /// idle so long its refresh token may lapse).
    Now,
}

/// A valid upstream access token.
#[derive(Debug, Clone)]
pub struct UpstreamToken {
    /// The token (redacted in `Debug`).
    pub access_token: Secret,
    /// Its type.
    pub token_type: String,
    /// Its real expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

pub(super) fn fresh(
    ident: &UpstreamIdentityRecord,
    min_valid: Duration,
    now: DateTime<Utc>,
) -> bool {
    ident.access_token.is_some() && ident.expires_at.is_none_or(|e| e - now >= min_valid)
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s … capped at 10 minutes.
pub(super) fn backoff(failures: i64) -> Duration {
    let base = 1i64 << failures.clamp(0, 10);
    let jitter = rand::random::<f64>() * 0.5 + 0.75;
    Duration::milliseconds(((base * 1000) as f64 * jitter).min(600_000.0) as i64)
}

impl Service {
    pub(super) fn upstream(&self) -> ServiceResult<&Upstream> {
        self.upstream
            .as_ref()
            .ok_or_else(|| ServiceError::Invalid("upstream refresh is not configured".into()))
    }
}

pub(super) fn reauth(ident: &UpstreamIdentityRecord) -> String {
    format!(
        "identity needs re-authorization: {}",
        ident
            .last_error
            .as_deref()
            .unwrap_or("the provider refused the grant")
    )
}
