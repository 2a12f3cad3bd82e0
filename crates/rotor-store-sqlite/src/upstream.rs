//! Upstream providers and identities on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rotor_core::{Ciphertext, IdentityStatus, NewEvent, UpstreamIdentityRecord, UpstreamProvider};
use rotor_store::{StoreError, StoreResult, UpstreamStore};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::rows::{scopes_json, ts};
use crate::{map_err, SqliteStore};

fn get<'r, T>(row: &'r SqliteRow, col: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(col).map_err(map_err)
}

fn time(v: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    v.map(|v| {
        DateTime::from_timestamp_micros(v).ok_or_else(|| StoreError::Other("bad timestamp".into()))
    })
    .transpose()
}

fn sealed(row: &SqliteRow, key: &str, ct: &str) -> StoreResult<Option<Ciphertext>> {
    let k: Option<String> = get(row, key)?;
    let b: Option<Vec<u8>> = get(row, ct)?;
    Ok(k.zip(b).map(|(key_id, bytes)| Ciphertext { key_id, bytes }))
}

fn provider(row: &SqliteRow) -> StoreResult<UpstreamProvider> {
    Ok(UpstreamProvider {
        key: get(row, "key")?,
        kind: get(row, "kind")?,
        config: get(row, "config")?,
        secrets: Ciphertext {
            key_id: get(row, "secrets_key")?,
            bytes: get(row, "secrets_ct")?,
        },
        created_at: time(Some(get(row, "created_at")?))?.unwrap_or_default(),
    })
}

fn identity(row: &SqliteRow) -> StoreResult<UpstreamIdentityRecord> {
    let id: String = get(row, "id")?;
    let scopes: String = get(row, "scopes")?;
    let status: String = get(row, "status")?;
    Ok(UpstreamIdentityRecord {
        id: Uuid::parse_str(&id).map_err(|_| StoreError::Other("bad uuid".into()))?,
        provider: get(row, "provider")?,
        external_id: get(row, "external_id")?,
        scopes: serde_json::from_str(&scopes)
            .map_err(|_| StoreError::Other("bad scopes".into()))?,
        access_token: sealed(row, "access_key", "access_ct")?,
        refresh_token: sealed(row, "refresh_key", "refresh_ct")?,
        token_type: get(row, "token_type")?,
        expires_at: time(get(row, "expires_at")?)?,
        installation_id: get(row, "installation_id")?,
        status: IdentityStatus::parse(&status)
            .ok_or_else(|| StoreError::Other("bad status".into()))?,
        last_refreshed_at: time(get(row, "last_refreshed_at")?)?,
        failure_count: get(row, "failure_count")?,
        last_error: get(row, "last_error")?,
        next_attempt_at: time(get(row, "next_attempt_at")?)?,
        created_at: time(Some(get(row, "created_at")?))?.unwrap_or_default(),
    })
}

#[async_trait]
impl UpstreamStore for SqliteStore {
    async fn insert_provider(&self, p: &UpstreamProvider) -> StoreResult<()> {
        sqlx::query("INSERT INTO upstream_providers (key, kind, config, secrets_key, secrets_ct, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&p.key)
            .bind(&p.kind)
            .bind(&p.config)
            .bind(&p.secrets.key_id)
            .bind(&p.secrets.bytes)
            .bind(ts(p.created_at))
            .execute(&self.writer)
            .await
            .map_err(|e| match map_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict("provider".into()),
                other => other,
            })?;
        Ok(())
    }

    async fn provider(&self, key: &str) -> StoreResult<Option<UpstreamProvider>> {
        sqlx::query("SELECT * FROM upstream_providers WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(provider)
            .transpose()
    }

    async fn list_providers(&self) -> StoreResult<Vec<UpstreamProvider>> {
        sqlx::query("SELECT * FROM upstream_providers ORDER BY key")
            .fetch_all(&self.reader)
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
        )
        .bind(i.id.to_string())
        .bind(&i.provider)
        .bind(&i.external_id)
        .bind(scopes_json(&i.scopes))
        .bind(i.access_token.as_ref().map(|c| c.key_id.clone()))
        .bind(i.access_token.as_ref().map(|c| c.bytes.clone()))
        .bind(i.refresh_token.as_ref().map(|c| c.key_id.clone()))
        .bind(i.refresh_token.as_ref().map(|c| c.bytes.clone()))
        .bind(&i.token_type)
        .bind(i.expires_at.map(ts))
        .bind(&i.installation_id)
        .bind(i.status.as_str())
        .bind(i.last_refreshed_at.map(ts))
        .bind(i.failure_count)
        .bind(&i.last_error)
        .bind(i.next_attempt_at.map(ts))
        .bind(ts(i.created_at))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn identity(&self, id: Uuid) -> StoreResult<Option<UpstreamIdentityRecord>> {
        // Every read is its own WAL snapshot: a refresher that just won the
        // lease sees the newest committed refresh.
        sqlx::query("SELECT * FROM upstream_identities WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(identity)
            .transpose()
    }

    async fn list_identities(&self, limit: u32) -> StoreResult<Vec<UpstreamIdentityRecord>> {
        sqlx::query("SELECT * FROM upstream_identities ORDER BY created_at LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?
            .iter()
            .map(identity)
            .collect()
    }

    async fn delete_identity(&self, id: Uuid) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM upstream_identities WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.writer)
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
            "UPDATE upstream_identities SET lease_owner = ?, lease_until = ? WHERE id = ? \
             AND (lease_owner IS NULL OR lease_until <= ? OR lease_owner = ?)",
        )
        .bind(owner)
        .bind(ts(until))
        .bind(id.to_string())
        .bind(ts(now))
        .bind(owner)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_identity_lease(&self, id: Uuid, owner: &str) -> StoreResult<()> {
        sqlx::query("UPDATE upstream_identities SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?")
            .bind(id.to_string())
            .bind(owner)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn save_identity(
        &self,
        i: &UpstreamIdentityRecord,
        owner: &str,
        events: &[NewEvent],
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE upstream_identities SET access_key = ?, access_ct = ?, refresh_key = ?, refresh_ct = ?, \
             token_type = ?, expires_at = ?, status = ?, last_refreshed_at = ?, failure_count = ?, \
             last_error = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL \
             WHERE id = ? AND lease_owner = ?",
        )
        .bind(i.access_token.as_ref().map(|c| c.key_id.clone()))
        .bind(i.access_token.as_ref().map(|c| c.bytes.clone()))
        .bind(i.refresh_token.as_ref().map(|c| c.key_id.clone()))
        .bind(i.refresh_token.as_ref().map(|c| c.bytes.clone()))
        .bind(&i.token_type)
        .bind(i.expires_at.map(ts))
        .bind(i.status.as_str())
        .bind(i.last_refreshed_at.map(ts))
        .bind(i.failure_count)
        .bind(&i.last_error)
        .bind(i.next_attempt_at.map(ts))
        .bind(i.id.to_string())
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict("lease".into()));
        }
        crate::store::insert_events(&mut tx, events).await?;
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
             AND (expires_at IS NULL OR expires_at < ? OR COALESCE(last_refreshed_at, created_at) < ?) \
             AND (next_attempt_at IS NULL OR next_attempt_at <= ?) \
             ORDER BY expires_at LIMIT ?",
        )
        .bind(ts(before))
        .bind(ts(idle_before))
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
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
        let done = sqlx::query("UPDATE upstream_providers SET secrets_key = ?, secrets_ct = ? WHERE key = ? AND secrets_key = ? AND secrets_ct = ?")
            .bind(&new.key_id)
            .bind(&new.bytes)
            .bind(key)
            .bind(&old.key_id)
            .bind(&old.bytes)
            .execute(&self.writer)
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
            "UPDATE upstream_identities SET access_key = ?, access_ct = ?, refresh_key = ?, refresh_ct = ? \
             WHERE id = ? AND access_ct IS ? AND refresh_ct IS ?",
        )
        .bind(new.0.map(|c| c.key_id.clone()))
        .bind(new.0.map(|c| c.bytes.clone()))
        .bind(new.1.map(|c| c.key_id.clone()))
        .bind(new.1.map(|c| c.bytes.clone()))
        .bind(id.to_string())
        .bind(old.0.map(|c| c.bytes.clone()))
        .bind(old.1.map(|c| c.bytes.clone()))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}
