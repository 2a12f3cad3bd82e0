//! Row → record mapping for PostgreSQL (native UUID, TIMESTAMPTZ, BYTEA, TEXT[]).

use rotor_core::{
    App, AppSettings, Ciphertext, Event, Grant, Installation, InstallationStatus, IssuedToken,
    NewEvent, ReusePolicy, TokenHash,
};
use rotor_store::StoreError;
use sqlx::postgres::PgRow;
use sqlx::Row;

fn bad(what: &str) -> StoreError {
    StoreError::other(format!("unreadable {what} in database row"))
}

/// Column `col` of `row`, in the store's error vocabulary.
pub(crate) fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(col).map_err(crate::map_err)
}

fn hash(row: &PgRow, col: &str) -> Result<TokenHash, StoreError> {
    let v: Vec<u8> = get(row, col)?;
    TokenHash::from_slice(&v).ok_or_else(|| bad("hash"))
}

pub(crate) fn app(row: &PgRow) -> Result<App, StoreError> {
    let policy: String = get(row, "reuse_policy")?;
    Ok(App {
        id: get(row, "id")?,
        slug: get(row, "slug")?,
        client_id: get(row, "client_id")?,
        client_secret: Ciphertext {
            key_id: get(row, "secret_key_id")?,
            bytes: get(row, "secret_ct")?,
        },
        settings: AppSettings {
            name: get(row, "name")?,
            scopes: get(row, "scopes")?,
            webhook_url: get(row, "webhook_url")?,
            redirect_url: get(row, "redirect_url")?,
            verify_install: get(row, "verify_install")?,
            access_token_ttl_seconds: get(row, "access_token_ttl_seconds")?,
            refresh_grace_seconds: get(row, "refresh_grace_seconds")?,
            reuse_policy: ReusePolicy::parse(&policy).ok_or_else(|| bad("reuse_policy"))?,
        },
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

pub(crate) fn installation(row: &PgRow) -> Result<Installation, StoreError> {
    installation_as(
        row,
        [
            "id",
            "app_id",
            "app_slug",
            "org_slug",
            "status",
            "created_at",
            "deleted_at",
        ],
    )
}

/// The installation columns of [`TOKEN_WITH_INSTALLATION`], where they
/// are renamed beside the token's.
pub(crate) fn prefixed_installation(row: &PgRow) -> Result<Option<Installation>, StoreError> {
    let id: Option<uuid::Uuid> = get(row, "inst_id")?;
    if id.is_none() {
        return Ok(None);
    }
    installation_as(
        row,
        [
            "inst_id",
            "inst_app_id",
            "inst_app_slug",
            "inst_org_slug",
            "inst_status",
            "inst_created_at",
            "inst_deleted_at",
        ],
    )
    .map(Some)
}

fn installation_as(row: &PgRow, cols: [&str; 7]) -> Result<Installation, StoreError> {
    let [id, app_id, app_slug, org_slug, status, created_at, deleted_at] = cols;
    let status: String = get(row, status)?;
    Ok(Installation {
        id: get(row, id)?,
        app_id: get(row, app_id)?,
        app_slug: get(row, app_slug)?,
        org_slug: get(row, org_slug)?,
        status: InstallationStatus::parse(&status).ok_or_else(|| bad("status"))?,
        created_at: get(row, created_at)?,
        deleted_at: get(row, deleted_at)?,
    })
}

/// A pair and an installation in one statement: `$1` the pair's id, `$2`
/// the installation's (`NULL`: the pair's own). Either side may be missing.
pub(crate) const TOKEN_WITH_INSTALLATION: &str = concat!(
    "SELECT ",
    token_columns!(),
    ", i.id AS inst_id, i.app_id AS inst_app_id, a.slug AS inst_app_slug, \
    i.org_slug AS inst_org_slug, i.status AS inst_status, i.created_at AS inst_created_at, \
    i.deleted_at AS inst_deleted_at \
    FROM (SELECT $1::uuid AS pid, $2::uuid AS iid) k \
    LEFT JOIN (tokens t JOIN token_families f ON f.id = t.family_id) ON t.id = k.pid \
    LEFT JOIN (installations i JOIN apps a ON a.id = i.app_id) \
    ON i.id = COALESCE(k.iid, t.installation_id)"
);

pub(crate) fn grant(row: &PgRow) -> Result<Grant, StoreError> {
    Ok(Grant {
        code_hash: hash(row, "code_hash")?,
        installation_id: get(row, "installation_id")?,
        app_id: get(row, "app_id")?,
        expires_at: get(row, "expires_at")?,
        created_at: get(row, "created_at")?,
    })
}

/// `SELECT` of a token joined with its family, `WHERE $cond` (a literal):
/// the whole statement is one `&'static str`, built at compile time, so a
/// lookup on the refresh path formats nothing. `revoked_at` is the earlier
/// of the pair's own and the family's.
macro_rules! select_token {
    ($cond:literal) => {
        concat!(
            "SELECT ",
            $crate::rows::token_columns!(),
            " FROM tokens t JOIN token_families f ON f.id = t.family_id WHERE ",
            $cond
        )
    };
}

/// What [`token`] reads, from `tokens t` joined with `token_families f`.
macro_rules! token_columns {
    () => {
        "t.id, t.family_id, t.installation_id, t.app_id, \
         t.access_hash, t.refresh_hash, t.scopes, t.expires_at, t.refresh_expires_at, \
         f.expires_at AS family_expires_at, t.created_at, t.parent_id, t.successor_id, \
         t.retired_at, COALESCE(t.revoked_at, f.revoked_at) AS revoked_at"
    };
}
pub(crate) use select_token;
pub(crate) use token_columns;

pub(crate) fn token(row: &PgRow) -> Result<IssuedToken, StoreError> {
    Ok(IssuedToken {
        id: get(row, "id")?,
        family_id: get(row, "family_id")?,
        installation_id: get(row, "installation_id")?,
        app_id: get(row, "app_id")?,
        access_hash: hash(row, "access_hash")?,
        refresh_hash: hash(row, "refresh_hash")?,
        scopes: get(row, "scopes")?,
        expires_at: get(row, "expires_at")?,
        refresh_expires_at: get(row, "refresh_expires_at")?,
        family_expires_at: get(row, "family_expires_at")?,
        created_at: get(row, "created_at")?,
        parent_id: get(row, "parent_id")?,
        successor_id: get(row, "successor_id")?,
        retired_at: get(row, "retired_at")?,
        revoked_at: get(row, "revoked_at")?,
    })
}

pub(crate) fn event(row: &PgRow) -> Result<Event, StoreError> {
    Ok(Event {
        id: get(row, "id")?,
        event: NewEvent {
            kind: rotor_core::EventKind::parse(&get::<String>(row, "kind")?)
                .ok_or_else(|| bad("event kind"))?,
            installation_id: get(row, "installation_id")?,
            identity_id: get(row, "identity_id")?,
            exchange_type: get(row, "exchange_type")?,
            ip: get(row, "ip")?,
            actor: get(row, "actor")?,
            detail: get(row, "detail")?,
            created_at: get(row, "created_at")?,
        },
    })
}
