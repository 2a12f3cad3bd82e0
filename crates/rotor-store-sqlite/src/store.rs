//! `impl Store for SqliteStore`: every verb of the contract as SQL.
//!
//! Writes are closures run by the writer thread inside its batch transaction
//! (each in its own savepoint, so each verb is atomic on its own); reads run
//! in place on a read-only connection ([`crate::db`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rotor_core::{
    App, Event, EventFilter, Grant, Installation, InstallationFilter, InstallationStatus,
    IssuedToken, NewEvent, TokenHash, UsedJti, WebhookDelivery,
};
use rotor_store::{Conflict, Purged, Rotation, Store, StoreError, StoreResult};
use rusqlite::{params, Connection, Params, Row};
use uuid::Uuid;

use crate::outbox::insert_deliveries;
use crate::rows::{self, scopes_json, select_token, ts};
use crate::{db, map_err, SqliteStore};

const INSTALLATION_BY_ID: &str = "SELECT i.id, i.app_id, a.slug AS app_slug, i.org_slug, \
    i.status, i.created_at, i.deleted_at \
    FROM installations i JOIN apps a ON a.id = i.app_id WHERE i.id = ?";

/// Which key sealed how many values (see `Store::sealed_key_ids`).
const SEALED_KEY_IDS: &str = "SELECT key_id, COUNT(*) AS n FROM ( \
    SELECT secret_key_id AS key_id FROM apps \
    UNION ALL SELECT secrets_key FROM upstream_providers \
    UNION ALL SELECT access_key FROM upstream_identities WHERE access_key IS NOT NULL \
    UNION ALL SELECT refresh_key FROM upstream_identities WHERE refresh_key IS NOT NULL \
    UNION ALL SELECT body_key FROM webhook_deliveries WHERE status = 'pending') k \
    GROUP BY key_id ORDER BY key_id";

/// Runs a cached statement; answers the rows it changed.
pub(crate) fn exec(conn: &Connection, sql: &str, params: impl Params) -> StoreResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(map_err)
}

/// The first row of a cached query, mapped.
pub(crate) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(params).map_err(map_err)?;
    match rows.next().map_err(map_err)? {
        Some(row) => map(row).map(Some),
        None => Ok(None),
    }
}

/// Every row of a cached query, mapped.
pub(crate) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl Fn(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(params).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(map(row)?);
    }
    Ok(out)
}

fn insert_token(conn: &Connection, t: &IssuedToken) -> StoreResult<()> {
    exec(
        conn,
        "INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, refresh_hash, \
         scopes, expires_at, refresh_expires_at, created_at, parent_id, retired_at, revoked_at, \
         successor_id, legacy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, 0)",
        params![
            t.id.to_string(),
            t.family_id.to_string(),
            t.installation_id.to_string(),
            t.app_id.to_string(),
            t.access_hash.as_bytes().as_slice(),
            t.refresh_hash.as_bytes().as_slice(),
            scopes_json(&t.scopes),
            ts(t.expires_at),
            ts(t.refresh_expires_at),
            ts(t.created_at),
            t.parent_id.map(|p| p.to_string()),
        ],
    )?;
    Ok(())
}

/// Starts a family for `t` (its first pair) and stores the pair.
fn insert_family_with(conn: &Connection, t: &IssuedToken) -> StoreResult<()> {
    exec(
        conn,
        "INSERT INTO token_families (id, installation_id, app_id, created_at, expires_at, \
         revoked_at) VALUES (?, ?, ?, ?, ?, NULL)",
        params![
            t.family_id.to_string(),
            t.installation_id.to_string(),
            t.app_id.to_string(),
            ts(t.created_at),
            ts(t.family_expires_at),
        ],
    )?;
    insert_token(conn, t)
}

/// Checks that the installation is live (`NotFound` if it is gone) and,
/// with `mark_installed`, marks it installed. (Its former
/// `current_token_id` pointer is no longer kept: nothing read it, and a
/// rotation that updated it wrote one more random page.)
fn live_installation(
    conn: &Connection,
    installation_id: Uuid,
    mark_installed: bool,
) -> StoreResult<()> {
    let n = if mark_installed {
        exec(
            conn,
            "UPDATE installations SET status = 'installed' WHERE id = ? AND deleted_at IS NULL",
            params![installation_id.to_string()],
        )?
    } else {
        conn.query_row(
            "SELECT COUNT(*) FROM installations WHERE id = ? AND deleted_at IS NULL",
            params![installation_id.to_string()],
            |r| r.get::<_, usize>(0),
        )
        .map_err(map_err)?
    };
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Appends `events`.
pub(crate) fn insert_events(conn: &Connection, events: &[NewEvent]) -> StoreResult<()> {
    for e in events {
        exec(
            conn,
            "INSERT INTO events (kind, installation_id, identity_id, exchange_type, ip, actor, \
             detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                e.kind.as_str(),
                e.installation_id.map(|i| i.to_string()),
                e.identity_id,
                e.exchange_type,
                e.ip,
                e.actor,
                e.detail,
                ts(e.created_at),
            ],
        )?;
    }
    Ok(())
}

/// Revokes every live family of an installation at `now`.
fn revoke_installation_families(
    conn: &Connection,
    installation_id: Uuid,
    now: i64,
) -> StoreResult<()> {
    exec(
        conn,
        "UPDATE token_families SET revoked_at = ? WHERE installation_id = ? AND revoked_at IS NULL",
        params![now, installation_id.to_string()],
    )?;
    Ok(())
}

/// Runs `DELETE FROM {table} WHERE rowid IN ({select} LIMIT batch)`.
fn delete_batch(
    conn: &Connection,
    table: &str,
    select: &str,
    now: i64,
    batch: u32,
) -> StoreResult<u64> {
    let sql = format!("DELETE FROM {table} WHERE rowid IN ({select} LIMIT ?2)");
    let n = exec(conn, &sql, params![now, i64::from(batch)])?;
    Ok(n as u64)
}

/// The pair `id`, in any state.
fn token_by_id(conn: &Connection, id: Uuid) -> StoreResult<Option<IssuedToken>> {
    one(
        conn,
        select_token!("t.id = ?"),
        [id.to_string()],
        rows::token,
    )
}

/// The rotation compare-and-swap and its writes; see [`Store::rotate_refresh`].
fn rotate(
    conn: &Connection,
    old_id: Uuid,
    s: &IssuedToken,
    events: &[NewEvent],
) -> StoreResult<Rotation> {
    // Retire the old pair only while it is live and its family stands.
    let retired = exec(
        conn,
        "UPDATE tokens SET retired_at = ?, successor_id = ? WHERE id = ? AND retired_at IS NULL \
         AND revoked_at IS NULL AND family_id = ? AND EXISTS (SELECT 1 FROM token_families f \
         WHERE f.id = tokens.family_id AND f.revoked_at IS NULL)",
        params![
            ts(s.created_at),
            s.id.to_string(),
            old_id.to_string(),
            s.family_id.to_string()
        ],
    )?;
    if retired == 0 {
        let current = token_by_id(conn, old_id)?.ok_or(StoreError::NotFound)?;
        return Ok(Rotation::Lost(Box::new(current)));
    }
    insert_token(conn, s)?;
    // No installation row is touched: a deleted installation's families
    // are revoked, so the CAS above already refused.
    insert_events(conn, events)?;
    Ok(Rotation::Rotated)
}

/// The gauges' counts: identities by status, and the webhook backlog.
pub(crate) const STATUS_COUNTS: &str = "SELECT 'identities' AS what, status, COUNT(*) AS n \
    FROM upstream_identities GROUP BY status \
    UNION ALL SELECT 'webhooks', status, COUNT(*) FROM webhook_deliveries \
    WHERE status = 'pending' GROUP BY status";

impl SqliteStore {
    fn token_where(&self, sql: &str, hash: &TokenHash) -> StoreResult<Option<IssuedToken>> {
        self.readers
            .read(|c| one(c, sql, [hash.as_bytes().as_slice()], rows::token))
    }

    fn app_where(&self, sql: &str, value: &str) -> StoreResult<Option<App>> {
        self.readers.read(|c| one(c, sql, [value], rows::app))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.readers.read(|c| one(c, "SELECT 1", [], |_| Ok(())))?;
        Ok(())
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    async fn sealed_key_ids(&self) -> StoreResult<Vec<(String, u64)>> {
        db::read_blocking(&self.readers, |c| {
            all(c, SEALED_KEY_IDS, [], |row| {
                let n: i64 = rows::get(row, "n")?;
                Ok((rows::get(row, "key_id")?, n as u64))
            })
        })
        .await
    }

    async fn status_counts(&self) -> StoreResult<Vec<(String, String, u64)>> {
        db::read_blocking(&self.readers, |c| {
            all(c, STATUS_COUNTS, [], |row| {
                let n: i64 = rows::get(row, "n")?;
                Ok((rows::get(row, "what")?, rows::get(row, "status")?, n as u64))
            })
        })
        .await
    }

    async fn check_writable(&self, now: DateTime<Utc>) -> StoreResult<()> {
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO readiness (id, checked_at) VALUES (1, ?1) \
                     ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                    [ts(now)],
                )?;
                Ok(())
            })
            .await
    }

    async fn insert_app(&self, app: &App) -> StoreResult<()> {
        let app = app.clone();
        self.writer
            .write(move |c| {
                let s = &app.settings;
                exec(
                    c,
                    "INSERT INTO apps (id, slug, name, client_id, secret_key_id, secret_ct, scopes, \
                     webhook_url, verify_install, access_token_ttl_seconds, refresh_grace_seconds, \
                     reuse_policy, created_at, updated_at, redirect_url) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    params![
                        app.id.to_string(),
                        app.slug,
                        s.name,
                        app.client_id,
                        app.client_secret.key_id,
                        app.client_secret.bytes,
                        scopes_json(&s.scopes),
                        s.webhook_url,
                        s.verify_install,
                        s.access_token_ttl_seconds,
                        s.refresh_grace_seconds,
                        s.reuse_policy.as_str(),
                        ts(app.created_at),
                        ts(app.updated_at),
                        s.redirect_url,
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn update_app(&self, app: &App) -> StoreResult<()> {
        let app = app.clone();
        self.writer
            .write(move |c| {
                let s = &app.settings;
                let n = exec(
                    c,
                    "UPDATE apps SET name = ?, secret_key_id = ?, secret_ct = ?, scopes = ?, \
                     webhook_url = ?, verify_install = ?, access_token_ttl_seconds = ?, \
                     refresh_grace_seconds = ?, reuse_policy = ?, updated_at = ?, redirect_url = ? \
                     WHERE id = ?",
                    params![
                        s.name,
                        app.client_secret.key_id,
                        app.client_secret.bytes,
                        scopes_json(&s.scopes),
                        s.webhook_url,
                        s.verify_install,
                        s.access_token_ttl_seconds,
                        s.refresh_grace_seconds,
                        s.reuse_policy.as_str(),
                        ts(app.updated_at),
                        s.redirect_url,
                        app.id.to_string(),
                    ],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn app_by_slug(&self, slug: &str) -> StoreResult<Option<App>> {
        self.app_where("SELECT * FROM apps WHERE slug = ?", slug)
    }

    #[tracing::instrument(name = "store.app_by_client_id", skip_all)]
    async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<App>> {
        self.app_where("SELECT * FROM apps WHERE client_id = ?", client_id)
    }

    async fn app_by_id(&self, id: Uuid) -> StoreResult<Option<App>> {
        self.app_where("SELECT * FROM apps WHERE id = ?", &id.to_string())
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        db::read_blocking(&self.readers, |c| {
            all(
                c,
                "SELECT * FROM apps ORDER BY created_at, slug",
                [],
                rows::app,
            )
        })
        .await
    }

    #[tracing::instrument(name = "store.create_installation", skip_all)]
    async fn create_installation(
        &self,
        inst: &Installation,
        grant: &Grant,
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()> {
        let (inst, grant, outbox) = (inst.clone(), grant.clone(), outbox.to_vec());
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO installations (id, app_id, org_slug, status, current_token_id, \
                     created_at, deleted_at) VALUES (?, ?, ?, ?, NULL, ?, NULL)",
                    params![
                        inst.id.to_string(),
                        inst.app_id.to_string(),
                        inst.org_slug,
                        inst.status.as_str(),
                        ts(inst.created_at),
                    ],
                )?;
                exec(
                    c,
                    "INSERT INTO grants (code_hash, installation_id, app_id, expires_at, created_at) \
                     VALUES (?, ?, ?, ?, ?)",
                    params![
                        grant.code_hash.as_bytes().as_slice(),
                        grant.installation_id.to_string(),
                        grant.app_id.to_string(),
                        ts(grant.expires_at),
                        ts(grant.created_at),
                    ],
                )?;
                insert_deliveries(c, &outbox)
            })
            .await
    }

    #[tracing::instrument(name = "store.installation", skip_all)]
    async fn installation(&self, id: Uuid) -> StoreResult<Option<Installation>> {
        self.readers
            .read(|c| one(c, INSTALLATION_BY_ID, [id.to_string()], rows::installation))
    }

    async fn set_installation_status(
        &self,
        id: Uuid,
        status: InstallationStatus,
    ) -> StoreResult<()> {
        self.writer
            .write(move |c| {
                let n = exec(
                    c,
                    "UPDATE installations SET status = ? WHERE id = ? AND deleted_at IS NULL",
                    params![status.as_str(), id.to_string()],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    #[tracing::instrument(name = "store.delete_installation", skip_all)]
    async fn delete_installation(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()> {
        let outbox = outbox.to_vec();
        self.writer
            .write(move |c| {
                let n = exec(
                    c,
                    "UPDATE installations SET deleted_at = ?, current_token_id = NULL \
                     WHERE id = ? AND deleted_at IS NULL",
                    params![ts(now), id.to_string()],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                revoke_installation_families(c, id, ts(now))?;
                exec(
                    c,
                    "DELETE FROM grants WHERE installation_id = ?",
                    [id.to_string()],
                )?;
                insert_deliveries(c, &outbox)
            })
            .await
    }

    #[tracing::instrument(name = "store.grant", skip_all)]
    async fn grant(&self, code_hash: &TokenHash) -> StoreResult<Option<Grant>> {
        self.readers.read(|c| {
            one(
                c,
                "SELECT * FROM grants WHERE code_hash = ?",
                [code_hash.as_bytes().as_slice()],
                rows::grant,
            )
        })
    }

    #[tracing::instrument(name = "store.exchange_grant", skip_all)]
    async fn exchange_grant(
        &self,
        code_hash: &TokenHash,
        token: &IssuedToken,
        mark_installed: bool,
        events: &[NewEvent],
    ) -> StoreResult<()> {
        let (code_hash, token, events) = (*code_hash, token.clone(), events.to_vec());
        self.writer
            .write(move |c| {
                // The compare-and-swap: only the exchange that deletes the grant wins.
                let used = exec(
                    c,
                    "DELETE FROM grants WHERE code_hash = ? AND installation_id = ?",
                    params![
                        code_hash.as_bytes().as_slice(),
                        token.installation_id.to_string()
                    ],
                )?;
                if used == 0 {
                    return Err(StoreError::Conflict(Conflict::GrantUsed));
                }
                insert_family_with(c, &token)?;
                live_installation(c, token.installation_id, mark_installed)?;
                insert_events(c, &events)
            })
            .await
    }

    #[tracing::instrument(name = "store.token", skip_all)]
    async fn token(&self, id: Uuid) -> StoreResult<Option<IssuedToken>> {
        self.readers.read(|c| token_by_id(c, id))
    }

    #[tracing::instrument(name = "store.legacy_token_by_refresh", skip_all)]
    async fn legacy_token_by_refresh(
        &self,
        refresh_hash: &TokenHash,
    ) -> StoreResult<Option<IssuedToken>> {
        self.token_where(
            select_token!("t.refresh_hash = ? AND t.legacy = 1"),
            refresh_hash,
        )
    }

    #[tracing::instrument(name = "store.legacy_token_by_access", skip_all)]
    async fn legacy_token_by_access(
        &self,
        access_hash: &TokenHash,
    ) -> StoreResult<Option<IssuedToken>> {
        self.token_where(
            select_token!("t.access_hash = ? AND t.legacy = 1"),
            access_hash,
        )
    }

    #[tracing::instrument(name = "store.rotate_refresh", skip_all)]
    async fn rotate_refresh(
        &self,
        old_id: Uuid,
        successor: &IssuedToken,
        events: &[NewEvent],
    ) -> StoreResult<Rotation> {
        let (successor, events) = (successor.clone(), events.to_vec());
        self.writer
            .write(move |c| rotate(c, old_id, &successor, &events))
            .await
    }

    #[tracing::instrument(name = "store.revoke_family", skip_all)]
    async fn revoke_family(
        &self,
        family_id: Uuid,
        now: DateTime<Utc>,
        events: &[NewEvent],
    ) -> StoreResult<bool> {
        let events = events.to_vec();
        self.writer
            .write(move |c| {
                let n = exec(
                    c,
                    "UPDATE token_families SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    params![ts(now), family_id.to_string()],
                )?;
                insert_events(c, &events)?;
                Ok(n > 0)
            })
            .await
    }

    #[tracing::instrument(name = "store.reissue", skip_all)]
    async fn reissue(
        &self,
        jti: &UsedJti,
        token: &IssuedToken,
        events: &[NewEvent],
    ) -> StoreResult<()> {
        let (jti, token, events) = (jti.clone(), token.clone(), events.to_vec());
        self.writer
            .write(move |c| {
                insert_jti(c, &jti)?;
                revoke_installation_families(c, token.installation_id, ts(token.created_at))?;
                insert_family_with(c, &token)?;
                live_installation(c, token.installation_id, false)?;
                insert_events(c, &events)
            })
            .await
    }

    async fn remember_jti(&self, jti: &UsedJti) -> StoreResult<()> {
        let jti = jti.clone();
        self.writer.write(move |c| insert_jti(c, &jti)).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>, batch: u32) -> StoreResult<Purged> {
        let now = ts(now);
        self.writer
            .write(move |c| {
                let tokens = delete_batch(
                    c,
                    "tokens",
                    "SELECT rowid FROM tokens WHERE refresh_expires_at <= ?1",
                    now,
                    batch,
                )?;
                // A family's pairs all end by its absolute end: once this
                // round has purged every pair past its end, the families
                // past theirs have none left.
                let families = if tokens < u64::from(batch) {
                    delete_batch(
                        c,
                        "token_families",
                        "SELECT rowid FROM token_families WHERE expires_at <= ?1",
                        now,
                        batch,
                    )?
                } else {
                    0
                };
                Ok(Purged {
                    webhooks: 0,
                    events: 0,
                    grants: delete_batch(
                        c,
                        "grants",
                        "SELECT rowid FROM grants WHERE expires_at <= ?1",
                        now,
                        batch,
                    )?,
                    jtis: delete_batch(
                        c,
                        "used_jtis",
                        "SELECT rowid FROM used_jtis WHERE expires_at <= ?1",
                        now,
                        batch,
                    )?,
                    tokens,
                    families,
                })
            })
            .await
    }

    async fn purge_events(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64> {
        self.writer
            .write(move |c| {
                let n = exec(
                    c,
                    "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?2) \
                     AND created_at < ?1",
                    params![ts(before), i64::from(batch)],
                )?;
                Ok(n as u64)
            })
            .await
    }

    async fn record_event(&self, e: &NewEvent) -> StoreResult<()> {
        let e = e.clone();
        self.writer
            .write(move |c| insert_events(c, std::slice::from_ref(&e)))
            .await
    }

    async fn list_events(&self, f: &EventFilter) -> StoreResult<Vec<Event>> {
        let f = f.clone();
        db::read_blocking(&self.readers, move |c| {
            all(
                c,
                "SELECT * FROM events WHERE (?1 IS NULL OR installation_id = ?1) \
                 AND (?2 IS NULL OR identity_id = ?2) AND (?3 IS NULL OR kind = ?3) \
                 AND (?5 IS NULL OR id < ?5) ORDER BY id DESC LIMIT ?4",
                params![
                    f.installation_id.map(|i| i.to_string()),
                    f.identity_id,
                    f.kind.map(|k| k.as_str()),
                    i64::from(f.limit),
                    f.before,
                ],
                rows::event,
            )
        })
        .await
    }

    async fn list_installations(&self, f: &InstallationFilter) -> StoreResult<Vec<Installation>> {
        let f = f.clone();
        db::read_blocking(&self.readers, move |c| {
            all(
                c,
                "SELECT i.id, i.app_id, a.slug AS app_slug, i.org_slug, i.status, \
                 i.created_at, i.deleted_at \
                 FROM installations i JOIN apps a ON a.id = i.app_id \
                 WHERE i.deleted_at IS NULL AND (?1 IS NULL OR i.app_id = ?1) \
                 AND (?2 IS NULL OR i.org_slug = ?2) \
                 AND (?3 IS NULL OR i.created_at < ?3 OR (i.created_at = ?3 AND i.id < ?5)) \
                 ORDER BY i.created_at DESC, i.id DESC LIMIT ?4",
                params![
                    f.app_id.map(|i| i.to_string()),
                    f.org_slug,
                    f.before.map(|(at, _)| ts(at)),
                    i64::from(f.limit),
                    f.before.map(|(_, id)| id.to_string()),
                ],
                rows::installation,
            )
        })
        .await
    }

    async fn delete_app(&self, id: Uuid) -> StoreResult<()> {
        self.writer
            .write(move |c| {
                let id = id.to_string();
                let live: i64 = c
                    .query_row(
                        "SELECT COUNT(*) FROM installations WHERE app_id = ? AND deleted_at IS NULL",
                        [&id],
                        |r| r.get(0),
                    )
                    .map_err(map_err)?;
                if live > 0 {
                    return Err(StoreError::Conflict(Conflict::LiveInstallations(live)));
                }
                for sql in [
                    "UPDATE installations SET current_token_id = NULL WHERE app_id = ?",
                    "DELETE FROM tokens WHERE app_id = ?",
                    "DELETE FROM token_families WHERE app_id = ?",
                    "DELETE FROM grants WHERE app_id = ?",
                    "DELETE FROM used_jtis WHERE app_id = ?",
                    "DELETE FROM installations WHERE app_id = ?",
                    "DELETE FROM webhook_deliveries WHERE target = ? AND status = 'pending'",
                ] {
                    exec(c, sql, [&id])?;
                }
                if exec(c, "DELETE FROM apps WHERE id = ?", [&id])? == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }
}

fn insert_jti(conn: &Connection, jti: &UsedJti) -> StoreResult<()> {
    exec(
        conn,
        "INSERT INTO used_jtis (app_id, jti, expires_at) VALUES (?, ?, ?)",
        params![jti.app_id.to_string(), jti.jti, ts(jti.expires_at)],
    )?;
    Ok(())
}
