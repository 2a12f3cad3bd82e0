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

/// Which keys values at rest are sealed under ([`Service::key_status`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// The key new values are sealed under.
    pub primary_key_id: String,
    /// Every key in the keyring or named by a sealed value, by id.
    pub keys: Vec<KeyUse>,
}

/// One key's use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyUse {
    /// The key's public id.
    pub key_id: String,
    /// Values sealed under it.
    pub values: u64,
    /// Whether it is the primary key.
    pub primary: bool,
    /// Whether this server has it (a value under a key it lacks cannot open).
    pub in_keyring: bool,
}

impl KeyStatus {
    /// The keys other than the primary that values are still sealed under.
    pub fn still_in_use(&self) -> impl Iterator<Item = &KeyUse> {
        self.keys.iter().filter(|k| !k.primary && k.values > 0)
    }

    /// The keyring's keys other than the primary.
    pub fn older_keys(&self) -> impl Iterator<Item = &KeyUse> {
        self.keys.iter().filter(|k| !k.primary && k.in_keyring)
    }
}

impl Service {
    /// The primary key's id.
    pub fn primary_key_id(&self) -> &str {
        self.keyring.primary().id()
    }

    /// Which keys the values at rest are sealed under, and which of them
    /// this server has.
    pub async fn key_status(&self) -> ServiceResult<KeyStatus> {
        let sealed = self.store.sealed_key_ids().await?;
        let primary = self.primary_key_id().to_owned();
        let ids: std::collections::BTreeSet<String> = self
            .keyring
            .all()
            .map(|k| k.id().to_owned())
            .chain(sealed.iter().map(|(id, _)| id.clone()))
            .collect();
        let keys = ids
            .into_iter()
            .map(|id| KeyUse {
                values: sealed.iter().find(|(s, _)| *s == id).map_or(0, |(_, n)| *n),
                primary: id == primary,
                in_keyring: self.keyring.all().any(|k| k.id() == id),
                key_id: id,
            })
            .collect();
        Ok(KeyStatus {
            primary_key_id: primary,
            keys,
        })
    }

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
        let mut after = None;
        loop {
            let page = self
                .store
                .identities_page(&rotor_core::IdentityFilter {
                    after,
                    limit: 1000,
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for i in page {
                self.reseal_identity(&i, &mut out).await?;
            }
        }
        tracing::info!(
            ?out,
            key_id = ring.primary().id(),
            "secrets re-sealed under the primary key"
        );
        Ok(out)
    }

    /// Re-seals one identity's tokens under the primary key (a row changed
    /// meanwhile is counted as skipped).
    async fn reseal_identity(
        &self,
        i: &UpstreamIdentityRecord,
        out: &mut Resealed,
    ) -> ServiceResult<()> {
        let ring = &self.keyring;
        let current =
            |c: &Option<rotor_core::Ciphertext>| c.as_ref().is_none_or(|c| ring.is_current(c));
        if current(&i.access_token) && current(&i.refresh_token) {
            return Ok(());
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
        Ok(())
    }
}
