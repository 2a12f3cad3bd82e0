//! Upstream providers and identities on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rotor_core::{
    Ciphertext, IdentityFilter, IdentityStatus, NewEvent, UpstreamIdentityRecord, UpstreamProvider,
    WebhookDelivery,
};
use rotor_store::{Conflict, StoreError, StoreResult, UpstreamStore};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::rows::get;
use crate::{map_err, PgStore};

fn sealed(row: &PgRow, key: &str, ct: &str) -> StoreResult<Option<Ciphertext>> {
    let k: Option<String> = get(row, key)?;
    let b: Option<Vec<u8>> = get(row, ct)?;
    Ok(k.zip(b).map(|(key_id, bytes)| Ciphertext { key_id, bytes }))
}

fn provider(row: &PgRow) -> StoreResult<UpstreamProvider> {
    Ok(UpstreamProvider {
        key: get(row, "key")?,
        kind: get(row, "kind")?,
        config: get(row, "config")?,
        secrets: Ciphertext {
            key_id: get(row, "secrets_key")?,
            bytes: get(row, "secrets_ct")?,
        },
        created_at: get(row, "created_at")?,
    })
}

fn identity(row: &PgRow) -> StoreResult<UpstreamIdentityRecord> {
    let status: String = get(row, "status")?;
    Ok(UpstreamIdentityRecord {
        id: get(row, "id")?,
        provider: get(row, "provider")?,
        external_id: get(row, "external_id")?,
        scopes: get(row, "scopes")?,
        access_token: sealed(row, "access_key", "access_ct")?,
        refresh_token: sealed(row, "refresh_key", "refresh_ct")?,
        token_type: get(row, "token_type")?,
        expires_at: get(row, "expires_at")?,
        installation_id: get(row, "installation_id")?,
        status: IdentityStatus::parse(&status).ok_or_else(|| StoreError::other("bad status"))?,
        last_refreshed_at: get(row, "last_refreshed_at")?,
        failure_count: get(row, "failure_count")?,
        last_error: get(row, "last_error")?,
        next_attempt_at: get(row, "next_attempt_at")?,
        created_at: get(row, "created_at")?,
    })
}

#[async_trait]
impl UpstreamStore for PgStore {
    async fn insert_provider(&self, p: &UpstreamProvider) -> StoreResult<()> {
        sqlx::query("INSERT INTO upstream_providers (key, kind, config, secrets_key, secrets_ct, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&p.key)
            .bind(&p.kind)
            .bind(&p.config)
            .bind(&p.secrets.key_id)
            .bind(&p.secrets.bytes)
            .bind(p.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| match map_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(Conflict::Provider),
                other => other,
            })?;
        Ok(())
    }

    async fn provider(&self, key: &str) -> StoreResult<Option<UpstreamProvider>> {
        sqlx::query("SELECT * FROM upstream_providers WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(provider)
            .transpose()
    }

    async fn list_providers(&self) -> StoreResult<Vec<UpstreamProvider>> {
        sqlx::query("SELECT * FROM upstream_providers ORDER BY key")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(provider)
            .collect()
    }

    async fn insert_identity(&self, i: &UpstreamIdentityRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO upstream_identities (id, provider, external_id, scopes, access_key, access_ct, \
             refresh_key, refresh_ct, token_type, expires_at, installation_id, status, last_refreshed_at, \
             failure_count, last_error, next_attempt_at, lease_owner, lease_until, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL, NULL, $17)",
        )
        .bind(i.id)
        .bind(&i.provider)
        .bind(&i.external_id)
        .bind(&i.scopes)
        .bind(i.access_token.as_ref().map(|c| c.key_id.clone()))
        .bind(i.access_token.as_ref().map(|c| c.bytes.clone()))
        .bind(i.refresh_token.as_ref().map(|c| c.key_id.clone()))
        .bind(i.refresh_token.as_ref().map(|c| c.bytes.clone()))
        .bind(&i.token_type)
        .bind(i.expires_at)
        .bind(&i.installation_id)
        .bind(i.status.as_str())
        .bind(i.last_refreshed_at)
        .bind(i.failure_count)
        .bind(&i.last_error)
        .bind(i.next_attempt_at)
        .bind(i.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn identity(&self, id: Uuid) -> StoreResult<Option<UpstreamIdentityRecord>> {
        sqlx::query("SELECT * FROM upstream_identities WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(identity)
            .transpose()
    }

    async fn identities_page(
        &self,
        f: &IdentityFilter,
    ) -> StoreResult<Vec<UpstreamIdentityRecord>> {
        sqlx::query(
            "SELECT * FROM upstream_identities WHERE ($1::text IS NULL OR status = $1) \
             AND ($2::text IS NULL OR provider = $2) AND ($3::uuid IS NULL OR id > $3) \
             ORDER BY id LIMIT $4",
        )
        .bind(f.status.map(IdentityStatus::as_str))
        .bind(&f.provider)
        .bind(f.after)
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(identity)
        .collect()
    }

    async fn delete_identity(&self, id: Uuid) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM upstream_identities WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn claim_identity_lease(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE upstream_identities SET lease_owner = $1, lease_until = $2 WHERE id = $3 \
             AND (lease_owner IS NULL OR lease_until <= $4 OR lease_owner = $1)",
        )
        .bind(owner)
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_identity_lease(&self, id: Uuid, owner: &str) -> StoreResult<()> {
        sqlx::query("UPDATE upstream_identities SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn save_identity(
        &self,
        i: &UpstreamIdentityRecord,
        owner: &str,
        events: &[NewEvent],
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE upstream_identities SET access_key = $1, access_ct = $2, refresh_key = $3, refresh_ct = $4, \
             token_type = $5, expires_at = $6, status = $7, last_refreshed_at = $8, failure_count = $9, \
             last_error = $10, next_attempt_at = $11, lease_owner = NULL, lease_until = NULL \
             WHERE id = $12 AND lease_owner = $13",
        )
        .bind(i.access_token.as_ref().map(|c| c.key_id.clone()))
        .bind(i.access_token.as_ref().map(|c| c.bytes.clone()))
        .bind(i.refresh_token.as_ref().map(|c| c.key_id.clone()))
        .bind(i.refresh_token.as_ref().map(|c| c.bytes.clone()))
        .bind(&i.token_type)
        .bind(i.expires_at)
        .bind(i.status.as_str())
        .bind(i.last_refreshed_at)
        .bind(i.failure_count)
        .bind(&i.last_error)
        .bind(i.next_attempt_at)
        .bind(i.id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(Conflict::Lease));
        }
        crate::store::insert_events(&mut tx, events).await?;
        crate::outbox::insert_deliveries(&mut tx, outbox).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn reauthorize_identity(
        &self,
        i: &UpstreamIdentityRecord,
        events: &[NewEvent],
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE upstream_identities SET access_key = $1, access_ct = $2, refresh_key = $3, \
             refresh_ct = $4, expires_at = $5, scopes = $6, status = 'active', failure_count = 0, \
             last_error = NULL, next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL \
             WHERE id = $7",
        )
        .bind(i.access_token.as_ref().map(|c| c.key_id.clone()))
        .bind(i.access_token.as_ref().map(|c| c.bytes.clone()))
        .bind(i.refresh_token.as_ref().map(|c| c.key_id.clone()))
        .bind(i.refresh_token.as_ref().map(|c| c.bytes.clone()))
        .bind(i.expires_at)
        .bind(&i.scopes)
        .bind(i.id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        crate::store::insert_events(&mut tx, events).await?;
        crate::outbox::insert_deliveries(&mut tx, outbox).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn identities_due(
        &self,
        before: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<UpstreamIdentityRecord>> {
        sqlx::query(
            "SELECT * FROM upstream_identities WHERE status = 'active' \
             AND (expires_at IS NULL OR expires_at < $1 OR COALESCE(last_refreshed_at, created_at) < $4) \
             AND (next_attempt_at IS NULL OR next_attempt_at <= $2) \
             ORDER BY expires_at NULLS FIRST LIMIT $3",
        )
        .bind(before)
        .bind(now)
        .bind(i64::from(limit))
        .bind(idle_before)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(identity)
        .collect()
    }

    async fn reseal_provider(
        &self,
        key: &str,
        old: &Ciphertext,
        new: &Ciphertext,
    ) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE upstream_providers SET secrets_key = $1, secrets_ct = $2 WHERE key = $3 AND secrets_key = $4 AND secrets_ct = $5")
            .bind(&new.key_id)
            .bind(&new.bytes)
            .bind(key)
            .bind(&old.key_id)
            .bind(&old.bytes)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn reseal_identity(
        &self,
        id: Uuid,
        old: (Option<&Ciphertext>, Option<&Ciphertext>),
        new: (Option<&Ciphertext>, Option<&Ciphertext>),
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE upstream_identities SET access_key = $1, access_ct = $2, refresh_key = $3, refresh_ct = $4 \
             WHERE id = $5 AND access_ct IS NOT DISTINCT FROM $6 AND refresh_ct IS NOT DISTINCT FROM $7",
        )
        .bind(new.0.map(|c| c.key_id.clone()))
        .bind(new.0.map(|c| c.bytes.clone()))
        .bind(new.1.map(|c| c.key_id.clone()))
        .bind(new.1.map(|c| c.bytes.clone()))
        .bind(id)
        .bind(old.0.map(|c| c.bytes.clone()))
        .bind(old.1.map(|c| c.bytes.clone()))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}
