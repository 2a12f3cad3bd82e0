//! The operator's upstream routes: providers and identities, and the token
//! route platform services call for a valid provider access token.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::admin::{query, ListQuery};
use super::error::ApiError;
use super::extract::{Admin, IdPath, JsonObject};
use super::paging::{self, PageQuery, Paged};
use super::{wire, with_and_without_slash, AppState};
use rotor_core::{IdentityFilter, IdentityStatus, Secret};

use crate::service::upstream::{IdentityPatch, NewIdentity, Refresh, UpstreamError};

pub(super) fn routes(r: Router<AppState>) -> Router<AppState> {
    let r = with_and_without_slash(
        r,
        "/api/0/upstream/providers/",
        get(list_providers).post(create_provider),
    );
    let r = with_and_without_slash(
        r,
        "/api/0/upstream/identities/",
        get(list_identities).post(create_identity),
    );
    let r = with_and_without_slash(
        r,
        "/api/0/upstream/identities/{id}/",
        get(show_identity)
            .patch(reauthorize_identity)
            .delete(delete_identity),
    );
    let r = with_and_without_slash(r, "/api/0/upstream/identities/{id}/token/", post(token));
    with_and_without_slash(
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
            e @ UpstreamError::TooShort { .. } => ApiError::field("minValidSeconds", e.to_string()),
            UpstreamError::Service(s) => s.into(),
        }
    }
}

/// A new upstream provider.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderBody {
    /// The provider's key (its id in identities).
    key: String,
    /// `oauth2`, `azure_devops`, `microsoft`, `github_app`, `slack`,
    /// `google`, `atlassian` or `app_store_connect`.
    kind: String,
    /// Settings of the kind; secrets in it (client secret, private key) are
    /// stored encrypted and never shown again.
    #[schema(value_type = Object)]
    config: Value,
}

/// Add an upstream provider
#[utoipa::path(post, path = "/api/0/upstream/providers/", tag = "upstream",
    request_body = ProviderBody,
    responses((status = 201, body = wire::Provider), (status = 409, body = wire::ApiErrorBody)))]
pub(super) async fn create_provider(
    _: Admin,
    State(st): State<AppState>,
    body: Result<JsonObject, ApiError>,
) -> Result<(StatusCode, Json<wire::Provider>), ApiError> {
    let body = body?;
    body.require_present(&["key", "kind", "config"])?;
    for f in ["key", "kind"] {
        body.required_str(f)
            .map_err(|f| ApiError::field(f, "Must be a non-empty string."))?;
    }
    let b: ProviderBody = body.into_typed()?;
    let p = st
        .service
        .create_provider(&b.key, &b.kind, &b.config)
        .await?;
    Ok((StatusCode::CREATED, Json((&p).into())))
}

/// List upstream providers
///
/// Ordered by key, a page at a time.
#[utoipa::path(get, path = "/api/0/upstream/providers/", tag = "upstream", params(ListQuery),
    responses((status = 200, body = Vec<wire::Provider>, headers(("Link" = String, description = "The next page")))))]
pub(super) async fn list_providers(
    _: Admin,
    State(st): State<AppState>,
    uri: Uri,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Paged<wire::Provider>, ApiError> {
    let page = query(q)?.page();
    let limit = page.limit()?;
    let list = st.service.list_providers().await?;
    let (list, next) = paging::page_sorted(list, page.cursor.as_deref(), limit, |p| p.key.clone());
    Ok((
        paging::link(uri.path(), &[], limit, next.as_deref()),
        Json(list.iter().map(wire::Provider::from).collect()),
    ))
}

/// The filters of the identities list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct IdentitiesQuery {
    /// Only identities in this state.
    #[param(value_type = Option<wire::IdentityStatus>)]
    status: Option<String>,
    /// Only identities at this provider (its key).
    provider: Option<String>,
    /// Where the page starts: the `cursor` of the previous page's `Link`.
    cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    per_page: Option<String>,
    /// An alias of `per_page`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// A new upstream identity: an account at a provider with its tokens.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityBody {
    /// The provider's key.
    provider: String,
    /// The account's id at the provider.
    external_id: String,
    /// Scopes granted.
    #[serde(default)]
    scopes: Vec<String>,
    /// The current access token, if any (stored encrypted).
    access_token: Option<String>,
    /// The refresh token (stored encrypted); kinds that mint tokens from
    /// the provider's own key need none.
    refresh_token: Option<String>,
    /// When the access token expires.
    expires_at: Option<DateTime<Utc>>,
    /// The platform's installation it belongs to: a string or a number.
    #[schema(value_type = Option<String>)]
    installation_id: Option<Value>,
}

/// Add an upstream identity
#[utoipa::path(post, path = "/api/0/upstream/identities/", tag = "upstream",
    request_body = IdentityBody,
    responses((status = 201, body = wire::CreatedIdentity), (status = 404, body = wire::ApiErrorBody),
        (status = 409, body = wire::ApiErrorBody)))]
pub(super) async fn create_identity(
    _: Admin,
    State(st): State<AppState>,
    body: Result<JsonObject, ApiError>,
) -> Result<(StatusCode, Json<wire::CreatedIdentity>), ApiError> {
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
    Ok((StatusCode::CREATED, Json((&i).into())))
}

/// List upstream identities
///
/// Ordered by id, a page at a time; filters are kept in the `Link`.
#[utoipa::path(get, path = "/api/0/upstream/identities/", tag = "upstream", params(IdentitiesQuery),
    responses((status = 200, body = Vec<wire::Identity>, headers(("Link" = String, description = "The next page")))))]
pub(super) async fn list_identities(
    _: Admin,
    State(st): State<AppState>,
    uri: Uri,
    q: Result<Query<IdentitiesQuery>, QueryRejection>,
) -> Result<Paged<wire::Identity>, ApiError> {
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
    let list = st
        .service
        .identities_page(&IdentityFilter {
            status,
            provider: q.provider.clone(),
            after: page.cursor()?,
            limit: limit + 1,
        })
        .await?;
    let (list, next) = paging::cut(list, limit, |i| i.id.to_string());
    let keep = [("status", q.status), ("provider", q.provider)];
    Ok((
        paging::link(uri.path(), &keep, limit, next.as_deref()),
        Json(list.iter().map(wire::Identity::from).collect()),
    ))
}

/// Show an upstream identity (never its tokens)
#[utoipa::path(get, path = "/api/0/upstream/identities/{id}/", tag = "upstream",
    params(("id" = Uuid, Path, description = "The identity's id")),
    responses((status = 200, body = wire::Identity), (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn show_identity(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<wire::Identity>, ApiError> {
    Ok(Json((&st.service.identity(id).await?).into()))
}

/// New credentials for an identity (re-authorization).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityPatchBody {
    /// A new access token.
    access_token: Option<String>,
    /// A new refresh token.
    refresh_token: Option<String>,
    /// When the new access token expires.
    expires_at: Option<DateTime<Utc>>,
    /// The scopes now granted.
    scopes: Option<Vec<String>>,
}

/// Re-authorize an upstream identity
///
/// New credentials, same id, `active` again. At least one of
/// `refreshToken` and `accessToken` is required.
#[utoipa::path(patch, path = "/api/0/upstream/identities/{id}/", tag = "upstream",
    params(("id" = Uuid, Path, description = "The identity's id")),
    request_body = IdentityPatchBody,
    responses((status = 200, body = wire::Identity), (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn reauthorize_identity(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<wire::Identity>, ApiError> {
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
            id,
            IdentityPatch {
                access_token: nonempty(b.access_token, "accessToken")?,
                refresh_token: nonempty(b.refresh_token, "refreshToken")?,
                expires_at: b.expires_at,
                scopes: b.scopes,
            },
        )
        .await?;
    Ok(Json((&i).into()))
}

/// Delete an upstream identity
#[utoipa::path(delete, path = "/api/0/upstream/identities/{id}/", tag = "upstream",
    params(("id" = Uuid, Path, description = "The identity's id")),
    responses((status = 204), (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn delete_identity(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    st.service.delete_identity(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long the token handed out must stay valid.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct TokenQuery {
    /// Seconds the token must still be valid, 0 to 86400 (default 60);
    /// a token closer to expiry is refreshed first.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 86400)]
    min_valid_seconds: Option<String>,
}

/// A valid provider access token
///
/// Refreshes it first when it expires within `minValidSeconds`; however
/// many callers ask at once, the provider sees one refresh. `409` when the
/// identity needs re-authorization; `503` when the provider is unreachable
/// and the stored token will not do.
#[utoipa::path(post, path = "/api/0/upstream/identities/{id}/token/", tag = "upstream",
    params(("id" = Uuid, Path, description = "The identity's id"), TokenQuery),
    responses((status = 200, body = wire::UpstreamToken), (status = 404, body = wire::ApiErrorBody),
        (status = 409, body = wire::ApiErrorBody)))]
pub(super) async fn token(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<wire::UpstreamToken>, ApiError> {
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
        .upstream_token(id, Duration::seconds(min_valid), Refresh::IfDue)
        .await?;
    Ok(Json((&t).into()))
}

/// Refresh an upstream identity now
///
/// Whatever the token's expiry; answers the new token.
#[utoipa::path(post, path = "/api/0/upstream/identities/{id}/refresh/", tag = "upstream",
    params(("id" = Uuid, Path, description = "The identity's id")),
    responses((status = 200, body = wire::UpstreamToken), (status = 404, body = wire::ApiErrorBody),
        (status = 409, body = wire::ApiErrorBody)))]
pub(super) async fn force_refresh(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<wire::UpstreamToken>, ApiError> {
    let t = st
        .service
        .upstream_token(id, Duration::zero(), Refresh::Now)
        .await?;
    Ok(Json((&t).into()))
}
