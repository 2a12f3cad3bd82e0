//! Handing out a valid provider token, and refreshing it: once per
//! identity however many callers ask (a lock in this process, a lease in
//! the store across nodes), with failures classified and backed off.

use std::time::Duration as StdDuration;

use chrono::Duration;
use rotor_core::{IdentityStatus, NewEvent, UpstreamIdentityRecord, UpstreamProvider};
use rotor_store::StoreError;
use rotor_upstream::config::{ProviderConfig, ProviderKind, ProviderSecrets};
use rotor_upstream::{Failure, UpstreamIdentity};
use uuid::Uuid;

use crate::service::installs::log_event;
use crate::service::{Service, ServiceError, ServiceResult};

use super::{
    backoff, fresh, reauth, Refresh, Upstream, UpstreamError, UpstreamToken, IDLE_REFRESH, LEASE,
    WAIT_FOR_OTHER_NODE,
};

impl Service {
    pub(super) fn hand_out(
        &self,
        ident: &UpstreamIdentityRecord,
    ) -> Result<UpstreamToken, UpstreamError> {
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
    /// however many callers ask); [`Refresh::Now`] refreshes regardless.
    #[tracing::instrument(name = "upstream.token", skip_all)]
    pub async fn upstream_token(
        &self,
        id: Uuid,
        min_valid: Duration,
        refresh: Refresh,
    ) -> Result<UpstreamToken, UpstreamError> {
        let force = refresh == Refresh::Now;
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
            Err(UpstreamError::TooShort {
                lives: ident
                    .expires_at
                    .map_or(0, |e| (e - self.now()).num_seconds().max(0)),
                asked: min_valid.num_seconds(),
            })
        }
    }

    /// Takes the cross-node lease, re-reads, refreshes, saves.
    pub(super) async fn refresh_with_lease(
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
            let current = self.identity(ident.id).await?;
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
        let current = self.identity(ident.id).await?;
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
    pub(super) async fn refresh_now(
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
                .upstream_token(
                    ident.id,
                    margin,
                    if idle { Refresh::Now } else { Refresh::IfDue },
                )
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

    pub(super) async fn margin(&self, ident: &UpstreamIdentityRecord) -> Duration {
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
