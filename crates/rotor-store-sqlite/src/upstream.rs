//! Upstream providers and identities on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rotor_core::{
    Ciphertext, IdentityFilter, IdentityStatus, NewEvent, UpstreamIdentityRecord, UpstreamProvider,
    WebhookDelivery,
};
use rotor_store::{Conflict, StoreError, StoreResult, UpstreamStore};
use rusqlite::{params, Row};
use uuid::Uuid;

use crate::outbox::insert_deliveries;
use crate::rows::{from_ts, get, opt_ts, scopes, scopes_json, ts, uuid_col};
use crate::store::{all, exec, insert_events, one};
use crate::{db, SqliteStore};

fn sealed(row: &Row<'_>, key: &str, ct: &str) -> StoreResult<Option<Ciphertext>> {
    let k: Option<String> = get(row, key)?;
    let b: Option<Vec<u8>> = get(row, ct)?;
    Ok(k.zip(b).map(|(key_id, bytes)| Ciphertext { key_id, bytes }))
}

fn provider(row: &Row<'_>) -> StoreResult<UpstreamProvider> {
    Ok(UpstreamProvider {
        key: get(row, "key")?,
        kind: get(row, "kind")?,
        config: get(row, "config")?,
        secrets: Ciphertext {
            key_id: get(row, "secrets_key")?,
            bytes: get(row, "secrets_ct")?,
        },
        created_at: from_ts(get(row, "created_at")?)?,
    })
}

fn identity(row: &Row<'_>) -> StoreResult<UpstreamIdentityRecord> {
    let status: String = get(row, "status")?;
    Ok(UpstreamIdentityRecord {
        id: uuid_col(row, "id")?,
        provider: get(row, "provider")?,
        external_id: get(row, "external_id")?,
        scopes: scopes(row, "scopes")?,
        access_token: sealed(row, "access_key", "access_ct")?,
        refresh_token: sealed(row, "refresh_key", "refresh_ct")?,
        token_type: get(row, "token_type")?,
        expires_at: opt_ts(get(row, "expires_at")?)?,
        installation_id: get(row, "installation_id")?,
        status: IdentityStatus::parse(&status).ok_or_else(|| StoreError::other("bad status"))?,
        last_refreshed_at: opt_ts(get(row, "last_refreshed_at")?)?,
        failure_count: get(row, "failure_count")?,
        last_error: get(row, "last_error")?,
        next_attempt_at: opt_ts(get(row, "next_attempt_at")?)?,
        created_at: from_ts(get(row, "created_at")?)?,
    })
}

/// A sealed value's two columns.
fn ct_parts(c: Option<&Ciphertext>) -> (Option<String>, Option<Vec<u8>>) {
    c.map(|c| (c.key_id.clone(), c.bytes.clone())).unzip()
}

#[async_trait]
impl UpstreamStore for SqliteStore {
    async fn insert_provider(&self, p: &UpstreamProvider) -> StoreResult<()> {
        let p = p.clone();
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO upstream_providers (key, kind, config, secrets_key, secrets_ct, \
                     created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    params![
                        p.key,
                        p.kind,
                        p.config,
                        p.secrets.key_id,
                        p.secrets.bytes,
                        ts(p.created_at)
                    ],
                )
                .map_err(|e| match e {
                    StoreError::Conflict(_) => StoreError::Conflict(Conflict::Provider),
                    other => other,
                })?;
                Ok(())
            })
            .await
    }

    async fn provider(&self, key: &str) -> StoreResult<Option<UpstreamProvider>> {
        self.readers.read(|c| {
            one(
                c,
                "SELECT * FROM upstream_providers WHERE key = ?",
                [key],
                provider,
            )
        })
    }

    async fn list_providers(&self) -> StoreResult<Vec<UpstreamProvider>> {
        db::read_blocking(&self.readers, |c| {
            all(
                c,
                "SELECT * FROM upstream_providers ORDER BY key",
                [],
                provider,
            )
        })
        .await
    }

    async fn insert_identity(&self, i: &UpstreamIdentityRecord) -> StoreResult<()> {
        let i = i.clone();
        self.writer
            .write(move |c| {
                let (ak, ac) = ct_parts(i.access_token.as_ref());
                let (rk, rc) = ct_parts(i.refresh_token.as_ref());
                exec(
                    c,
                    "INSERT INTO upstream_identities (id, provider, external_id, scopes, access_key, \
                     access_ct, refresh_key, refresh_ct, token_type, expires_at, installation_id, \
                     status, last_refreshed_at, failure_count, last_error, next_attempt_at, \
                     lease_owner, lease_until, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
                    params![
                        i.id.to_string(),
                        i.provider,
                        i.external_id,
                        scopes_json(&i.scopes),
                        ak,
                        ac,
                        rk,
                        rc,
                        i.token_type,
                        i.expires_at.map(ts),
                        i.installation_id,
                        i.status.as_str(),
                        i.last_refreshed_at.map(ts),
                        i.failure_count,
                        i.last_error,
                        i.next_attempt_at.map(ts),
                        ts(i.created_at),
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn identity(&self, id: Uuid) -> StoreResult<Option<UpstreamIdentityRecord>> {
        // Every read is its own WAL snapshot: a refresher that just won the
        // lease sees the newest committed refresh.
        self.readers.read(|c| {
            one(
                c,
                "SELECT * FROM upstream_identities WHERE id = ?",
                [id.to_string()],
                identity,
            )
        })
    }

    async fn identities_page(
        &self,
        f: &IdentityFilter,
    ) -> StoreResult<Vec<UpstreamIdentityRecord>> {
        let f = f.clone();
        db::read_blocking(&self.readers, move |c| {
            all(
                c,
                "SELECT * FROM upstream_identities WHERE (?1 IS NULL OR status = ?1) \
                 AND (?2 IS NULL OR provider = ?2) AND (?3 IS NULL OR id > ?3) \
                 ORDER BY id LIMIT ?4",
                params![
                    f.status.map(IdentityStatus::as_str),
                    f.provider,
                    f.after.map(|a| a.to_string()),
                    i64::from(f.limit)
                ],
                identity,
            )
        })
        .await
    }

    async fn delete_identity(&self, id: Uuid) -> StoreResult<()> {
        self.writer
            .write(move |c| {
                let n = exec(
                    c,
                    "DELETE FROM upstream_identities WHERE id = ?",
                    [id.to_string()],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn claim_identity_lease(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let owner = owner.to_owned();
        self.writer
            .write(move |c| {
                let n = exec(
                    c,
                    "UPDATE upstream_identities SET lease_owner = ?1, lease_until = ?2 WHERE id = ?3 \
                     AND (lease_owner IS NULL OR lease_until <= ?4 OR lease_owner = ?1)",
                    params![owner, ts(until), id.to_string(), ts(now)],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn release_identity_lease(&self, id: Uuid, owner: &str) -> StoreResult<()> {
        let owner = owner.to_owned();
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "UPDATE upstream_identities SET lease_owner = NULL, lease_until = NULL \
                     WHERE id = ? AND lease_owner = ?",
                    params![id.to_string(), owner],
                )?;
                Ok(())
            })
            .await
    }

    async fn save_identity(
        &self,
        i: &UpstreamIdentityRecord,
        owner: &str,
        events: &[NewEvent],
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()> {
        let (i, owner, events, outbox) = (
            i.clone(),
            owner.to_owned(),
            events.to_vec(),
            outbox.to_vec(),
        );
        self.writer
            .write(move |c| {
                let (ak, ac) = ct_parts(i.access_token.as_ref());
                let (rk, rc) = ct_parts(i.refresh_token.as_ref());
                let n = exec(
                    c,
                    "UPDATE upstream_identities SET access_key = ?, access_ct = ?, refresh_key = ?, \
                     refresh_ct = ?, token_type = ?, expires_at = ?, status = ?, \
                     last_refreshed_at = ?, failure_count = ?, last_error = ?, next_attempt_at = ?, \
                     lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                    params![
                        ak,
                        ac,
                        rk,
                        rc,
                        i.token_type,
                        i.expires_at.map(ts),
                        i.status.as_str(),
                        i.last_refreshed_at.map(ts),
                        i.failure_count,
                        i.last_error,
                        i.next_attempt_at.map(ts),
                        i.id.to_string(),
                        owner,
                    ],
                )?;
                if n == 0 {
                    return Err(StoreError::Conflict(Conflict::Lease));
                }
                insert_events(c, &events)?;
                insert_deliveries(c, &outbox)
            })
            .await
    }

    async fn reauthorize_identity(
        &self,
        i: &UpstreamIdentityRecord,
        events: &[NewEvent],
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()> {
        let (i, events, outbox) = (i.clone(), events.to_vec(), outbox.to_vec());
        self.writer
            .write(move |c| {
                let (ak, ac) = ct_parts(i.access_token.as_ref());
                let (rk, rc) = ct_parts(i.refresh_token.as_ref());
                let n = exec(
                    c,
                    "UPDATE upstream_identities SET access_key = ?, access_ct = ?, refresh_key = ?, \
                     refresh_ct = ?, expires_at = ?, scopes = ?, status = 'active', \
                     failure_count = 0, last_error = NULL, next_attempt_at = NULL, \
                     lease_owner = NULL, lease_until = NULL WHERE id = ?",
                    params![
                        ak,
                        ac,
                        rk,
                        rc,
                        i.expires_at.map(ts),
                        scopes_json(&i.scopes),
                        i.id.to_string(),
                    ],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                insert_events(c, &events)?;
                insert_deliveries(c, &outbox)
            })
            .await
    }

    async fn identities_due(
        &self,
        before: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<UpstreamIdentityRecord>> {
        db::read_blocking(&self.readers, move |c| {
            all(
                c,
                "SELECT * FROM upstream_identities WHERE status = 'active' \
                 AND (expires_at IS NULL OR expires_at < ? OR COALESCE(last_refreshed_at, created_at) < ?) \
                 AND (next_attempt_at IS NULL OR next_attempt_at <= ?) \
                 ORDER BY expires_at LIMIT ?",
                params![ts(before), ts(idle_before), ts(now), i64::from(limit)],
                identity,
            )
        })
        .await
    }

    async fn reseal_provider(
        &self,
        key: &str,
        old: &Ciphertext,
        new: &Ciphertext,
    ) -> StoreResult<bool> {
        let (key, old, new) = (key.to_owned(), old.clone(), new.clone());
        self.writer
            .write(move |c| {
                let n = exec(
                    c,
                    "UPDATE upstream_providers SET secrets_key = ?, secrets_ct = ? \
                     WHERE key = ? AND secrets_key = ? AND secrets_ct = ?",
                    params![new.key_id, new.bytes, key, old.key_id, old.bytes],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn reseal_identity(
        &self,
        id: Uuid,
        old: (Option<&Ciphertext>, Option<&Ciphertext>),
        new: (Option<&Ciphertext>, Option<&Ciphertext>),
    ) -> StoreResult<bool> {
        let (nak, nac) = ct_parts(new.0);
        let (nrk, nrc) = ct_parts(new.1);
        let (_, oac) = ct_parts(old.0);
        let (_, orc) = ct_parts(old.1);
        self.writer
            .write(move |c| {
                let n = exec(
                    c,
                    "UPDATE upstream_identities SET access_key = ?, access_ct = ?, refresh_key = ?, \
                     refresh_ct = ? WHERE id = ? AND access_ct IS ? AND refresh_ct IS ?",
                    params![nak, nac, nrk, nrc, id.to_string(), oac, orc],
                )?;
                Ok(n == 1)
            })
            .await
    }
}
