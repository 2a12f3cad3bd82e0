//! The operator's admin API: apps, installations and events. Every handler
//! takes the [`Admin`] extractor, so the API is closed without the admin token.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::Uri;
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use rotor_core::{DeliveryStatus, EventFilter, InstallationFilter, ReusePolicy};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{Admin, IdPath, JsonObject};
use super::paging::{self, limit_param, PageQuery, Paged};
use super::{both, wire, AppState, NO_STORE};
use crate::service::{AppPatch, NewApp};
use crate::webhooks::payload::Actor;

/// `(status, no-store headers, JSON)`: an answer that carries a secret.
type SecretAnswer = (
    StatusCode,
    [(axum::http::HeaderName, &'static str); 2],
    Json<Value>,
);

pub(super) fn routes(r: Router<AppState>) -> Router<AppState> {
    let r = both(r, "/api/0/sentry-apps/", get(list_apps).post(create_app));
    let r = both(
        r,
        "/api/0/sentry-apps/{slug}/",
        get(show_app).patch(update_app).delete(delete_app),
    );
    let r = both(
        r,
        "/api/0/sentry-apps/{slug}/installations/",
        get(list_app_installations),
    );
    let r = both(
        r,
        "/api/0/sentry-apps/{slug}/rotate-secret/",
        post(rotate_secret),
    );
    let r = both(
        r,
        "/api/0/organizations/{org}/sentry-app-installations/",
        get(list_org_installations).post(create_installation),
    );
    let r = both(
        r,
        "/api/0/sentry-apps/{slug}/webhook-requests/",
        get(webhook_requests),
    );
    let r = both(
        r,
        "/api/0/sentry-apps/{slug}/webhook-requests/{id}/redeliver/",
        post(redeliver),
    );
    let r = both(r, "/api/0/tokens/revoke/", post(revoke_token));
    both(r, "/api/0/events/", get(list_events))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    token: String,
}

/// The operator revokes the family of any access or refresh token: every
/// pair descended from the same grant stops working at once.
async fn revoke_token(
    _: Admin,
    State(st): State<AppState>,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    body.required_str("token")
        .map_err(|f| ApiError::MissingFields(vec![f]))?;
    let b: RevokeBody = body.into_typed()?;
    let revoked = st.service.revoke_as_operator(&b.token).await?;
    Ok(Json(json!({ "revoked": revoked })))
}

/// GET and DELETE of one installation (PUT is the app's, in `sentry`).
pub(super) fn installation_routes() -> MethodRouter<AppState> {
    get(show_installation).delete(delete_installation)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AppBody {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    webhook_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    redirect_url: Option<Option<String>>,
    verify_install: Option<bool>,
    access_token_ttl_seconds: Option<i64>,
    refresh_grace_seconds: Option<i64>,
    reuse_policy: Option<String>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn policy(p: Option<String>) -> Result<Option<ReusePolicy>, ApiError> {
    p.map(|p| {
        ReusePolicy::parse(&p).ok_or_else(|| {
            ApiError::field("reusePolicy", "Must be \"revoke_family\" or \"reject\".")
        })
    })
    .transpose()
}

async fn create_app(
    _: Admin,
    State(st): State<AppState>,
    body: Result<JsonObject, ApiError>,
) -> Result<SecretAnswer, ApiError> {
    let body = body?;
    body.require_present(&["name", "scopes"])?;
    let b: AppBody = body.into_typed()?;
    let created = st
        .service
        .create_app(NewApp {
            name: b.name.unwrap_or_default(),
            scopes: b.scopes.unwrap_or_default(),
            webhook_url: b.webhook_url.flatten(),
            redirect_url: b.redirect_url.flatten(),
            verify_install: b.verify_install.unwrap_or(false),
            access_token_ttl_seconds: b.access_token_ttl_seconds,
            refresh_grace_seconds: b.refresh_grace_seconds,
            reuse_policy: policy(b.reuse_policy)?,
        })
        .await?;
    let mut out = wire::app(&created.app);
    out["clientSecret"] = json!(created.client_secret.expose());
    Ok((StatusCode::CREATED, NO_STORE, Json(out)))
}

/// A list's query of only `cursor` and `per_page` (or `limit`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    cursor: Option<String>,
    per_page: Option<String>,
    limit: Option<String>,
}

impl ListQuery {
    pub(super) fn page(self) -> PageQuery {
        PageQuery::new(self.cursor, self.per_page, self.limit)
    }
}

/// A query string, or `400` naming what is wrong (an unknown parameter
/// among them).
pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("Invalid query: {}", e.body_text())))
}

async fn list_apps(
    _: Admin,
    State(st): State<AppState>,
    uri: Uri,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Paged, ApiError> {
    let page = query(q)?.page();
    let limit = page.limit()?;
    let apps = st.service.list_apps().await?;
    let (apps, next) = paging::page_sorted(apps, page.cursor.as_deref(), limit, |a| a.slug.clone());
    Ok((
        paging::link(uri.path(), &[], limit, next.as_deref()),
        Json(Value::Array(apps.iter().map(wire::app).collect())),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteAppQuery {
    force: Option<String>,
}

async fn delete_app(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
    q: Result<Query<DeleteAppQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let force = match query(q)?.force.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(ApiError::field("force", "Must be true or false.")),
    };
    st.service.delete_app(&slug, force).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_installations_by(
    st: &AppState,
    uri: &Uri,
    page: PageQuery,
    filter: InstallationFilter,
) -> Result<Paged, ApiError> {
    let limit = page.limit()?;
    let before = page
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            InstallationFilter::parse_cursor(c).ok_or_else(|| {
                ApiError::field("cursor", "Invalid cursor: use the one a Link header gave.")
            })
        })
        .transpose()?;
    let list = st
        .service
        .list_installations(InstallationFilter {
            before,
            limit: limit + 1,
            ..filter
        })
        .await?;
    let (list, next) = paging::cut(list, limit, InstallationFilter::cursor_after);
    Ok((
        paging::link(uri.path(), &[], limit, next.as_deref()),
        Json(Value::Array(list.iter().map(wire::installation).collect())),
    ))
}

async fn list_org_installations(
    _: Admin,
    State(st): State<AppState>,
    Path(org): Path<String>,
    uri: Uri,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Paged, ApiError> {
    let page = query(q)?.page();
    let filter = InstallationFilter {
        org_slug: Some(org),
        ..Default::default()
    };
    list_installations_by(&st, &uri, page, filter).await
}

async fn list_app_installations(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Paged, ApiError> {
    let page = query(q)?.page();
    let app = st.service.app(&slug).await?;
    let filter = InstallationFilter {
        app_id: Some(app.id),
        ..Default::default()
    };
    list_installations_by(&st, &uri, page, filter).await
}

async fn show_app(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(wire::app(&st.service.app(&slug).await?)))
}

async fn update_app(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let b: AppBody = body?.into_typed()?;
    let app = st
        .service
        .update_app(
            &slug,
            AppPatch {
                name: b.name,
                scopes: b.scopes,
                webhook_url: b.webhook_url,
                redirect_url: b.redirect_url,
                verify_install: b.verify_install,
                access_token_ttl_seconds: b.access_token_ttl_seconds,
                refresh_grace_seconds: b.refresh_grace_seconds,
                reuse_policy: policy(b.reuse_policy)?,
            },
        )
        .await?;
    Ok(Json(wire::app(&app)))
}

async fn rotate_secret(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
) -> Result<SecretAnswer, ApiError> {
    let secret = st.service.rotate_secret(&slug).await?;
    Ok((
        StatusCode::OK,
        NO_STORE,
        Json(json!({ "clientSecret": secret.expose() })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallBody {
    slug: String,
    actor: Option<ActorBody>,
}

/// Who installed it, as the platform knows them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActorBody {
    id: Value,
    name: String,
}

impl ActorBody {
    fn into_actor(self) -> Result<Actor, ApiError> {
        let id = match self.id {
            Value::String(s) if !s.is_empty() && s.len() <= 200 => s,
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(ApiError::field(
                    "actor",
                    "actor.id must be a non-empty string (at most 200 characters) or a number.",
                ))
            }
        };
        if self.name.is_empty() || self.name.len() > 200 {
            return Err(ApiError::field(
                "actor",
                "actor.name must be 1 to 200 characters.",
            ));
        }
        Ok(Actor::user(id, self.name))
    }
}

async fn create_installation(
    _: Admin,
    State(st): State<AppState>,
    Path(org): Path<String>,
    body: Result<JsonObject, ApiError>,
) -> Result<SecretAnswer, ApiError> {
    let body = body?;
    body.required_str("slug")
        .map_err(|f| ApiError::MissingFields(vec![f]))?;
    let b: InstallBody = body.into_typed()?;
    let actor = b.actor.map(ActorBody::into_actor).transpose()?;
    let created = st.service.create_installation(&org, &b.slug, actor).await?;
    let mut out = wire::installation(&created.installation);
    out["code"] = json!(created.code.expose());
    if let Some(to) = created.redirect_to {
        out["redirectTo"] = json!(to);
    }
    Ok((StatusCode::CREATED, NO_STORE, Json(out)))
}

async fn show_installation(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(wire::installation(
        &st.service.installation(&id.to_string()).await?,
    )))
}

async fn delete_installation(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    st.service
        .delete_installation(&id.to_string(), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    installation: Option<String>,
    identity: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    cursor: Option<String>,
    per_page: Option<String>,
    limit: Option<String>,
}

async fn list_events(
    _: Admin,
    State(st): State<AppState>,
    uri: Uri,
    q: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Paged, ApiError> {
    let q = query(q)?;
    let installation_id = q
        .installation
        .as_deref()
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| ApiError::field("installation", "Must be a UUID."))?;
    let page = PageQuery::new(q.cursor, q.per_page, q.limit);
    let limit = page.limit()?;
    let events = st
        .service
        .events(EventFilter {
            installation_id,
            identity_id: q.identity.clone(),
            kind: q.kind.clone(),
            limit: limit + 1,
            before: page.cursor()?,
        })
        .await?;
    let (events, next) = paging::cut(events, limit, |e| e.id.to_string());
    let keep = [
        ("installation", q.installation),
        ("identity", q.identity),
        ("type", q.kind),
    ];
    Ok((
        paging::link(uri.path(), &keep, limit, next.as_deref()),
        Json(Value::Array(events.iter().map(wire::event).collect())),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookQuery {
    status: Option<String>,
    limit: Option<String>,
}

async fn webhook_requests(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
    q: Result<Query<WebhookQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let status = q
        .status
        .map(|s| {
            DeliveryStatus::parse(&s).ok_or_else(|| {
                ApiError::field(
                    "status",
                    "Must be \"pending\", \"delivered\" or \"failed\".",
                )
            })
        })
        .transpose()?;
    let limit = limit_param(q.limit.as_deref())?;
    let list = st.service.webhook_requests(&slug, status, limit).await?;
    Ok(Json(Value::Array(
        list.iter().map(wire::delivery).collect(),
    )))
}

async fn redeliver(
    _: Admin,
    State(st): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id =
        Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("Webhook request not found".into()))?;
    st.service.redeliver(&slug, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "status": "pending" })),
    ))
}
