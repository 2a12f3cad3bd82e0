//! Upstream identities: hand out a valid provider access token, refreshing it
//! first when needed — exactly once however many callers ask at the same
//! moment, in this process (a per-identity lock) and across nodes (a lease
//! claimed by compare-and-swap in the store, with the identity re-read after
//! the lease is won so a refresh just done by another node is reused).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rotor_core::{
    Ciphertext, IdentityStatus, NewEvent, Secret, UpstreamIdentityRecord, UpstreamProvider,
};
use rotor_store::StoreError;
use rotor_upstream::config::{self, ProviderConfig, ProviderKind, ProviderSecrets};
use rotor_upstream::{Failure, HttpClient, UpstreamIdentity};
use serde_json::Value;
use uuid::Uuid;

use super::installs::log_event;
use super::{Service, ServiceError, ServiceResult};

/// How long a node may hold an identity's refresh lease: longer than a
/// refresh can take (two provider requests of at most 20 s each by default),
/// so a slow refresh does not lose its lease to another node mid-way.
const LEASE: Duration = Duration::seconds(90);
/// Identities nobody asked for are refreshed at least this often, so that
/// their refresh tokens never expire from idleness (providers' idle limits
/// are weeks to months).
pub const IDLE_REFRESH: Duration = Duration::days(7);
/// How long a caller waits for another node's refresh before giving up.
const WAIT_FOR_OTHER_NODE: StdDuration = StdDuration::from_secs(10);

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

    fn flight(&self, id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
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
    /// Anything else.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for UpstreamError {
    fn from(e: StoreError) -> Self {
        UpstreamError::Service(e.into())
    }
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

fn fresh(ident: &UpstreamIdentityRecord, min_valid: Duration, now: DateTime<Utc>) -> bool {
    ident.access_token.is_some() && ident.expires_at.is_none_or(|e| e - now >= min_valid)
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s … capped at 10 minutes.
fn backoff(failures: i64) -> Duration {
    let base = 1i64 << failures.clamp(0, 10);
    let jitter = rand::random::<f64>() * 0.5 + 0.75;
    Duration::milliseconds(((base * 1000) as f64 * jitter).min(600_000.0) as i64)
}

impl Service {
    fn upstream(&self) -> ServiceResult<&Upstream> {
        self.upstream
            .as_ref()
            .ok_or_else(|| ServiceError::Invalid("upstream refresh is not configured".into()))
    }

    /// Creates a provider: configuration checked, secrets sealed.
    pub async fn create_provider(
        &self,
        key: &str,
        kind: &str,
        config_json: &Value,
    ) -> ServiceResult<UpstreamProvider> {
        if !rotor_core::slug::is_valid(key) {
            return Err(ServiceError::Invalid(
                "key must be 1 to 64 lower-case letters, digits, '-' or '_'".into(),
            ));
        }
        let kind = ProviderKind::parse(kind)
            .ok_or_else(|| ServiceError::Invalid(format!("unknown provider kind {kind}")))?;
        let (cfg, secrets) = config::parse(kind, config_json).map_err(ServiceError::Invalid)?;
        let secrets_json = serde_json::to_vec(&secrets).unwrap_or_default();
        let provider = UpstreamProvider {
            key: key.to_owned(),
            kind: kind.as_str().to_owned(),
            config: serde_json::to_string(&cfg).unwrap_or_default(),
            secrets: self
                .keyring
                .seal(&secrets_json, &UpstreamProvider::secrets_aad(key)),
            created_at: self.now(),
        };
        match self.store.insert_provider(&provider).await {
            Ok(()) => Ok(provider),
            Err(StoreError::Conflict(_)) => Err(ServiceError::Conflict(format!(
                "a provider with the key {key} already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// All providers.
    pub async fn list_providers(&self) -> ServiceResult<Vec<UpstreamProvider>> {
        Ok(self.store.list_providers().await?)
    }

    fn seal_token(&self, id: Uuid, field: &str, value: Option<&str>) -> Option<Ciphertext> {
        value.map(|v| {
            self.keyring
                .seal(v.as_bytes(), &UpstreamIdentityRecord::aad(id, field))
        })
    }

    fn open_token(
        &self,
        id: Uuid,
        field: &str,
        ct: Option<&Ciphertext>,
    ) -> ServiceResult<Option<Secret>> {
        ct.map(|c| {
            self.keyring
                .open(c, &UpstreamIdentityRecord::aad(id, field))
                .map(|b| Secret::new(String::from_utf8_lossy(&b).into_owned()))
                .map_err(|cause| ServiceError::Sealed {
                    what: format!("the {field} of identity {id}"),
                    cause,
                })
        })
        .transpose()
    }

    /// Registers an identity at a provider.
    pub async fn create_identity(&self, new: NewIdentity) -> ServiceResult<UpstreamIdentityRecord> {
        let NewIdentity {
            provider,
            external_id,
            scopes,
            access_token,
            refresh_token,
            expires_at,
            installation_id,
        } = new;
        let (access_token, refresh_token) = (
            access_token.as_ref().map(Secret::expose),
            refresh_token.as_ref().map(Secret::expose),
        );
        let p = self
            .store
            .provider(&provider)
            .await?
            .ok_or(ServiceError::NotFound("Provider"))?;
        let kind = ProviderKind::parse(&p.kind).unwrap_or(ProviderKind::OAuth2);
        if kind == ProviderKind::GithubApp && installation_id.is_none() {
            return Err(ServiceError::Invalid(
                "installationId is required for github-app".into(),
            ));
        }
        if kind.uses_refresh_token() && refresh_token.is_none() && access_token.is_none() {
            return Err(ServiceError::Invalid(
                "give a refreshToken (or an accessToken)".into(),
            ));
        }
        let id = Uuid::new_v4();
        let record = UpstreamIdentityRecord {
            id,
            provider,
            external_id,
            scopes,
            access_token: self.seal_token(id, "access_token", access_token),
            refresh_token: self.seal_token(id, "refresh_token", refresh_token),
            token_type: "Bearer".into(),
            expires_at: if access_token.is_some() {
                expires_at
            } else {
                None
            },
            installation_id,
            status: IdentityStatus::Active,
            last_refreshed_at: None,
            failure_count: 0,
            last_error: None,
            next_attempt_at: None,
            created_at: self.now(),
        };
        self.store.insert_identity(&record).await?;
        Ok(record)
    }

    /// Identities, oldest first, at most `limit`.
    pub async fn list_identities(&self, limit: u32) -> ServiceResult<Vec<UpstreamIdentityRecord>> {
        Ok(self.store.list_identities(limit).await?)
    }

    /// The identity with this id.
    pub async fn identity(&self, id: &str) -> ServiceResult<UpstreamIdentityRecord> {
        let id = Uuid::parse_str(id).map_err(|_| ServiceError::NotFound("Identity"))?;
        self.store
            .identity(id)
            .await?
            .ok_or(ServiceError::NotFound("Identity"))
    }

    /// Re-authorization: new tokens (and optionally scopes) for an existing
    /// identity, which becomes `active` with its failures reset; the id other
    /// systems hold stays. Tells the platform (`identity.reauthorized`) when
    /// the identity was `invalid`.
    pub async fn reauthorize_identity(
        &self,
        id: &str,
        patch: IdentityPatch,
    ) -> ServiceResult<UpstreamIdentityRecord> {
        let mut ident = self.identity(id).await?;
        let was_invalid = ident.status == IdentityStatus::Invalid;
        if let Some(t) = &patch.access_token {
            ident.access_token = self.seal_token(ident.id, "access_token", Some(t.expose()));
            ident.expires_at = patch.expires_at;
        } else if patch.expires_at.is_some() {
            ident.expires_at = patch.expires_at;
        }
        if let Some(t) = &patch.refresh_token {
            ident.refresh_token = self.seal_token(ident.id, "refresh_token", Some(t.expose()));
        }
        if let Some(scopes) = patch.scopes {
            ident.scopes = scopes;
        }
        ident.status = IdentityStatus::Active;
        ident.failure_count = 0;
        ident.last_error = None;
        ident.next_attempt_at = None;
        let ev = NewEvent {
            identity_id: Some(ident.id.to_string()),
            actor: Some(ident.provider.clone()),
            ..NewEvent::new(rotor_core::EventKind::IdentityReauthorized, self.now())
        };
        let outbox: Vec<_> = if was_invalid {
            self.identity_hook(&ident, "reauthorized")
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        match self
            .store
            .reauthorize_identity(&ident, std::slice::from_ref(&ev), &outbox)
            .await
        {
            Err(StoreError::NotFound) => return Err(ServiceError::NotFound("Identity")),
            other => other?,
        }
        log_event(&ev);
        if !outbox.is_empty() {
            self.wake_webhooks();
        }
        Ok(ident)
    }

    /// Deletes an identity.
    pub async fn delete_identity(&self, id: &str) -> ServiceResult<()> {
        let ident = self.identity(id).await?;
        match self.store.delete_identity(ident.id).await {
            Err(StoreError::NotFound) => Err(ServiceError::NotFound("Identity")),
            other => Ok(other?),
        }
    }

    fn hand_out(&self, ident: &UpstreamIdentityRecord) -> Result<UpstreamToken, UpstreamError> {
        let token = self
            .open_token(ident.id, "access_token", ident.access_token.as_ref())?
            .ok_or_else(|| UpstreamError::Unavailable("no access token yet".into()))?;
        Ok(UpstreamToken {
            access_token: token,
            token_type: ident.token_type.clone(),
            expires_at: ident.expires_at,
        })
    }

    /// A token valid for at least `min_valid` (refreshed first if needed, once
    /// however many callers ask); `force` refreshes regardless.
    #[tracing::instrument(name = "upstream.token", skip_all)]
    pub async fn upstream_token(
        &self,
        id: &str,
        min_valid: Duration,
        force: bool,
    ) -> Result<UpstreamToken, UpstreamError> {
        let ident = self.identity(id).await?;
        if ident.status == IdentityStatus::Invalid {
            return Err(UpstreamError::Invalid(reauth(&ident)));
        }
        if !force && fresh(&ident, min_valid, self.now()) {
            return self.hand_out(&ident);
        }
        let asked = ident.access_token.clone();
        let lock = self.upstream()?.flight(ident.id);
        let _guard = lock.lock().await;
        // Whoever held the lock before us may have refreshed it; every save
        // seals the token anew, so a changed ciphertext means "refreshed since
        // we asked" (for a forced refresh too).
        let ident = self.identity(id).await?;
        if ident.status == IdentityStatus::Invalid {
            return Err(UpstreamError::Invalid(reauth(&ident)));
        }
        let refreshed_since = ident.access_token != asked;
        if fresh(&ident, min_valid, self.now()) && (!force || refreshed_since) {
            return self.hand_out(&ident);
        }
        // Failing provider: wait out the backoff instead of hammering it on
        // every call (a forced refresh still goes through).
        if !force && ident.next_attempt_at.is_some_and(|t| t > self.now()) {
            return Err(UpstreamError::Unavailable(format!(
                "provider unavailable, retrying after backoff ({} failures): {}",
                ident.failure_count,
                ident.last_error.as_deref().unwrap_or("unknown error")
            )));
        }
        let ident = self.refresh_with_lease(ident, min_valid, force).await?;
        if fresh(&ident, min_valid, self.now()) {
            self.hand_out(&ident)
        } else {
            Err(UpstreamError::Unavailable(
                "the provider's token does not live as long as minValidSeconds".into(),
            ))
        }
    }

    /// Takes the cross-node lease, re-reads, refreshes, saves.
    async fn refresh_with_lease(
        &self,
        ident: UpstreamIdentityRecord,
        min_valid: Duration,
        force: bool,
    ) -> Result<UpstreamIdentityRecord, UpstreamError> {
        let up = self.upstream()?.clone();
        let before = ident.access_token.clone();
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER_NODE;
        loop {
            let now = self.now();
            if self
                .store
                .claim_identity_lease(ident.id, &up.node, now + LEASE, now)
                .await?
            {
                break;
            }
            // Another node is refreshing: wait for its result.
            tokio::time::sleep(StdDuration::from_millis(50)).await;
            let current = self.identity(&ident.id.to_string()).await?;
            if current.access_token != before || current.status == IdentityStatus::Invalid {
                if current.status == IdentityStatus::Invalid {
                    return Err(UpstreamError::Invalid(reauth(&current)));
                }
                return Ok(current);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(UpstreamError::Unavailable(
                    "another node is refreshing this identity; try again".into(),
                ));
            }
        }
        // Lease won: re-read, another node may have just finished.
        let current = self.identity(&ident.id.to_string()).await?;
        if current.access_token != before && (fresh(&current, min_valid, self.now()) || force) {
            self.store
                .release_identity_lease(current.id, &up.node)
                .await?;
            return Ok(current);
        }
        // The provider call and the save run in a task of their own: if the
        // caller goes away (its request hit a deadline, the client hung up),
        // what the provider answered — a rotated refresh token above all —
        // is still saved, instead of being lost between answer and save.
        let (svc, up) = (self.clone(), up.clone());
        tokio::spawn(async move { svc.refresh_now(current, &up).await })
            .await
            .map_err(|_| {
                UpstreamError::Service(ServiceError::Store(StoreError::other(
                    "the upstream refresh task panicked",
                )))
            })?
    }

    /// Calls the provider (lease held) and saves the outcome.
    #[tracing::instrument(name = "upstream.refresh", skip_all)]
    async fn refresh_now(
        &self,
        mut ident: UpstreamIdentityRecord,
        up: &Upstream,
    ) -> Result<UpstreamIdentityRecord, UpstreamError> {
        let provider = self
            .store
            .provider(&ident.provider)
            .await?
            .ok_or(ServiceError::NotFound("Provider"))?;
        let kind = ProviderKind::parse(&provider.kind).unwrap_or(ProviderKind::OAuth2);
        let cfg: ProviderConfig = serde_json::from_str(&provider.config).unwrap_or_default();
        let opened = self
            .keyring
            .open(
                &provider.secrets,
                &UpstreamProvider::secrets_aad(&provider.key),
            )
            .map_err(|cause| ServiceError::Sealed {
                what: format!("the secrets of provider {}", provider.key),
                cause,
            })?;
        let secrets: ProviderSecrets = serde_json::from_slice(&opened).map_err(|e| {
            StoreError::other(format!(
                "the secrets of provider {} are not JSON: {e}",
                provider.key
            ))
        })?;
        let refresh_token =
            self.open_token(ident.id, "refresh_token", ident.refresh_token.as_ref())?;
        let target = UpstreamIdentity {
            scopes: &ident.scopes,
            refresh_token: refresh_token.as_ref(),
            installation_id: ident.installation_id.as_deref(),
        };
        let sent_at = self.now();
        let mut result =
            rotor_upstream::refresh(kind, &cfg, &secrets, target, up.http.as_ref(), sent_at).await;
        // An unknown outcome at a rotating provider: the old refresh token may
        // already be spent or not. Ask again with the same token before
        // failing; never drop the stored refresh token.
        if matches!(
            result,
            Err(Failure::Transient {
                unknown_outcome: true,
                ..
            })
        ) {
            let again_at = self.now();
            result =
                rotor_upstream::refresh(kind, &cfg, &secrets, target, up.http.as_ref(), again_at)
                    .await;
        }
        let now = self.now();
        let event = |kind: rotor_core::EventKind, detail: String| NewEvent {
            identity_id: Some(ident.id.to_string()),
            actor: Some(ident.provider.clone()),
            detail: Some(detail),
            ..NewEvent::new(kind, now)
        };
        crate::telemetry::record_upstream_refresh(
            &provider.kind,
            match &result {
                Ok(_) => "refreshed",
                Err(Failure::Invalid(_)) => "invalid",
                Err(Failure::Transient { .. }) => "transient",
            },
        );
        let (outcome, ev) = match result {
            Ok(r) => {
                ident.access_token =
                    self.seal_token(ident.id, "access_token", Some(r.access_token.expose()));
                if let Some(rt) = &r.refresh_token {
                    ident.refresh_token =
                        self.seal_token(ident.id, "refresh_token", Some(rt.expose()));
                }
                ident.token_type = r.token_type;
                ident.expires_at = r.expires_at;
                ident.last_refreshed_at = Some(sent_at);
                ident.failure_count = 0;
                ident.last_error = None;
                ident.next_attempt_at = None;
                (
                    Ok(()),
                    event(rotor_core::EventKind::IdentityRefreshed, "refreshed".into()),
                )
            }
            Err(Failure::Invalid(reason)) => {
                ident.status = IdentityStatus::Invalid;
                ident.last_error = Some(reason.clone());
                (
                    Err(UpstreamError::Invalid(format!(
                        "needs re-authorization: {reason}"
                    ))),
                    event(rotor_core::EventKind::IdentityInvalid, reason),
                )
            }
            Err(Failure::Transient { reason, .. }) => {
                ident.failure_count += 1;
                ident.last_error = Some(reason.clone());
                ident.next_attempt_at = Some(now + backoff(ident.failure_count));
                (
                    Err(UpstreamError::Unavailable(format!(
                        "provider unavailable: {reason}"
                    ))),
                    event(rotor_core::EventKind::IdentityRefreshFailed, reason),
                )
            }
        };
        log_event(&ev);
        // Turning invalid tells the platform, in the same transaction.
        let outbox: Vec<_> = if ident.status == IdentityStatus::Invalid {
            self.identity_hook(&ident, "invalid").into_iter().collect()
        } else {
            Vec::new()
        };
        match self
            .store
            .save_identity(&ident, &up.node, std::slice::from_ref(&ev), &outbox)
            .await
        {
            Ok(()) => {
                if !outbox.is_empty() {
                    self.wake_webhooks();
                }
                outcome.map(|()| ident)
            }
            // Our lease ran out and another node took over: its result wins.
            Err(StoreError::Conflict(_)) => Err(UpstreamError::Unavailable(
                "the refresh took longer than its lease; try again".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// One pass of the background refresher: renews identities whose token
    /// expires within their margin (min(5 min, 10% of lifetime) unless the
    /// provider says otherwise), and those nobody has refreshed for
    /// [`IDLE_REFRESH`]. Answers how many were refreshed.
    pub async fn refresh_due(&self) -> ServiceResult<usize> {
        let now = self.now();
        let idle_before = now - IDLE_REFRESH;
        let due = self
            .store
            .identities_due(now + Duration::minutes(5), idle_before, now, 100)
            .await?;
        let mut done = 0;
        for ident in due {
            let margin = self.margin(&ident).await;
            let idle = ident.last_refreshed_at.unwrap_or(ident.created_at) < idle_before;
            if !idle && ident.expires_at.is_some_and(|e| e - now > margin) {
                continue;
            }
            match self
                .upstream_token(&ident.id.to_string(), margin, idle)
                .await
            {
                Ok(_) => done += 1,
                Err(e) => {
                    tracing::warn!(identity = %ident.id, error = %e, "background refresh failed")
                }
            }
        }
        Ok(done)
    }

    async fn margin(&self, ident: &UpstreamIdentityRecord) -> Duration {
        let configured = match self.store.provider(&ident.provider).await {
            Ok(Some(p)) => serde_json::from_str::<ProviderConfig>(&p.config)
                .ok()
                .and_then(|c| c.refresh_margin_seconds),
            _ => None,
        };
        if let Some(s) = configured {
            return Duration::seconds(s);
        }
        let lifetime = match (ident.last_refreshed_at, ident.expires_at) {
            (Some(from), Some(to)) if to > from => to - from,
            _ => Duration::hours(1),
        };
        (lifetime / 10).min(Duration::minutes(5))
    }
}

fn reauth(ident: &UpstreamIdentityRecord) -> String {
    format!(
        "identity needs re-authorization: {}",
        ident
            .last_error
            .as_deref()
            .unwrap_or("the provider refused the grant")
    )
}
