//! Row ↔ record mapping for SQLite: microsecond timestamps, UUID text, JSON
//! scope lists and SHA-256 blobs.

use chrono::{DateTime, Utc};
use rotor_core::{
    App, AppSettings, Ciphertext, Event, Grant, Installation, InstallationStatus, IssuedToken,
    NewEvent, ReusePolicy, TokenHash,
};
use rotor_store::StoreError;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

pub(crate) fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_ts(v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| bad("timestamp"))
}

fn opt_ts(v: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    v.map(from_ts).transpose()
}

fn bad(what: &str) -> StoreError {
    StoreError::Other(format!("unreadable {what} in database row"))
}

fn uuid(v: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(v).map_err(|_| bad("uuid"))
}

fn get<'r, T>(row: &'r SqliteRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(col).map_err(crate::map_err)
}

fn hash(row: &SqliteRow, col: &str) -> Result<TokenHash, StoreError> {
    let v: Vec<u8> = get(row, col)?;
    TokenHash::from_slice(&v).ok_or_else(|| bad("hash"))
}

pub(crate) fn scopes_json(scopes: &[String]) -> String {
    serde_json::to_string(scopes).unwrap_or_else(|_| "[]".to_owned())
}

fn scopes(row: &SqliteRow, col: &str) -> Result<Vec<String>, StoreError> {
    let v: String = get(row, col)?;
    serde_json::from_str(&v).map_err(|_| bad("scopes"))
}

pub(crate) fn app(row: &SqliteRow) -> Result<App, StoreError> {
    let policy: String = get(row, "reuse_policy")?;
    Ok(App {
        id: uuid(&get::<String>(row, "id")?)?,
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
            verify_install: get(row, "verify_install")?,
            access_token_ttl_seconds: get(row, "access_token_ttl_seconds")?,
            refresh_grace_seconds: get(row, "refresh_grace_seconds")?,
            reuse_policy: ReusePolicy::parse(&policy).ok_or_else(|| bad("reuse_policy"))?,
        },
        created_at: from_ts(get(row, "created_at")?)?,
        updated_at: from_ts(get(row, "updated_at")?)?,
    })
}

pub(crate) fn installation(row: &SqliteRow) -> Result<Installation, StoreError> {
    let status: String = get(row, "status")?;
    let current: Option<String> = get(row, "current_token_id")?;
    Ok(Installation {
        id: uuid(&get::<String>(row, "id")?)?,
        app_id: uuid(&get::<String>(row, "app_id")?)?,
        app_slug: get(row, "app_slug")?,
        org_slug: get(row, "org_slug")?,
        status: InstallationStatus::parse(&status).ok_or_else(|| bad("status"))?,
        current_token_id: current.as_deref().map(uuid).transpose()?,
        created_at: from_ts(get(row, "created_at")?)?,
        deleted_at: opt_ts(get(row, "deleted_at")?)?,
    })
}

pub(crate) fn grant(row: &SqliteRow) -> Result<Grant, StoreError> {
    Ok(Grant {
        code_hash: hash(row, "code_hash")?,
        installation_id: uuid(&get::<String>(row, "installation_id")?)?,
        app_id: uuid(&get::<String>(row, "app_id")?)?,
        expires_at: from_ts(get(row, "expires_at")?)?,
        created_at: from_ts(get(row, "created_at")?)?,
    })
}

/// Columns of a token joined with its family; `revoked_at` is the earlier of
/// the pair's own and the family's.
pub(crate) const TOKEN_COLUMNS: &str = "t.id, t.family_id, t.installation_id, t.app_id, \
    t.access_hash, t.refresh_hash, t.scopes, t.expires_at, t.refresh_expires_at, \
    f.expires_at AS family_expires_at, t.created_at, t.parent_id, \
    t.retired_at, COALESCE(t.revoked_at, f.revoked_at) AS revoked_at \
    FROM tokens t JOIN token_families f ON f.id = t.family_id";

pub(crate) fn token(row: &SqliteRow) -> Result<IssuedToken, StoreError> {
    let parent: Option<String> = get(row, "parent_id")?;
    Ok(IssuedToken {
        id: uuid(&get::<String>(row, "id")?)?,
        family_id: uuid(&get::<String>(row, "family_id")?)?,
        installation_id: uuid(&get::<String>(row, "installation_id")?)?,
        app_id: uuid(&get::<String>(row, "app_id")?)?,
        access_hash: hash(row, "access_hash")?,
        refresh_hash: hash(row, "refresh_hash")?,
        scopes: scopes(row, "scopes")?,
        expires_at: from_ts(get(row, "expires_at")?)?,
        refresh_expires_at: from_ts(get(row, "refresh_expires_at")?)?,
        family_expires_at: from_ts(get(row, "family_expires_at")?)?,
        created_at: from_ts(get(row, "created_at")?)?,
        parent_id: parent.as_deref().map(uuid).transpose()?,
        retired_at: opt_ts(get(row, "retired_at")?)?,
        revoked_at: opt_ts(get(row, "revoked_at")?)?,
    })
}

pub(crate) fn event(row: &SqliteRow) -> Result<Event, StoreError> {
    let inst: Option<String> = get(row, "installation_id")?;
    Ok(Event {
        id: get(row, "id")?,
        event: NewEvent {
            kind: get(row, "kind")?,
            installation_id: inst.as_deref().map(uuid).transpose()?,
            identity_id: get(row, "identity_id")?,
            exchange_type: get(row, "exchange_type")?,
            ip: get(row, "ip")?,
            actor: get(row, "actor")?,
            detail: get(row, "detail")?,
            created_at: from_ts(get(row, "created_at")?)?,
        },
    })
}
