//! Row ↔ record mapping for SQLite: microsecond timestamps, UUID text, JSON
//! scope lists and SHA-256 blobs.

use chrono::{DateTime, Utc};
use rotor_core::{
    App, AppSettings, Ciphertext, Event, Grant, Installation, InstallationStatus, IssuedToken,
    NewEvent, ReusePolicy, TokenHash,
};
use rotor_store::StoreError;
use rusqlite::types::FromSql;
use rusqlite::Row;
use uuid::Uuid;

pub(crate) fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_ts(v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| bad("timestamp"))
}

pub(crate) fn opt_ts(v: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    v.map(from_ts).transpose()
}

pub(crate) fn bad(what: &str) -> StoreError {
    StoreError::other(format!("unreadable {what} in database row"))
}

pub(crate) fn uuid(v: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(v).map_err(|_| bad("uuid"))
}

pub(crate) fn get<T: FromSql>(row: &Row<'_>, col: &str) -> Result<T, StoreError> {
    row.get(col).map_err(crate::map_err)
}

pub(crate) fn uuid_col(row: &Row<'_>, col: &str) -> Result<Uuid, StoreError> {
    let v = row.get_ref(col).map_err(crate::map_err)?;
    let text = v.as_str().map_err(|_| bad("uuid"))?;
    uuid(text)
}

pub(crate) fn opt_uuid(row: &Row<'_>, col: &str) -> Result<Option<Uuid>, StoreError> {
    let v: Option<String> = get(row, col)?;
    v.as_deref().map(uuid).transpose()
}

fn hash(row: &Row<'_>, col: &str) -> Result<TokenHash, StoreError> {
    let v = row.get_ref(col).map_err(crate::map_err)?;
    TokenHash::from_slice(v.as_blob().map_err(|_| bad("hash"))?).ok_or_else(|| bad("hash"))
}

pub(crate) fn scopes_json(scopes: &[String]) -> String {
    serde_json::to_string(scopes).unwrap_or_else(|_| "[]".to_owned())
}

pub(crate) fn scopes(row: &Row<'_>, col: &str) -> Result<Vec<String>, StoreError> {
    let v: String = get(row, col)?;
    serde_json::from_str(&v).map_err(|_| bad("scopes"))
}

pub(crate) fn app(row: &Row<'_>) -> Result<App, StoreError> {
    let policy: String = get(row, "reuse_policy")?;
    Ok(App {
        id: uuid_col(row, "id")?,
        slug: get(row, "slug")?,
        client_id: get(row, "client_id")?,
        client_secret: Ciphertext {
            key_id: get(row, "secret_key_id")?,
            bytes: get(row, "secret_ct")?,
        },
        settings: AppSettings {
            name: get(row, "name")?,
            scopes: scopes(row, "scopes")?,
            webhook_url: get(row, "webhook_url")?,
            redirect_url: get(row, "redirect_url")?,
            verify_install: get(row, "verify_install")?,
            access_token_ttl_seconds: get(row, "access_token_ttl_seconds")?,
            refresh_grace_seconds: get(row, "refresh_grace_seconds")?,
            reuse_policy: ReusePolicy::parse(&policy).ok_or_else(|| bad("reuse_policy"))?,
        },
        created_at: from_ts(get(row, "created_at")?)?,
        updated_at: from_ts(get(row, "updated_at")?)?,
    })
}

pub(crate) fn installation(row: &Row<'_>) -> Result<Installation, StoreError> {
    let status: String = get(row, "status")?;
    Ok(Installation {
        id: uuid_col(row, "id")?,
        app_id: uuid_col(row, "app_id")?,
        app_slug: get(row, "app_slug")?,
        org_slug: get(row, "org_slug")?,
        status: InstallationStatus::parse(&status).ok_or_else(|| bad("status"))?,
        created_at: from_ts(get(row, "created_at")?)?,
        deleted_at: opt_ts(get(row, "deleted_at")?)?,
    })
}

pub(crate) fn grant(row: &Row<'_>) -> Result<Grant, StoreError> {
    Ok(Grant {
        code_hash: hash(row, "code_hash")?,
        installation_id: uuid_col(row, "installation_id")?,
        app_id: uuid_col(row, "app_id")?,
        expires_at: from_ts(get(row, "expires_at")?)?,
        created_at: from_ts(get(row, "created_at")?)?,
    })
}

/// `SELECT` of a token joined with its family, `WHERE $cond` (a literal):
/// the whole statement is one `&'static str`, built at compile time, so a
/// lookup on the refresh path formats nothing. `revoked_at` is the earlier
/// of the pair's own and the family's.
macro_rules! select_token {
    ($cond:literal) => {
        concat!(
            "SELECT t.id, t.family_id, t.installation_id, t.app_id, \
             t.access_hash, t.refresh_hash, t.scopes, t.expires_at, t.refresh_expires_at, \
             f.expires_at AS family_expires_at, t.created_at, t.parent_id, t.successor_id, \
             t.retired_at, COALESCE(t.revoked_at, f.revoked_at) AS revoked_at \
             FROM tokens t JOIN token_families f ON f.id = t.family_id WHERE ",
            $cond
        )
    };
}
pub(crate) use select_token;

pub(crate) fn token(row: &Row<'_>) -> Result<IssuedToken, StoreError> {
    Ok(IssuedToken {
        id: uuid_col(row, "id")?,
        family_id: uuid_col(row, "family_id")?,
        installation_id: uuid_col(row, "installation_id")?,
        app_id: uuid_col(row, "app_id")?,
        access_hash: hash(row, "access_hash")?,
        refresh_hash: hash(row, "refresh_hash")?,
        scopes: scopes(row, "scopes")?,
        expires_at: from_ts(get(row, "expires_at")?)?,
        refresh_expires_at: from_ts(get(row, "refresh_expires_at")?)?,
        family_expires_at: from_ts(get(row, "family_expires_at")?)?,
        created_at: from_ts(get(row, "created_at")?)?,
        parent_id: opt_uuid(row, "parent_id")?,
        successor_id: opt_uuid(row, "successor_id")?,
        retired_at: opt_ts(get(row, "retired_at")?)?,
        revoked_at: opt_ts(get(row, "revoked_at")?)?,
    })
}

pub(crate) fn event(row: &Row<'_>) -> Result<Event, StoreError> {
    Ok(Event {
        id: get(row, "id")?,
        event: NewEvent {
            kind: rotor_core::EventKind::parse(&get::<String>(row, "kind")?)
                .ok_or_else(|| bad("event kind"))?,
            installation_id: opt_uuid(row, "installation_id")?,
            identity_id: get(row, "identity_id")?,
            exchange_type: get(row, "exchange_type")?,
            ip: get(row, "ip")?,
            actor: get(row, "actor")?,
            detail: get(row, "detail")?,
            created_at: from_ts(get(row, "created_at")?)?,
        },
    })
}
