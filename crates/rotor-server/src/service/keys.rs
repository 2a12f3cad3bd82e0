//! Key rotation: re-seal every secret at rest under the primary server key,
//! so that older keys can be retired. Each row is swapped by compare-and-swap,
//! so a refresh that saves new tokens meanwhile is never overwritten.

use rotor_core::{App, UpstreamIdentityRecord, UpstreamProvider};

use super::ServiceError;
use super::{Service, ServiceResult};

/// Rows re-sealed by [`Service::reseal_all`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Client secrets.
    pub apps: usize,
    /// Provider secret documents.
    pub providers: usize,
    /// Identities (access and refresh tokens).
    pub identities: usize,
    /// Rows that changed under us (already under the new key) or that no key
    /// in the ring opens.
    pub skipped: usize,
}

impl Service {
    /// Re-seals everything not yet under the primary key.
    pub async fn reseal_all(&self) -> ServiceResult<Resealed> {
        let ring = &self.keyring;
        let mut out = Resealed::default();
        for mut app in self.store.list_apps().await? {
            if ring.is_current(&app.client_secret) {
                continue;
            }
            let aad = App::secret_aad(app.id);
            match ring.open(&app.client_secret, &aad) {
                Ok(plain) => {
                    app.client_secret = ring.seal(&plain, &aad);
                    self.store.update_app(&app).await?;
                    out.apps += 1;
                }
                Err(e) => {
                    tracing::error!(app = %app.slug, error = %e, "client secret opens under no key");
                    out.skipped += 1;
                }
            }
        }
        for p in self.store.list_providers().await? {
            if ring.is_current(&p.secrets) {
                continue;
            }
            let aad = UpstreamProvider::secrets_aad(&p.key);
            let plain = ring
                .open(&p.secrets, &aad)
                .map_err(|cause| ServiceError::Sealed {
                    what: format!("the secrets of provider {}", p.key),
                    cause,
                })?;
            if self
                .store
                .reseal_provider(&p.key, &p.secrets, &ring.seal(&plain, &aad))
                .await?
            {
                out.providers += 1;
            } else {
                out.skipped += 1;
            }
        }
        for i in self.store.list_identities(u32::MAX).await? {
            let current =
                |c: &Option<rotor_core::Ciphertext>| c.as_ref().is_none_or(|c| ring.is_current(c));
            if current(&i.access_token) && current(&i.refresh_token) {
                continue;
            }
            let reseal = |field: &str,
                          c: &Option<rotor_core::Ciphertext>|
             -> ServiceResult<Option<rotor_core::Ciphertext>> {
                c.as_ref()
                    .map(|c| {
                        let aad = UpstreamIdentityRecord::aad(i.id, field);
                        ring.open(c, &aad)
                            .map(|plain| ring.seal(&plain, &aad))
                            .map_err(|cause| ServiceError::Sealed {
                                what: format!("the {field} of identity {}", i.id),
                                cause,
                            })
                    })
                    .transpose()
            };
            let access = reseal("access_token", &i.access_token)?;
            let refresh = reseal("refresh_token", &i.refresh_token)?;
            if self
                .store
                .reseal_identity(
                    i.id,
                    (i.access_token.as_ref(), i.refresh_token.as_ref()),
                    (access.as_ref(), refresh.as_ref()),
                )
                .await?
            {
                out.identities += 1;
            } else {
                out.skipped += 1;
            }
        }
        tracing::info!(
            ?out,
            key_id = ring.primary().id(),
            "secrets re-sealed under the primary key"
        );
        Ok(out)
    }
}
