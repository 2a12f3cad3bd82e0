//! The operator's admin API: apps, installations and events. Every handler
//! takes the [`Admin`] extractor, so the API is closed without the admin token.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use rotor_core::{EventFilter, ReusePolicy};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{Admin, JsonObject};
use super::{both, wire, AppState};
use crate::service::{AppPatch, NewApp};

pub(super) fn routes(r: Router<AppState>) -> Router<AppState> {
    let r = both(r, "/api/0/sentry-apps/", get(list_apps).post(create_app));
    let r = both(
        r,
        "/api/0/sentry-apps/{slug}/",
        get(show_app).patch(update_app),
    );
    let r = both(
        r,
        "/api/0/sentry-apps/{slug}/rotate-secret/",
        post(rotate_secret),
    );
    let r = both(
        r,
        "/api/0/organizations/{org}/sentry-app-installations/",
        post(create_installation),
    );
    both(r, "/api/0/events/", get(list_events))
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
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body?;
    body.require_present(&["name", "scopes"])?;
    let b: AppBody = body.into_typed()?;
    let created = st
        .service
        .create_app(NewApp {
            name: b.name.unwrap_or_default(),
            scopes: b.scopes.unwrap_or_default(),
            webhook_url: b.webhook_url.flatten(),
            verify_install: b.verify_install.unwrap_or(false),
            access_token_ttl_seconds: b.access_token_ttl_seconds,
            refresh_grace_seconds: b.refresh_grace_seconds,
            reuse_policy: policy(b.reuse_policy)?,
        })
        .await?;
    let mut out = wire::app(&created.app);
    out["clientSecret"] = json!(created.client_secret.expose());
    Ok((StatusCode::CREATED, Json(out)))
}

async fn list_apps(_: Admin, State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let apps = st.service.list_apps().await?;
    Ok(Json(Value::Array(apps.iter().map(wire::app).collect())))
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
) -> Result<Json<Value>, ApiError> {
    let secret = st.service.rotate_secret(&slug).await?;
    Ok(Json(json!({ "clientSecret": secret.expose() })))
}

async fn create_installation(
    _: Admin,
    State(st): State<AppState>,
    Path(org): Path<String>,
    body: Result<JsonObject, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body?;
    let slug = body
        .required_str("slug")
        .map_err(|f| ApiError::MissingFields(vec![f]))?;
    let created = st.service.create_installation(&org, slug).await?;
    let mut out = wire::installation(&created.installation);
    out["code"] = json!(created.code.expose());
    Ok((StatusCode::CREATED, Json(out)))
}

async fn show_installation(
    _: Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(wire::installation(
        &st.service.installation(&id).await?,
    )))
}

async fn delete_installation(
    _: Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.service.delete_installation(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    installation: Option<String>,
    identity: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    limit: Option<String>,
}

async fn list_events(
    _: Admin,
    State(st): State<AppState>,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(format!("Invalid query: {e}")))?;
    let installation_id = q
        .installation
        .map(|i| Uuid::parse_str(&i))
        .transpose()
        .map_err(|_| ApiError::field("installation", "Must be a UUID."))?;
    let limit = match q.limit {
        None => 100,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::field(
                    "limit",
                    "Must be a whole number from 1 to 1000.",
                ))
            }
        },
    };
    let events = st
        .service
        .events(EventFilter {
            installation_id,
            identity_id: q.identity,
            kind: q.kind,
            limit,
        })
        .await?;
    Ok(Json(Value::Array(events.iter().map(wire::event).collect())))
}
