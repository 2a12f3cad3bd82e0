//! `impl Store for SqliteStore`: every verb of the contract as SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rotor_core::{
    App, Event, EventFilter, Grant, Installation, InstallationStatus, IssuedToken, NewEvent,
    TokenHash, UsedJti,
};
use rotor_store::{Purged, Rotation, Store, StoreError, StoreResult};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use crate::rows::{self, scopes_json, ts, TOKEN_COLUMNS};
use crate::{map_err, SqliteStore};

const INSTALLATION_COLUMNS: &str = "i.id, i.app_id, a.slug AS app_slug, i.org_slug, i.status, \
    i.current_token_id, i.created_at, i.deleted_at FROM installations i JOIN apps a ON a.id = i.app_id";

pub(crate) async fn insert_token(
    tx: &mut Transaction<'_, Sqlite>,
    t: &IssuedToken,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, refresh_hash, \
         scopes, expires_at, refresh_expires_at, created_at, parent_id, retired_at, revoked_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
    )
    .bind(t.id.to_string())
    .bind(t.family_id.to_string())
    .bind(t.installation_id.to_string())
    .bind(t.app_id.to_string())
    .bind(t.access_hash.as_bytes().as_slice())
    .bind(t.refresh_hash.as_bytes().as_slice())
    .bind(scopes_json(&t.scopes))
    .bind(ts(t.expires_at))
    .bind(ts(t.refresh_expires_at))
    .bind(ts(t.created_at))
    .bind(t.parent_id.map(|p| p.to_string()))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Starts a family for `t` (its first pair) and stores the pair.
async fn insert_family_with(tx: &mut Transaction<'_, Sqlite>, t: &IssuedToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO token_families (id, installation_id, app_id, created_at, expires_at, \
         revoked_at) VALUES (?, ?, ?, ?, ?, NULL)",
    )
    .bind(t.family_id.to_string())
    .bind(t.installation_id.to_string())
    .bind(t.app_id.to_string())
    .bind(ts(t.created_at))
    .bind(ts(t.family_expires_at))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    insert_token(tx, t).await
}

/// Runs `DELETE FROM {table} WHERE rowid IN ({select} LIMIT batch)`.
async fn delete_batch(
    tx: &mut Transaction<'_, Sqlite>,
    table: &str,
    select: &str,
    now: i64,
    batch: u32,
) -> StoreResult<u64> {
    let sql = format!("DELETE FROM {table} WHERE rowid IN ({select} LIMIT ?2)");
    let done = sqlx::query(&sql)
        .bind(now)
        .bind(i64::from(batch))
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected())
}

/// Inserts `events` with one multi-row statement (one round trip to the
/// SQLite worker thread instead of one per event).
pub(crate) async fn insert_events(
    conn: &mut sqlx::SqliteConnection,
    events: &[NewEvent],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut q = sqlx::QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (kind, installation_id, identity_id, exchange_type, ip, actor, detail, created_at) ",
    );
    q.push_values(events, |mut b, e| {
        b.push_bind(&e.kind)
            .push_bind(e.installation_id.map(|i| i.to_string()))
            .push_bind(&e.identity_id)
            .push_bind(&e.exchange_type)
            .push_bind(&e.ip)
            .push_bind(&e.actor)
            .push_bind(&e.detail)
            .push_bind(ts(e.created_at));
    });
    q.build().execute(conn).await.map_err(map_err)?;
    Ok(())
}

impl SqliteStore {
    async fn token_where(&self, cond: &str, hash: &TokenHash) -> StoreResult<Option<IssuedToken>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} WHERE {cond} = ?");
        sqlx::query(&sql)
            .bind(hash.as_bytes().as_slice())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(rows::token)
            .transpose()
    }

    pub(crate) async fn token_by_id_in(
        tx: &mut Transaction<'_, Sqlite>,
        id: Uuid,
    ) -> StoreResult<IssuedToken> {
        let sql = format!("SELECT {TOKEN_COLUMNS} WHERE t.id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        rows::token(&row)
    }

    async fn app_where(&self, cond: &str, value: String) -> StoreResult<Option<App>> {
        let sql = format!("SELECT * FROM apps WHERE {cond} = ?");
        sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(rows::app)
            .transpose()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn insert_app(&self, app: &App) -> StoreResult<()> {
        let s = &app.settings;
        sqlx::query(
            "INSERT INTO apps (id, slug, name, client_id, secret_key_id, secret_ct, scopes, \
             webhook_url, verify_install, access_token_ttl_seconds, refresh_grace_seconds, \
             reuse_policy, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(app.id.to_string())
        .bind(&app.slug)
        .bind(&s.name)
        .bind(&app.client_id)
        .bind(&app.client_secret.key_id)
        .bind(&app.client_secret.bytes)
        .bind(scopes_json(&s.scopes))
        .bind(&s.webhook_url)
        .bind(s.verify_install)
        .bind(s.access_token_ttl_seconds)
        .bind(s.refresh_grace_seconds)
        .bind(s.reuse_policy.as_str())
        .bind(ts(app.created_at))
        .bind(ts(app.updated_at))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn update_app(&self, app: &App) -> StoreResult<()> {
        let s = &app.settings;
        let done = sqlx::query(
            "UPDATE apps SET name = ?, secret_key_id = ?, secret_ct = ?, scopes = ?, \
             webhook_url = ?, verify_install = ?, access_token_ttl_seconds = ?, \
             refresh_grace_seconds = ?, reuse_policy = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&s.name)
        .bind(&app.client_secret.key_id)
        .bind(&app.client_secret.bytes)
        .bind(scopes_json(&s.scopes))
        .bind(&s.webhook_url)
        .bind(s.verify_install)
        .bind(s.access_token_ttl_seconds)
        .bind(s.refresh_grace_seconds)
        .bind(s.reuse_policy.as_str())
        .bind(ts(app.updated_at))
        .bind(app.id.to_string())
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn app_by_slug(&self, slug: &str) -> StoreResult<Option<App>> {
        self.app_where("slug", slug.to_owned()).await
    }

    async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<App>> {
        self.app_where("client_id", client_id.to_owned()).await
    }

    async fn app_by_id(&self, id: Uuid) -> StoreResult<Option<App>> {
        self.app_where("id", id.to_string()).await
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        sqlx::query("SELECT * FROM apps ORDER BY created_at, slug")
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?
            .iter()
            .map(rows::app)
            .collect()
    }

    async fn create_installation(&self, inst: &Installation, grant: &Grant) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO installations (id, app_id, org_slug, status, current_token_id, \
             created_at, deleted_at) VALUES (?, ?, ?, ?, NULL, ?, NULL)",
        )
        .bind(inst.id.to_string())
        .bind(inst.app_id.to_string())
        .bind(&inst.org_slug)
        .bind(inst.status.as_str())
        .bind(ts(inst.created_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO grants (code_hash, installation_id, app_id, expires_at, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(grant.code_hash.as_bytes().as_slice())
        .bind(grant.installation_id.to_string())
        .bind(grant.app_id.to_string())
        .bind(ts(grant.expires_at))
        .bind(ts(grant.created_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn installation(&self, id: Uuid) -> StoreResult<Option<Installation>> {
        let sql = format!("SELECT {INSTALLATION_COLUMNS} WHERE i.id = ?");
        sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(rows::installation)
            .transpose()
    }

    async fn set_installation_status(
        &self,
        id: Uuid,
        status: InstallationStatus,
    ) -> StoreResult<()> {
        let done =
            sqlx::query("UPDATE installations SET status = ? WHERE id = ? AND deleted_at IS NULL")
                .bind(status.as_str())
                .bind(id.to_string())
                .execute(&self.writer)
                .await
                .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_installation(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE installations SET deleted_at = ?, current_token_id = NULL \
             WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(ts(now))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "UPDATE token_families SET revoked_at = ? WHERE installation_id = ? AND revoked_at IS NULL",
        )
        .bind(ts(now))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM grants WHERE installation_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn grant(&self, code_hash: &TokenHash) -> StoreResult<Option<Grant>> {
        sqlx::query("SELECT * FROM grants WHERE code_hash = ?")
            .bind(code_hash.as_bytes().as_slice())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(rows::grant)
            .transpose()
    }

    async fn exchange_grant(
        &self,
        code_hash: &TokenHash,
        token: &IssuedToken,
        mark_installed: bool,
        events: &[NewEvent],
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        // The compare-and-swap: only the exchange that deletes the grant wins.
        let used = sqlx::query("DELETE FROM grants WHERE code_hash = ? AND installation_id = ?")
            .bind(code_hash.as_bytes().as_slice())
            .bind(token.installation_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if used.rows_affected() == 0 {
            return Err(StoreError::Conflict("grant_used".into()));
        }
        insert_family_with(&mut tx, token).await?;
        let status_sql = if mark_installed {
            "UPDATE installations SET current_token_id = ?, status = 'installed' \
             WHERE id = ? AND deleted_at IS NULL"
        } else {
            "UPDATE installations SET current_token_id = ? WHERE id = ? AND deleted_at IS NULL"
        };
        let pointed = sqlx::query(status_sql)
            .bind(token.id.to_string())
            .bind(token.installation_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if pointed.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn token_by_refresh(&self, refresh_hash: &TokenHash) -> StoreResult<Option<IssuedToken>> {
        self.token_where("t.refresh_hash", refresh_hash).await
    }

    async fn token_by_access(&self, access_hash: &TokenHash) -> StoreResult<Option<IssuedToken>> {
        self.token_where("t.access_hash", access_hash).await
    }

    async fn rotate_refresh(
        &self,
        old_id: Uuid,
        successor: &IssuedToken,
        events: &[NewEvent],
    ) -> StoreResult<Rotation> {
        crate::group::rotate(&self.rotations, old_id, successor, events).await
    }

    async fn revoke_family(
        &self,
        family_id: Uuid,
        now: DateTime<Utc>,
        events: &[NewEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE token_families SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(ts(now))
        .bind(family_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn reissue(
        &self,
        jti: &UsedJti,
        token: &IssuedToken,
        events: &[NewEvent],
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        sqlx::query("INSERT INTO used_jtis (app_id, jti, expires_at) VALUES (?, ?, ?)")
            .bind(jti.app_id.to_string())
            .bind(&jti.jti)
            .bind(ts(jti.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "UPDATE token_families SET revoked_at = ? WHERE installation_id = ? AND revoked_at IS NULL",
        )
        .bind(ts(token.created_at))
        .bind(token.installation_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_family_with(&mut tx, token).await?;
        let pointed = sqlx::query(
            "UPDATE installations SET current_token_id = ? WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(token.id.to_string())
        .bind(token.installation_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if pointed.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn remember_jti(&self, jti: &UsedJti) -> StoreResult<()> {
        sqlx::query("INSERT INTO used_jtis (app_id, jti, expires_at) VALUES (?, ?, ?)")
            .bind(jti.app_id.to_string())
            .bind(&jti.jti)
            .bind(ts(jti.expires_at))
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>, batch: u32) -> StoreResult<Purged> {
        let now = ts(now);
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let purged = Purged {
            grants: delete_batch(
                &mut tx,
                "grants",
                "SELECT rowid FROM grants WHERE expires_at <= ?1",
                now,
                batch,
            )
            .await?,
            jtis: delete_batch(
                &mut tx,
                "used_jtis",
                "SELECT rowid FROM used_jtis WHERE expires_at <= ?1",
                now,
                batch,
            )
            .await?,
            tokens: delete_batch(
                &mut tx,
                "tokens",
                "SELECT rowid FROM tokens WHERE refresh_expires_at <= ?1",
                now,
                batch,
            )
            .await?,
            families: delete_batch(
                &mut tx,
                "token_families",
                // A family and its first pair are written in one transaction, so
                // a family without pairs is one whose pairs were all purged.
                "SELECT f.rowid FROM token_families f WHERE ?1 IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.family_id = f.id)",
                now,
                batch,
            )
            .await?,
        };
        tx.commit().await.map_err(map_err)?;
        Ok(purged)
    }

    async fn record_event(&self, e: &NewEvent) -> StoreResult<()> {
        let mut conn = self.writer.acquire().await.map_err(map_err)?;
        insert_events(&mut conn, std::slice::from_ref(e)).await
    }

    async fn list_events(&self, f: &EventFilter) -> StoreResult<Vec<Event>> {
        sqlx::query(
            "SELECT * FROM events WHERE (?1 IS NULL OR installation_id = ?1) \
             AND (?2 IS NULL OR identity_id = ?2) AND (?3 IS NULL OR kind = ?3) \
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(f.installation_id.map(|i| i.to_string()))
        .bind(&f.identity_id)
        .bind(&f.kind)
        .bind(i64::from(f.limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?
        .iter()
        .map(rows::event)
        .collect()
    }
}
