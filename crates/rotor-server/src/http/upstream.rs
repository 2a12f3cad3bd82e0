//! The operator's upstream routes: providers and identities, and the token
//! route platform services call for a valid provider access token.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::{query, ListQuery};
use super::error::ApiError;
use super::extract::{Admin, IdPath, JsonObject};
use super::paging::{self, PageQuery, Paged};
use super::{both, wire, AppState};
use rotor_core::{IdentityStatus, Secret};
use uuid::Uuid;

use crate::service::upstream::{IdentityPatch, NewIdentity, UpstreamError};

pub(super) fn routes(r: Router<AppState>) -> Router<AppState> {
    let r = both(
        r,
        "/api/0/upstream/providers/",
        get(list_providers).post(create_provider),
    );
    let r = both(
        r,
        "/api/0/upstream/identities/",
        get(list_identities).post(create_identity),
    );
    let r = both(
        r,
        "/api/0/upstream/identities/{id}/",
        get(show_identity)
            .patch(reauthorize_identity)
            .delete(delete_identity),
    );
    let r = both(r, "/api/0/upstream/identities/{id}/token/", post(token));
    both(
        r,
        "/api/0/upstream/identities/{id}/refresh/",
        post(force_refresh),
    )
}

impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Invalid(m) => ApiError::Conflict(m),
            UpstreamError::Unavailable(m) => ApiError::ProviderUnavailable(m),
            UpstreamError::Service(s) => s.into(),
        }
    }
}

async fn create_provider(
    _: Admin,
    State(st): State<AppState>,
    body: Result<JsonObject, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body?;
    body.require_present(&["key", "kind", "config"])?;
    let key = body
        .required_str("key")
        .map_err(|f| ApiError::field(f, "Must be a string."))?;
    let kind = body
        .required_str("kind")
        .map_err(|f| ApiError::field(f, "Must be a string."))?;
    let p = st
        .service
        .create_provider(key, kind, &body.0["config"])
        .await?;
    Ok((StatusCode::CREATED, Json(wire::provider(&p))))
}

async fn list_providers(
    _: Admin,
    State(st): State<AppState>,
    uri: Uri,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Paged, ApiError> {
    let page = query(q)?.page();
    let limit = page.limit()?;
    let list = st.service.list_providers().await?;
    let (list, next) = paging::page_sorted(list, page.cursor.as_deref(), limit, |p| p.key.clone());
    Ok((
        paging::link(uri.path(), &[], limit, next.as_deref()),
        Json(Value::Array(list.iter().map(wire::provider).collect())),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentitiesQuery {
    status: Option<String>,
    provider: Option<String>,
    cursor: Option<String>,
    per_page: Option<String>,
    limit: Option<String>,
}

/// Most identities one list reads; the page is cut from them in id order.
const IDENTITIES_READ: u32 = 100_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdentityBody {
    provider: String,
    external_id: String,
    #[serde(default)]
    scopes: Vec<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    installation_id: Option<Value>,
}

async fn create_identity(
    _: Admin,
    State(st): State<AppState>,
    body: Result<JsonObject, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body?;
    body.require_present(&["provider", "externalId"])?;
    let b: IdentityBody = body.into_typed()?;
    let installation_id = match b.installation_id {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(_) => {
            return Err(ApiError::field(
                "installationId",
                "Must be a number or a string.",
            ))
        }
    };
    let i = st
        .service
        .create_identity(NewIdentity {
            provider: b.provider,
            external_id: b.external_id,
            scopes: b.scopes,
            access_token: b.access_token.map(Secret::new),
            refresh_token: b.refresh_token.map(Secret::new),
            expires_at: b.expires_at,
            installation_id,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": i.id, "provider": i.provider, "externalId": i.external_id,
                    "status": i.status.as_str(), "expiresAt": i.expires_at.map(wire::time)}),
        ),
    ))
}

async fn list_identities(
    _: Admin,
    State(st): State<AppState>,
    uri: Uri,
    q: Result<Query<IdentitiesQuery>, QueryRejection>,
) -> Result<Paged, ApiError> {
    let q = query(q)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            IdentityStatus::parse(s)
                .ok_or_else(|| ApiError::field("status", "Must be \"active\" or \"invalid\"."))
        })
        .transpose()?;
    let page = PageQuery::new(q.cursor, q.per_page, q.limit);
    let limit = page.limit()?;
    let after: Option<Uuid> = page.cursor()?;
    let mut list = st.service.list_identities(IDENTITIES_READ).await?;
    list.retain(|i| {
        status.is_none_or(|s| i.status == s)
            && q.provider.as_deref().is_none_or(|p| i.provider == p)
    });
    let (list, next) =
        paging::page_sorted(list, after.map(|a| a.to_string()).as_deref(), limit, |i| {
            i.id.to_string()
        });
    let keep = [("status", q.status), ("provider", q.provider)];
    Ok((
        paging::link(uri.path(), &keep, limit, next.as_deref()),
        Json(Value::Array(list.iter().map(wire::identity).collect())),
    ))
}

async fn show_identity(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(wire::identity(
        &st.service.identity(&id.to_string()).await?,
    )))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdentityPatchBody {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    scopes: Option<Vec<String>>,
}

/// Re-authorization: new credentials, same id, `active` again.
async fn reauthorize_identity(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let b: IdentityPatchBody = body?.into_typed()?;
    if b.access_token.is_none() && b.refresh_token.is_none() {
        return Err(ApiError::field(
            "refreshToken",
            "Give a new refreshToken or accessToken to re-authorize the identity.",
        ));
    }
    let nonempty = |v: Option<String>, field: &str| match v {
        Some(t) if t.is_empty() => Err(ApiError::field(field, "Must not be empty.")),
        other => Ok(other.map(Secret::new)),
    };
    let i = st
        .service
        .reauthorize_identity(
            &id.to_string(),
            IdentityPatch {
                access_token: nonempty(b.access_token, "accessToken")?,
                refresh_token: nonempty(b.refresh_token, "refreshToken")?,
                expires_at: b.expires_at,
                scopes: b.scopes,
            },
        )
        .await?;
    Ok(Json(wire::identity(&i)))
}

async fn delete_identity(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    st.service.delete_identity(&id.to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenQuery {
    min_valid_seconds: Option<String>,
}

async fn token(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(format!("Invalid query: {e}")))?;
    let min_valid = match q.min_valid_seconds {
        None => 60,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (0..=86_400).contains(&n) => n,
            _ => {
                return Err(ApiError::field(
                    "minValidSeconds",
                    "Must be a whole number from 0 to 86400.",
                ))
            }
        },
    };
    let t = st
        .service
        .upstream_token(&id.to_string(), Duration::seconds(min_valid), false)
        .await?;
    Ok(Json(wire::upstream_token(&t)))
}

async fn force_refresh(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let t = st
        .service
        .upstream_token(&id.to_string(), Duration::zero(), true)
        .await?;
    Ok(Json(wire::upstream_token(&t)))
}
