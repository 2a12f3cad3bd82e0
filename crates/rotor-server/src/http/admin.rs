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
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{Admin, IdPath, JsonObject};
use super::paging::{self, PageQuery, Paged};
use super::{wire, with_and_without_slash, AppState, NO_STORE};
use crate::service::{AppPatch, NewApp, WhileInstalled};
use crate::webhooks::payload::Actor;

/// `(status, no-store headers, JSON)`: an answer that carries a secret.
pub(super) type SecretAnswer<T> = (
    StatusCode,
    [(axum::http::HeaderName, &'static str); 2],
    Json<T>,
);

pub(super) fn routes(r: Router<AppState>) -> Router<AppState> {
    let r = with_and_without_slash(r, "/api/0/sentry-apps/", get(list_apps).post(create_app));
    let r = with_and_without_slash(
        r,
        "/api/0/sentry-apps/{slug}/",
        get(show_app).patch(update_app).delete(delete_app),
    );
    let r = with_and_without_slash(
        r,
        "/api/0/sentry-apps/{slug}/installations/",
        get(list_app_installations),
    );
    let r = with_and_without_slash(
        r,
        "/api/0/sentry-apps/{slug}/rotate-secret/",
        post(rotate_secret),
    );
    let r = with_and_without_slash(
        r,
        "/api/0/organizations/{org}/sentry-app-installations/",
        get(list_org_installations).post(create_installation),
    );
    let r = with_and_without_slash(
        r,
        "/api/0/sentry-apps/{slug}/webhook-requests/",
        get(webhook_requests),
    );
    let r = with_and_without_slash(
        r,
        "/api/0/sentry-apps/{slug}/webhook-requests/{id}/redeliver/",
        post(redeliver),
    );
    let r = with_and_without_slash(r, "/api/0/tokens/revoke/", post(revoke_token));
    with_and_without_slash(r, "/api/0/events/", get(list_events))
}

/// The operator's revocation of a token's family.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// Any access or refresh token of the family.
    token: String,
}

/// Revoke a token's family (operator)
///
/// Every pair descended from the same grant as the token stops working at
/// once. `revoked` is `false` when the token was unknown or already dead.
#[utoipa::path(post, path = "/api/0/tokens/revoke/", tag = "admin",
    request_body = RevokeBody,
    responses((status = 200, body = wire::Revoked)))]
pub(super) async fn revoke_token(
    _: Admin,
    State(st): State<AppState>,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<wire::Revoked>, ApiError> {
    let body = body?;
    body.required_str("token")
        .map_err(|f| ApiError::MissingFields(vec![f]))?;
    let b: RevokeBody = body.into_typed()?;
    let revoked = st.service.revoke_as_operator(&b.token).await?;
    Ok(Json(wire::Revoked { revoked }))
}

/// GET and DELETE of one installation (PUT is the app's, in `sentry`).
pub(super) fn installation_routes() -> MethodRouter<AppState> {
    get(show_installation).delete(delete_installation)
}

/// An app's settings: all of them to create one (`name` and `scopes`
/// required), any of them to change one (a `null` URL removes it).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppBody {
    /// Display name (1 to 64 characters); its slug is derived from it.
    name: Option<String>,
    /// Scopes every token of the app carries (from the server's scope list).
    scopes: Option<Vec<String>>,
    /// Where webhooks go (`https`, or `http` to an allowed network).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    webhook_url: Option<Option<String>>,
    /// Where an installation's browser is sent with its code.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    redirect_url: Option<Option<String>>,
    /// Installations wait for the app to verify them.
    verify_install: Option<bool>,
    /// Access-token lifetime (default 28800).
    access_token_ttl_seconds: Option<i64>,
    /// Grace window of a retired refresh token (default 60).
    refresh_grace_seconds: Option<i64>,
    /// `revoke_family` (default) or `reject`.
    #[schema(value_type = Option<wire::ReusePolicy>)]
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

/// Create an app
///
/// Answers the app with its client secret, shown this once.
#[utoipa::path(post, path = "/api/0/sentry-apps/", tag = "apps",
    request_body = AppBody,
    responses((status = 201, body = wire::CreatedApp), (status = 409, body = wire::ApiErrorBody)))]
pub(super) async fn create_app(
    _: Admin,
    State(st): State<AppState>,
    body: Result<JsonObject, ApiError>,
) -> Result<SecretAnswer<wire::CreatedApp>, ApiError> {
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
    let out = wire::CreatedApp {
        app: (&created.app).into(),
        client_secret: created.client_secret.expose().into(),
    };
    Ok((StatusCode::CREATED, NO_STORE, Json(out)))
}

/// A list's query of only `cursor` and `per_page` (or `limit`).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Where the page starts: the `cursor` of the previous page's `Link`.
    cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    per_page: Option<String>,
    /// An alias of `per_page`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
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

/// List apps
///
/// Ordered by slug, a page at a time (`Link` names the next).
#[utoipa::path(get, path = "/api/0/sentry-apps/", tag = "apps", params(ListQuery),
    responses((status = 200, body = Vec<wire::App>, headers(("Link" = String, description = "The next page")))))]
pub(super) async fn list_apps(
    _: Admin,
    State(st): State<AppState>,
    uri: Uri,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Paged<wire::App>, ApiError> {
    let page = query(q)?.page();
    let limit = page.limit()?;
    let apps = st.service.list_apps().await?;
    let (apps, next) = paging::page_sorted(apps, page.cursor.as_deref(), limit, |a| a.slug.clone());
    Ok((
        paging::link(uri.path(), &[], limit, next.as_deref()),
        Json(apps.iter().map(wire::App::from).collect()),
    ))
}

/// The query of an app's deletion.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteAppQuery {
    /// Uninstall every live installation first (default `false`).
    #[param(value_type = Option<bool>)]
    force: Option<String>,
}

/// Delete an app
///
/// `409` while it has live installations, unless `force=true`, which
/// uninstalls them first (their tokens stop at once). Its events stay.
#[utoipa::path(delete, path = "/api/0/sentry-apps/{slug}/", tag = "apps",
    params(("slug" = String, Path, description = "The app's slug"), DeleteAppQuery),
    responses((status = 204), (status = 404, body = wire::ApiErrorBody), (status = 409, body = wire::ApiErrorBody)))]
pub(super) async fn delete_app(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
    q: Result<Query<DeleteAppQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let live = match query(q)?.force.as_deref() {
        None | Some("false") | Some("0") => WhileInstalled::Refuse,
        Some("true") | Some("1") => WhileInstalled::Uninstall,
        Some(_) => return Err(ApiError::field("force", "Must be true or false.")),
    };
    st.service.delete_app(&slug, live).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_installations_by(
    st: &AppState,
    uri: &Uri,
    page: PageQuery,
    filter: InstallationFilter,
) -> Result<Paged<wire::Installation>, ApiError> {
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
        Json(list.iter().map(wire::Installation::from).collect()),
    ))
}

/// List an organization's installations
///
/// Live installations, newest first, a page at a time.
#[utoipa::path(get, path = "/api/0/organizations/{org}/sentry-app-installations/", tag = "installations",
    params(("org" = String, Path, description = "The organization's slug"), ListQuery),
    responses((status = 200, body = Vec<wire::Installation>, headers(("Link" = String, description = "The next page")))))]
pub(super) async fn list_org_installations(
    _: Admin,
    State(st): State<AppState>,
    Path(org): Path<String>,
    uri: Uri,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Paged<wire::Installation>, ApiError> {
    let page = query(q)?.page();
    let filter = InstallationFilter {
        org_slug: Some(org),
        ..Default::default()
    };
    list_installations_by(&st, &uri, page, filter).await
}

/// List an app's installations
///
/// Live installations, newest first, a page at a time.
#[utoipa::path(get, path = "/api/0/sentry-apps/{slug}/installations/", tag = "installations",
    params(("slug" = String, Path, description = "The app's slug"), ListQuery),
    responses((status = 200, body = Vec<wire::Installation>, headers(("Link" = String, description = "The next page"))),
        (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn list_app_installations(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Paged<wire::Installation>, ApiError> {
    let page = query(q)?.page();
    let app = st.service.app(&slug).await?;
    let filter = InstallationFilter {
        app_id: Some(app.id),
        ..Default::default()
    };
    list_installations_by(&st, &uri, page, filter).await
}

/// Show an app
#[utoipa::path(get, path = "/api/0/sentry-apps/{slug}/", tag = "apps",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = wire::App), (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn show_app(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<wire::App>, ApiError> {
    Ok(Json((&st.service.app(&slug).await?).into()))
}

/// Change an app's settings
///
/// Only the fields given change; its slug and client id stay.
#[utoipa::path(patch, path = "/api/0/sentry-apps/{slug}/", tag = "apps",
    params(("slug" = String, Path, description = "The app's slug")),
    request_body = AppBody,
    responses((status = 200, body = wire::App), (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn update_app(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<wire::App>, ApiError> {
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
    Ok(Json((&app).into()))
}

/// Rotate an app's client secret
///
/// The old secret stops working at once; the new one is shown this once.
#[utoipa::path(post, path = "/api/0/sentry-apps/{slug}/rotate-secret/", tag = "apps",
    params(("slug" = String, Path, description = "The app's slug")),
    responses((status = 200, body = wire::ClientSecret), (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn rotate_secret(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
) -> Result<SecretAnswer<wire::ClientSecret>, ApiError> {
    let secret = st.service.rotate_secret(&slug).await?;
    Ok((
        StatusCode::OK,
        NO_STORE,
        Json(wire::ClientSecret {
            client_secret: secret.expose().into(),
        }),
    ))
}

/// An installation of an app into the organization of the path.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallBody {
    /// The app's slug.
    slug: String,
    /// Who installed it (sent to the app in the `installation.created` webhook).
    actor: Option<ActorBody>,
}

/// Who installed it, as the platform knows them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorBody {
    /// The user's id: a non-empty string (at most 200 characters) or a number.
    #[schema(value_type = String)]
    id: Value,
    /// The user's name, 1 to 200 characters.
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

/// Install an app into an organization
///
/// Answers the installation with its single-use grant code (10 minutes),
/// and queues the app's `installation.created` webhook.
#[utoipa::path(post, path = "/api/0/organizations/{org}/sentry-app-installations/", tag = "installations",
    params(("org" = String, Path, description = "The organization's slug")),
    request_body = InstallBody,
    responses((status = 201, body = wire::CreatedInstallation), (status = 404, body = wire::ApiErrorBody),
        (status = 409, body = wire::ApiErrorBody)))]
pub(super) async fn create_installation(
    _: Admin,
    State(st): State<AppState>,
    Path(org): Path<String>,
    body: Result<JsonObject, ApiError>,
) -> Result<SecretAnswer<wire::CreatedInstallation>, ApiError> {
    let body = body?;
    body.required_str("slug")
        .map_err(|f| ApiError::MissingFields(vec![f]))?;
    let b: InstallBody = body.into_typed()?;
    let actor = b.actor.map(ActorBody::into_actor).transpose()?;
    let created = st.service.create_installation(&org, &b.slug, actor).await?;
    let out = wire::CreatedInstallation {
        installation: (&created.installation).into(),
        code: created.code.expose().into(),
        redirect_to: created.redirect_to,
    };
    Ok((StatusCode::CREATED, NO_STORE, Json(out)))
}

/// Show an installation (operator)
#[utoipa::path(get, path = "/api/0/sentry-app-installations/{uuid}/", tag = "installations",
    params(("uuid" = Uuid, Path, description = "The installation's id")),
    responses((status = 200, body = wire::Installation), (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn show_installation(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<wire::Installation>, ApiError> {
    Ok(Json((&st.service.installation(id).await?).into()))
}

/// Uninstall (operator)
///
/// Every token of the installation stops at once; the app gets its
/// `installation.deleted` webhook.
#[utoipa::path(delete, path = "/api/0/sentry-app-installations/{uuid}/", tag = "installations",
    params(("uuid" = Uuid, Path, description = "The installation's id")),
    responses((status = 204), (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn delete_installation(
    _: Admin,
    State(st): State<AppState>,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    st.service.delete_installation(id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The filters of the audit log.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct EventQuery {
    /// Only this installation's events.
    #[param(value_type = Option<Uuid>)]
    installation: Option<String>,
    /// Only this upstream identity's events.
    identity: Option<String>,
    /// Only events of this kind.
    #[serde(rename = "type")]
    #[param(value_type = Option<wire::EventType>)]
    kind: Option<String>,
    /// Where the page starts: the `cursor` of the previous page's `Link`.
    cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    per_page: Option<String>,
    /// An alias of `per_page`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// Read the audit log
///
/// Newest first, a page at a time; filters are kept in the `Link`.
#[utoipa::path(get, path = "/api/0/events/", tag = "admin", params(EventQuery),
    responses((status = 200, body = Vec<wire::Event>, headers(("Link" = String, description = "The next page")))))]
pub(super) async fn list_events(
    _: Admin,
    State(st): State<AppState>,
    uri: Uri,
    q: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Paged<wire::Event>, ApiError> {
    let q = query(q)?;
    let installation_id = q
        .installation
        .as_deref()
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| ApiError::field("installation", "Must be a UUID."))?;
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            rotor_core::EventKind::parse(k).ok_or_else(|| {
                ApiError::field(
                    "type",
                    format!("Must be one of {}.", rotor_core::EventKind::names()),
                )
            })
        })
        .transpose()?;
    let page = PageQuery::new(q.cursor, q.per_page, q.limit);
    let limit = page.limit()?;
    let events = st
        .service
        .events(EventFilter {
            installation_id,
            identity_id: q.identity.clone(),
            kind,
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
        Json(events.iter().map(wire::Event::from).collect()),
    ))
}

/// The filters of an app's delivery log.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct WebhookQuery {
    /// Only deliveries in this state.
    #[param(value_type = Option<wire::DeliveryStatus>)]
    status: Option<String>,
    /// Where the page starts: the `cursor` of the previous page's `Link`.
    cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    per_page: Option<String>,
    /// An alias of `per_page`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// An app's webhook deliveries
///
/// Newest first, a page at a time; never a delivery's body (it may carry a
/// grant code).
#[utoipa::path(get, path = "/api/0/sentry-apps/{slug}/webhook-requests/", tag = "webhooks",
    params(("slug" = String, Path, description = "The app's slug"), WebhookQuery),
    responses((status = 200, body = Vec<wire::Delivery>, headers(("Link" = String, description = "The next page"))),
        (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn webhook_requests(
    _: Admin,
    State(st): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    q: Result<Query<WebhookQuery>, QueryRejection>,
) -> Result<Paged<wire::Delivery>, ApiError> {
    let q = query(q)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::field(
                    "status",
                    "Must be \"pending\", \"delivered\" or \"failed\".",
                )
            })
        })
        .transpose()?;
    let page = PageQuery::new(q.cursor, q.per_page, q.limit);
    let limit = page.limit()?;
    let list = st
        .service
        .webhook_requests(&slug, status, page.cursor()?, limit + 1)
        .await?;
    let (list, next) = paging::cut(list, limit, |d| d.id.to_string());
    Ok((
        paging::link(uri.path(), &[("status", q.status)], limit, next.as_deref()),
        Json(list.iter().map(wire::Delivery::from).collect()),
    ))
}

/// Deliver a webhook again
///
/// Queues the delivery again with the same body and a fresh signature.
#[utoipa::path(post, path = "/api/0/sentry-apps/{slug}/webhook-requests/{id}/redeliver/", tag = "webhooks",
    params(("slug" = String, Path, description = "The app's slug"),
        ("id" = Uuid, Path, description = "The delivery's id")),
    responses((status = 202, body = wire::Redelivery), (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn redeliver(
    _: Admin,
    State(st): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<wire::Redelivery>), ApiError> {
    let id =
        Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("Webhook request not found".into()))?;
    st.service.redeliver(&slug, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(wire::Redelivery {
            id,
            status: wire::DeliveryStatus::Pending,
        }),
    ))
}
