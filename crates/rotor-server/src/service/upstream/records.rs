//! Upstream providers and identities as records: created with their
//! secrets and tokens sealed, read, re-authorized, deleted.

use rotor_core::{
    Ciphertext, IdentityStatus, NewEvent, Secret, UpstreamIdentityRecord, UpstreamProvider,
};
use rotor_store::StoreError;
use rotor_upstream::config::{self, ProviderKind};
use serde_json::Value;
use uuid::Uuid;

use crate::service::installs::log_event;
use crate::service::{Service, ServiceError, ServiceResult};

use super::{IdentityPatch, NewIdentity};

impl Service {
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

    pub(super) fn seal_token(
        &self,
        id: Uuid,
        field: &str,
        value: Option<&str>,
    ) -> Option<Ciphertext> {
        value.map(|v| {
            self.keyring
                .seal(v.as_bytes(), &UpstreamIdentityRecord::aad(id, field))
        })
    }

    pub(super) fn open_token(
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

    /// A page of identities in id order (the admin list).
    pub async fn identities_page(
        &self,
        f: &rotor_core::IdentityFilter,
    ) -> ServiceResult<Vec<UpstreamIdentityRecord>> {
        Ok(self.store.identities_page(f).await?)
    }

    /// The identity with this id.
    pub async fn identity(&self, id: Uuid) -> ServiceResult<UpstreamIdentityRecord> {
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
        id: Uuid,
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
    pub async fn delete_identity(&self, id: Uuid) -> ServiceResult<()> {
        let ident = self.identity(id).await?;
        match self.store.delete_identity(ident.id).await {
            Err(StoreError::NotFound) => Err(ServiceError::NotFound("Identity")),
            other => Ok(other?),
        }
    }
}
