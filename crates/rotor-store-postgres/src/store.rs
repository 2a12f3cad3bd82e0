//! `impl Store for PgStore`: every verb of the contract as SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rotor_core::{
    App, Event, EventFilter, Grant, Installation, InstallationFilter, InstallationStatus,
    IssuedToken, NewEvent, TokenHash, UsedJti, WebhookDelivery,
};
use rotor_store::{Conflict, Purged, Rotation, Store, StoreError, StoreResult};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::outbox::insert_deliveries;
use crate::rows::{self, select_token};
use crate::{map_err, PgStore};

const INSTALLATION_BY_ID: &str = "SELECT i.id, i.app_id, a.slug AS app_slug, i.org_slug, \
    i.status, i.created_at, i.deleted_at \
    FROM installations i JOIN apps a ON a.id = i.app_id WHERE i.id = $1";

async fn insert_token(conn: &mut PgConnection, t: &IssuedToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, refresh_hash, \
         scopes, expires_at, refresh_expires_at, created_at, parent_id, retired_at, revoked_at, \
         successor_id, legacy) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, NULL, false)",
    )
    .bind(t.id)
    .bind(t.family_id)
    .bind(t.installation_id)
    .bind(t.app_id)
    .bind(t.access_hash.as_bytes().as_slice())
    .bind(t.refresh_hash.as_bytes().as_slice())
    .bind(&t.scopes)
    .bind(t.expires_at)
    .bind(t.refresh_expires_at)
    .bind(t.created_at)
    .bind(t.parent_id)
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Starts a family for `t` (its first pair) and stores the pair.
async fn insert_family_with(conn: &mut PgConnection, t: &IssuedToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO token_families (id, installation_id, app_id, created_at, expires_at, \
         revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(t.family_id)
    .bind(t.installation_id)
    .bind(t.app_id)
    .bind(t.created_at)
    .bind(t.family_expires_at)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    insert_token(conn, t).await
}

/// Appends `events` with one statement of a fixed shape (columns as arrays,
/// `UNNEST`ed), so it is prepared once whatever the number of events; the
/// rotation statement inserts its events the same way.
pub(crate) async fn insert_events(conn: &mut PgConnection, events: &[NewEvent]) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    EventColumns::of(events)
        .bind(sqlx::query(
            "INSERT INTO events (kind, installation_id, identity_id, exchange_type, ip, actor, \
             detail, created_at) SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[], \
             $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])",
        ))
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// The columns of some events, as arrays for `UNNEST`.
#[derive(Default)]
pub(crate) struct EventColumns {
    kinds: Vec<String>,
    installations: Vec<Option<Uuid>>,
    identities: Vec<Option<String>>,
    exchange_types: Vec<Option<String>>,
    ips: Vec<Option<String>>,
    actors: Vec<Option<String>>,
    details: Vec<Option<String>>,
    times: Vec<DateTime<Utc>>,
}

/// The gauges' counts: identities by status, and the webhook backlog.
pub(crate) const STATUS_COUNTS: &str = "SELECT 'identities' AS what, status, COUNT(*) AS n \
    FROM upstream_identities GROUP BY status \
    UNION ALL SELECT 'webhooks', status, COUNT(*) FROM webhook_deliveries \
    WHERE status = 'pending' GROUP BY status";

impl EventColumns {
    pub(crate) fn of(events: &[NewEvent]) -> Self {
        let mut columns = Self::default();
        events.iter().for_each(|e| columns.push(e));
        columns
    }

    /// Appends one event's values.
    pub(crate) fn push(&mut self, e: &NewEvent) {
        self.kinds.push(e.kind.as_str().to_owned());
        self.installations.push(e.installation_id);
        self.identities.push(e.identity_id.clone());
        self.exchange_types.push(e.exchange_type.clone());
        self.ips.push(e.ip.clone());
        self.actors.push(e.actor.clone());
        self.details.push(e.detail.clone());
        self.times.push(e.created_at);
    }

    /// Binds the eight arrays, in column order, as the next parameters.
    pub(crate) fn bind(
        self,
        q: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        q.bind(self.kinds)
            .bind(self.installations)
            .bind(self.identities)
            .bind(self.exchange_types)
            .bind(self.ips)
            .bind(self.actors)
            .bind(self.details)
            .bind(self.times)
    }
}

/// Checks that `token`'s installation is live (`NotFound` if it is gone)
/// and, with `installed`, marks it installed. (Its former
/// `current_token_id` pointer is no longer kept: nothing read it, and a
/// rotation that updated it wrote one more row.)
async fn live_installation(
    conn: &mut PgConnection,
    token: &IssuedToken,
    installed: bool,
) -> StoreResult<()> {
    let sql = if installed {
        "UPDATE installations SET status = 'installed' WHERE id = $1 AND deleted_at IS NULL"
    } else {
        // A row lock, as the update took: a concurrent deletion waits.
        "SELECT 1 FROM installations WHERE id = $1 AND deleted_at IS NULL FOR SHARE"
    };
    let done = sqlx::query(sql)
        .bind(token.installation_id)
        .execute(conn)
        .await
        .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Deletes at most `batch` rows of `table` matching `cond` (`$1` = now).
async fn delete_batch(
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
    cond: &str,
    now: DateTime<Utc>,
    batch: u32,
) -> StoreResult<u64> {
    let sql = format!(
        "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} x WHERE {cond} LIMIT $2)"
    );
    let done = sqlx::query(&sql)
        .bind(now)
        .bind(i64::from(batch))
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected())
}

impl PgStore {
    async fn token_where<T>(&self, sql: &'static str, value: T) -> StoreResult<Option<IssuedToken>>
    where
        T: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
    {
        sqlx::query(sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(rows::token)
            .transpose()
    }

    async fn app_where<T>(&self, sql: &'static str, value: T) -> StoreResult<Option<App>>
    where
        T: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
    {
        sqlx::query(sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(rows::app)
            .transpose()
    }

    async fn write_app(&self, sql: &str, app: &App) -> StoreResult<u64> {
        let s = &app.settings;
        let done = sqlx::query(sql)
            .bind(app.id)
            .bind(&app.slug)
            .bind(&s.name)
            .bind(&app.client_id)
            .bind(&app.client_secret.key_id)
            .bind(&app.client_secret.bytes)
            .bind(&s.scopes)
            .bind(&s.webhook_url)
            .bind(s.verify_install)
            .bind(s.access_token_ttl_seconds)
            .bind(s.refresh_grace_seconds)
            .bind(s.reuse_policy.as_str())
            .bind(app.created_at)
            .bind(app.updated_at)
            .bind(&s.redirect_url)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn close(&self) {
        PgStore::close(self).await;
    }

    async fn sealed_key_ids(&self) -> StoreResult<Vec<(String, u64)>> {
        sqlx::query(
            "SELECT key_id, COUNT(*) AS n FROM ( \
    SELECT secret_key_id AS key_id FROM apps \
    UNION ALL SELECT secrets_key FROM upstream_providers \
    UNION ALL SELECT access_key FROM upstream_identities WHERE access_key IS NOT NULL \
    UNION ALL SELECT refresh_key FROM upstream_identities WHERE refresh_key IS NOT NULL \
    UNION ALL SELECT body_key FROM webhook_deliveries WHERE status = 'pending') k \
    GROUP BY key_id ORDER BY key_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|row| {
            let n: i64 = rows::get(row, "n")?;
            Ok((rows::get(row, "key_id")?, n as u64))
        })
        .collect()
    }

    async fn status_counts(&self) -> StoreResult<Vec<(String, String, u64)>> {
        sqlx::query(STATUS_COUNTS)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(|row| {
                let n: i64 = rows::get(row, "n")?;
                Ok((rows::get(row, "what")?, rows::get(row, "status")?, n as u64))
            })
            .collect()
    }

    async fn check_writable(&self, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO readiness (id, checked_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn insert_app(&self, app: &App) -> StoreResult<()> {
        self.write_app(
            "INSERT INTO apps (id, slug, name, client_id, secret_key_id, secret_ct, scopes, \
             webhook_url, verify_install, access_token_ttl_seconds, refresh_grace_seconds, \
             reuse_policy, created_at, updated_at, redirect_url) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            app,
        )
        .await?;
        Ok(())
    }

    async fn update_app(&self, app: &App) -> StoreResult<()> {
        // slug, client_id and created_at ($2, $4, $13) never change.
        let n = self
            .write_app(
                "UPDATE apps SET name = $3, secret_key_id = $5, secret_ct = $6, scopes = $7, \
                 webhook_url = $8, verify_install = $9, access_token_ttl_seconds = $10, \
                 refresh_grace_seconds = $11, reuse_policy = $12, updated_at = $14, \
                 redirect_url = $15 \
                 WHERE id = $1 AND slug = $2 AND client_id = $4 AND created_at = $13",
                app,
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn app_by_slug(&self, slug: &str) -> StoreResult<Option<App>> {
        self.app_where("SELECT * FROM apps WHERE slug = $1", slug.to_owned())
            .await
    }

    #[tracing::instrument(name = "store.app_by_client_id", skip_all)]
    async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<App>> {
        self.app_where(
            "SELECT * FROM apps WHERE client_id = $1",
            client_id.to_owned(),
        )
        .await
    }

    async fn app_by_id(&self, id: Uuid) -> StoreResult<Option<App>> {
        self.app_where("SELECT * FROM apps WHERE id = $1", id).await
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        sqlx::query("SELECT * FROM apps ORDER BY created_at, slug")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(rows::app)
            .collect()
    }

    #[tracing::instrument(name = "store.create_installation", skip_all)]
    async fn create_installation(
        &self,
        inst: &Installation,
        grant: &Grant,
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO installations (id, app_id, org_slug, status, current_token_id, \
             created_at, deleted_at) VALUES ($1, $2, $3, $4, NULL, $5, NULL)",
        )
        .bind(inst.id)
        .bind(inst.app_id)
        .bind(&inst.org_slug)
        .bind(inst.status.as_str())
        .bind(inst.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO grants (code_hash, installation_id, app_id, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(grant.code_hash.as_bytes().as_slice())
        .bind(grant.installation_id)
        .bind(grant.app_id)
        .bind(grant.expires_at)
        .bind(grant.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_deliveries(&mut tx, outbox).await?;
        tx.commit().await.map_err(map_err)
    }

    #[tracing::instrument(name = "store.installation", skip_all)]
    async fn installation(&self, id: Uuid) -> StoreResult<Option<Installation>> {
        sqlx::query(INSTALLATION_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
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
        let done = sqlx::query(
            "UPDATE installations SET status = $1 WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(status.as_str())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    #[tracing::instrument(name = "store.delete_installation", skip_all)]
    async fn delete_installation(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE installations SET deleted_at = $1, current_token_id = NULL \
             WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE token_families SET revoked_at = $1 WHERE installation_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM grants WHERE installation_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_deliveries(&mut tx, outbox).await?;
        tx.commit().await.map_err(map_err)
    }

    #[tracing::instrument(name = "store.grant", skip_all)]
    async fn grant(&self, code_hash: &TokenHash) -> StoreResult<Option<Grant>> {
        sqlx::query("SELECT * FROM grants WHERE code_hash = $1")
            .bind(code_hash.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(rows::grant)
            .transpose()
    }

    #[tracing::instrument(name = "store.exchange_grant", skip_all)]
    async fn exchange_grant(
        &self,
        code_hash: &TokenHash,
        token: &IssuedToken,
        mark_installed: bool,
        events: &[NewEvent],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The compare-and-swap: a concurrent DELETE of the same row waits for
        // this one and then finds nothing.
        let used = sqlx::query("DELETE FROM grants WHERE code_hash = $1 AND installation_id = $2")
            .bind(code_hash.as_bytes().as_slice())
            .bind(token.installation_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if used.rows_affected() == 0 {
            return Err(StoreError::Conflict(Conflict::GrantUsed));
        }
        insert_family_with(&mut tx, token).await?;
        live_installation(&mut tx, token, mark_installed).await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(map_err)
    }

    #[tracing::instrument(name = "store.token", skip_all)]
    async fn token(&self, id: Uuid) -> StoreResult<Option<IssuedToken>> {
        self.token_where(select_token!("t.id = $1"), id).await
    }

    #[tracing::instrument(name = "store.token_with_installation", skip_all)]
    async fn token_with_installation(
        &self,
        pair: Uuid,
        installation: Option<Uuid>,
    ) -> StoreResult<(Option<IssuedToken>, Option<Installation>)> {
        let row = sqlx::query(rows::TOKEN_WITH_INSTALLATION)
            .bind(pair)
            .bind(installation)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let id: Option<Uuid> = rows::get(&row, "id")?;
        let token = match id {
            Some(_) => Some(rows::token(&row)?),
            None => None,
        };
        Ok((token, rows::prefixed_installation(&row)?))
    }

    #[tracing::instrument(name = "store.legacy_token_by_refresh", skip_all)]
    async fn legacy_token_by_refresh(
        &self,
        refresh_hash: &TokenHash,
    ) -> StoreResult<Option<IssuedToken>> {
        self.token_where(
            select_token!("t.refresh_hash = $1 AND t.legacy"),
            refresh_hash.as_bytes().as_slice(),
        )
        .await
    }

    #[tracing::instrument(name = "store.legacy_token_by_access", skip_all)]
    async fn legacy_token_by_access(
        &self,
        access_hash: &TokenHash,
    ) -> StoreResult<Option<IssuedToken>> {
        self.token_where(
            select_token!("t.access_hash = $1 AND t.legacy"),
            access_hash.as_bytes().as_slice(),
        )
        .await
    }

    #[tracing::instrument(name = "store.rotate_refresh", skip_all)]
    async fn rotate_refresh(
        &self,
        old_id: Uuid,
        successor: &IssuedToken,
        events: &[NewEvent],
    ) -> StoreResult<Rotation> {
        // Group-committed with the other rotations waiting (see `rotations`).
        let won = self.rotations.rotate(old_id, successor, events).await?;
        if !won {
            let current = self.token(old_id).await?.ok_or(StoreError::NotFound)?;
            return Ok(Rotation::Lost(Box::new(current)));
        }
        Ok(Rotation::Rotated)
    }

    #[tracing::instrument(name = "store.revoke_family", skip_all)]
    async fn revoke_family(
        &self,
        family_id: Uuid,
        now: DateTime<Utc>,
        events: &[NewEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE token_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    #[tracing::instrument(name = "store.reissue", skip_all)]
    async fn reissue(
        &self,
        jti: &UsedJti,
        token: &IssuedToken,
        events: &[NewEvent],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("INSERT INTO used_jtis (app_id, jti, expires_at) VALUES ($1, $2, $3)")
            .bind(jti.app_id)
            .bind(&jti.jti)
            .bind(jti.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("UPDATE token_families SET revoked_at = $1 WHERE installation_id = $2 AND revoked_at IS NULL")
            .bind(token.created_at)
            .bind(token.installation_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_family_with(&mut tx, token).await?;
        live_installation(&mut tx, token, false).await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn remember_jti(&self, jti: &UsedJti) -> StoreResult<()> {
        sqlx::query("INSERT INTO used_jtis (app_id, jti, expires_at) VALUES ($1, $2, $3)")
            .bind(jti.app_id)
            .bind(&jti.jti)
            .bind(jti.expires_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>, batch: u32) -> StoreResult<Purged> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let purged = Purged {
            webhooks: 0,
            events: 0,
            grants: delete_batch(&mut tx, "grants", "x.expires_at <= $1", now, batch).await?,
            jtis: delete_batch(&mut tx, "used_jtis", "x.expires_at <= $1", now, batch).await?,
            tokens: delete_batch(&mut tx, "tokens", "x.refresh_expires_at <= $1", now, batch).await?,
            // Past its absolute end a family's pairs have all ended (and are
            // purged above, or will be: the foreign key waits for them).
            families: delete_batch(
                &mut tx,
                "token_families",
                "x.expires_at <= $1 AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.family_id = x.id)",
                now,
                batch,
            )
            .await?,
        };
        tx.commit().await.map_err(map_err)?;
        Ok(purged)
    }

    async fn purge_events(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT $2) \
             AND created_at < $1",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn record_event(&self, e: &NewEvent) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        insert_events(&mut conn, std::slice::from_ref(e)).await
    }

    async fn list_events(&self, f: &EventFilter) -> StoreResult<Vec<Event>> {
        sqlx::query(
            "SELECT * FROM events WHERE ($1::uuid IS NULL OR installation_id = $1) \
             AND ($2::text IS NULL OR identity_id = $2) AND ($3::text IS NULL OR kind = $3) \
             AND ($5::bigint IS NULL OR id < $5) ORDER BY id DESC LIMIT $4",
        )
        .bind(f.installation_id)
        .bind(&f.identity_id)
        .bind(f.kind.map(|k| k.as_str()))
        .bind(i64::from(f.limit))
        .bind(f.before)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(rows::event)
        .collect()
    }

    async fn list_installations(&self, f: &InstallationFilter) -> StoreResult<Vec<Installation>> {
        sqlx::query(
            "SELECT i.id, i.app_id, a.slug AS app_slug, i.org_slug, i.status, \
             i.created_at, i.deleted_at \
             FROM installations i JOIN apps a ON a.id = i.app_id \
             WHERE i.deleted_at IS NULL AND ($1::uuid IS NULL OR i.app_id = $1) \
             AND ($2::text IS NULL OR i.org_slug = $2) \
             AND ($3::timestamptz IS NULL OR (i.created_at, i.id) < ($3, $5::uuid)) \
             ORDER BY i.created_at DESC, i.id DESC LIMIT $4",
        )
        .bind(f.app_id)
        .bind(&f.org_slug)
        .bind(f.before.map(|(at, _)| at))
        .bind(i64::from(f.limit))
        .bind(f.before.map(|(_, id)| id))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(rows::installation)
        .collect()
    }

    async fn delete_app(&self, id: Uuid) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Lock the app row: an installation created meanwhile waits for us
        // (its insert references the row) and then fails to find the app.
        let found = sqlx::query("SELECT id FROM apps WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM installations WHERE app_id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        if live > 0 {
            return Err(StoreError::Conflict(Conflict::LiveInstallations(live)));
        }
        for sql in [
            "UPDATE installations SET current_token_id = NULL WHERE app_id = $1",
            "DELETE FROM tokens WHERE app_id = $1",
            "DELETE FROM token_families WHERE app_id = $1",
            "DELETE FROM grants WHERE app_id = $1",
            "DELETE FROM used_jtis WHERE app_id = $1",
            "DELETE FROM installations WHERE app_id = $1",
            "DELETE FROM apps WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        sqlx::query("DELETE FROM webhook_deliveries WHERE target = $1 AND status = 'pending'")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }
}
