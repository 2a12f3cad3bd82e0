//! The app-facing Sentry-compatible routes: the installation authorizations
//! endpoint (code exchange and refresh) and installation verification.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use rotor_core::Secret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::admin::SecretAnswer;
use super::error::ApiError;
use super::extract::{Bearer, ClientIp, JsonObject};
use super::{wire, with_and_without_slash, AppState, NO_STORE};
use crate::service::ClientAuth;

pub(super) fn routes(r: Router<AppState>) -> Router<AppState> {
    let r = with_and_without_slash(
        r,
        "/api/0/sentry-app-installations/{uuid}/authorizations/",
        post(authorizations),
    );
    with_and_without_slash(
        r,
        "/api/0/sentry-app-installations/{uuid}/",
        put(verify).merge(super::admin::installation_routes()),
    )
}

/// Sentry's manual-refresh grant type (its `token_exchange/util.py`).
pub const JWT_BEARER: &str = "urn:sentry:params:oauth:grant-type:jwt-bearer";

/// Collects the required string fields, or every missing one as a 400.
fn require<'b, const N: usize>(
    body: &'b JsonObject,
    names: [&'static str; N],
) -> Result<[&'b str; N], ApiError> {
    let mut missing = Vec::new();
    let mut out = [""; N];
    for (slot, name) in out.iter_mut().zip(names) {
        match body.required_str(name) {
            Ok(v) => *slot = v,
            Err(n) => missing.push(n),
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::MissingFields(missing))
    }
}

/// The body of Sentry's authorizations endpoint. Which fields are required
/// depends on `grant_type`:
///
/// - `authorization_code`: `client_id`, `client_secret`, `code`;
/// - `refresh_token`: `client_id`, `client_secret`, `refresh_token`;
/// - `urn:sentry:params:oauth:grant-type:jwt-bearer` (alias
///   `client_secret_jwt`): none; the app sends `Authorization: Bearer <JWT>`
///   signed with its client secret.
///
/// Fields that are not strings count as missing, as on Sentry.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuthorizationRequest {
    /// `authorization_code`, `refresh_token` or
    /// `urn:sentry:params:oauth:grant-type:jwt-bearer`.
    pub grant_type: String,
    /// The app's client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The app's client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The grant code (`authorization_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The refresh token (`refresh_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Exchange a grant code or refresh a token (Sentry's route)
///
/// The app's side of an installation: a grant code for the first pair, a
/// refresh token for the next one (the old pair is retired at once; the
/// same refresh token within the app's grace window gets the same pair
/// again), or a manual refresh with a client-secret JWT. Every refusal is
/// `401`, as on Sentry; an unknown `grant_type` is `403`.
#[utoipa::path(post, path = "/api/0/sentry-app-installations/{uuid}/authorizations/", tag = "sentry",
    params(("uuid" = String, Path, description = "The installation's id")),
    request_body = AuthorizationRequest,
    security((), ("app_jwt" = [])),
    responses((status = 201, body = wire::Authorization), (status = 401, body = wire::ApiErrorBody),
        (status = 403, body = wire::ApiErrorBody)))]
pub(super) async fn authorizations(
    State(st): State<AppState>,
    Path(uuid): Path<String>,
    ClientIp(ip): ClientIp,
    Bearer(bearer): Bearer,
    body: Result<JsonObject, ApiError>,
) -> Result<SecretAnswer<wire::Authorization>, ApiError> {
    let body = body?;
    let svc = &st.service;
    let ip = ip.as_deref();
    let (grant, client_id, issued) = match body.0.get("grant_type") {
        None | Some(Value::Null) => return Err(ApiError::MissingFields(vec!["grant_type"])),
        Some(Value::String(g)) if g == "authorization_code" => {
            let [client_id, client_secret, code] =
                require(&body, ["client_id", "client_secret", "code"])?;
            let issued = async {
                let app = svc
                    .authenticate_from(&secret_auth(client_id, client_secret), ip, Some(&uuid))
                    .await?;
                svc.exchange_code(&app, Some(&uuid), code, ip).await
            }
            .await;
            ("authorization_code", Some(client_id), issued)
        }
        Some(Value::String(g)) if g == "refresh_token" => {
            let [client_id, client_secret, refresh_token] =
                require(&body, ["client_id", "client_secret", "refresh_token"])?;
            let issued = async {
                let app = svc
                    .authenticate_from(&secret_auth(client_id, client_secret), ip, Some(&uuid))
                    .await?;
                svc.refresh(&app, Some(&uuid), refresh_token, ip).await
            }
            .await;
            ("refresh_token", Some(client_id), issued)
        }
        // Sentry's name for the manual refresh; `client_secret_jwt` is
        // Rotor's earlier name, kept as an alias.
        Some(Value::String(g)) if g == JWT_BEARER || g == "client_secret_jwt" => {
            let Some(jwt) = bearer else {
                return Err(ApiError::Unauthorized(format!(
                    "A {g} refresh needs Authorization: Bearer <JWT signed with the client secret>"
                )));
            };
            (
                "jwt_bearer",
                None,
                svc.manual_refresh(&jwt, &uuid, ip).await,
            )
        }
        Some(_) => return Err(ApiError::Forbidden("Invalid grant_type".into())),
    };
    crate::telemetry::record_exchange(grant, issued.as_ref(), client_id, Some(&uuid), ip);
    let issued = issued?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(wire::Authorization::from(&issued)),
    ))
}

fn secret_auth(client_id: &str, client_secret: &str) -> ClientAuth {
    ClientAuth::Secret {
        client_id: client_id.to_owned(),
        client_secret: Secret::new(client_secret),
    }
}

/// The app's verification of an installation.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// `installed`.
    pub status: String,
}

/// Verify an installation (the app)
///
/// An app with `verifyInstall` marks its installation `installed` with one
/// of the installation's access tokens.
#[utoipa::path(put, path = "/api/0/sentry-app-installations/{uuid}/", tag = "sentry",
    params(("uuid" = String, Path, description = "The installation's id")),
    request_body = VerifyRequest,
    security(("app_token" = [])),
    responses((status = 200, body = wire::Installation), (status = 401, body = wire::ApiErrorBody),
        (status = 404, body = wire::ApiErrorBody)))]
pub(super) async fn verify(
    State(st): State<AppState>,
    Path(uuid): Path<String>,
    Bearer(token): Bearer,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<wire::Installation>, ApiError> {
    let inst = st
        .service
        .installation_for_bearer(&uuid, token.as_deref())
        .await?;
    let body = body?;
    match body.0.get("status") {
        Some(Value::String(s)) if s == "installed" => {}
        None | Some(Value::Null) => return Err(ApiError::MissingFields(vec!["status"])),
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "Invalid value for status: only \"installed\" is accepted.",
            ))
        }
    }
    let inst = st.service.mark_installed(inst).await?;
    Ok(Json((&inst).into()))
}
