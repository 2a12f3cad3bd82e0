//! The standard OAuth 2.0 routes: `/oauth/token` (RFC 6749, with
//! `client_secret_basic`, `client_secret_post` and RFC 7523
//! `client_secret_jwt`), `/oauth/revoke` (RFC 7009), `/oauth/introspect`
//! (RFC 7662) and `/.well-known/oauth-authorization-server` (RFC 8414).
//! Errors here have RFC 6749 §5.2's shape; the use cases are the same ones
//! the Sentry-compatible route calls.

mod client;
mod error;

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rotor_core::TokenKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::ClientIp;
use super::{error::ApiError, wire, AppState};
use crate::service::{ClientAuth, Introspector, Issued};
use client::{client_auth, issuer, Form};
pub use error::OAuthError;

pub(super) fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
        .route("/oauth/introspect", post(introspect))
        .route("/.well-known/oauth-authorization-server", get(metadata))
}

fn no_store<T: Serialize>(body: T) -> Response {
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

fn token_answer(st: &AppState, t: &Issued) -> Response {
    let expires_in = (t.record.expires_at - st.service.now())
        .num_seconds()
        .max(0);
    no_store(wire::OAuthToken {
        access_token: t.access.expose().into(),
        expires_in,
        refresh_token: t.refresh.expose().into(),
        scope: t.record.scopes.join(" "),
        token_type: "Bearer".to_owned(),
    })
}

/// The form of `/oauth/token`. The client authenticates with exactly one
/// of: HTTP Basic, `client_id` + `client_secret` in the form, or an RFC 7523
/// `client_assertion` (HS256, signed with the client secret).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenForm {
    /// `authorization_code` or `refresh_token`.
    pub grant_type: String,
    /// The grant code (`authorization_code`).
    pub code: Option<String>,
    /// The refresh token (`refresh_token`).
    pub refresh_token: Option<String>,
    /// Scopes asked for on refresh: a subset of the app's.
    pub scope: Option<String>,
    /// How the client authenticates, when not with HTTP Basic.
    #[serde(flatten)]
    pub client: ClientFields,
}

/// The client-authentication fields of an `/oauth/` form (when the client
/// does not use HTTP Basic).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientFields {
    /// The client id (`client_secret_post`).
    pub client_id: Option<String>,
    /// The client secret (`client_secret_post`).
    pub client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    pub client_assertion_type: Option<String>,
    /// The client's JWT (`client_secret_jwt`).
    pub client_assertion: Option<String>,
}

/// The form of `/oauth/revoke` and `/oauth/introspect`, with the client's
/// authentication as on `/oauth/token` (or, to introspect, the operator's
/// bearer token).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenOnlyForm {
    /// The access or refresh token.
    pub token: String,
    /// `access_token` or `refresh_token`; a hint only.
    pub token_type_hint: Option<String>,
    /// How the client authenticates, when not with HTTP Basic.
    #[serde(flatten)]
    pub client: ClientFields,
}

/// Exchange a grant code or refresh a token (RFC 6749)
///
/// The same use cases as the Sentry route, in the standard shape.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses((status = 200, body = wire::OAuthToken)))]
pub(super) async fn token(
    State(st): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    form: Result<Form, OAuthError>,
) -> Result<Response, OAuthError> {
    let form = form?;
    let grant_type = form.require("grant_type")?;
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type {grant_type} is not supported"),
        ));
    }
    let (auth, basic) = client_auth(&st, &headers, &form)?;
    let svc = &st.service;
    let ip = ip.as_deref();
    let grant: &'static str = if grant_type == "authorization_code" {
        "authorization_code"
    } else {
        "refresh_token"
    };
    let client_id = match &auth {
        ClientAuth::Secret { client_id, .. } => Some(client_id.as_str()),
        ClientAuth::Jwt { .. } => None,
    };
    let app = match svc.authenticate_from(&auth, ip, None).await {
        Ok(app) => app,
        Err(e) => {
            crate::telemetry::record_exchange(grant, Err(&e), client_id, None, ip);
            return Err(OAuthError::from_service(e, basic));
        }
    };
    let issued = if grant_type == "authorization_code" {
        let code = form.require("code")?;
        svc.exchange_code(&app, None, code, ip).await
    } else {
        let refresh_token = form.require("refresh_token")?;
        if let Some(scope) = form.get("scope") {
            if let Some(extra) = scope
                .split(' ')
                .find(|s| !s.is_empty() && !app.settings.scopes.iter().any(|a| a == s))
            {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("scope {extra} was not granted to this client"),
                ));
            }
        }
        svc.refresh(&app, None, refresh_token, ip).await
    };
    crate::telemetry::record_exchange(grant, issued.as_ref(), client_id, None, ip);
    let issued = issued.map_err(|e| OAuthError::from_service(e, basic))?;
    Ok(token_answer(&st, &issued))
}

/// The app the request authenticates as (any of the client methods), and
/// whether it used HTTP Basic.
async fn authenticated_app(
    st: &AppState,
    headers: &HeaderMap,
    form: &Form,
    ip: Option<&str>,
) -> Result<(rotor_core::App, bool), OAuthError> {
    let (auth, basic) = client_auth(st, headers, form)?;
    let app = st
        .service
        .authenticate_from(&auth, ip, None)
        .await
        .map_err(|e| OAuthError::from_service(e, basic))?;
    Ok((app, basic))
}

/// Revoke a token (RFC 7009)
///
/// `200` whether or not the token was live, as RFC 7009 §2.2 asks.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = TokenOnlyForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses((status = 200)))]
pub(super) async fn revoke(
    State(st): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    form: Result<Form, OAuthError>,
) -> Result<Response, OAuthError> {
    let form = form?;
    let (app, basic) = authenticated_app(&st, &headers, &form, ip.as_deref()).await?;
    let token = form.require("token")?;
    st.service
        .revoke(&app, token, ip.as_deref())
        .await
        .map_err(|e| OAuthError::from_service(e, basic))?;
    Ok(StatusCode::OK.into_response())
}

/// Introspect a token (RFC 7662)
///
/// An app sees its own tokens only; the operator (admin bearer) sees all.
#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    request_body(content = TokenOnlyForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = []), ("admin" = [])),
    responses((status = 200, body = wire::Introspection)))]
pub(super) async fn introspect(
    State(st): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    form: Result<Form, OAuthError>,
) -> Result<Response, OAuthError> {
    let form = form?;
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let (caller, basic) = match bearer {
        Some(given) => {
            st.check_admin(given, ip.as_deref()).map_err(|e| match e {
                ApiError::TooManyRequests(s) => OAuthError::throttled(s),
                _ => OAuthError::invalid_client(false),
            })?;
            (Introspector::Operator, false)
        }
        None => {
            let (app, basic) = authenticated_app(&st, &headers, &form, ip.as_deref()).await?;
            (Introspector::App(Box::new(app)), basic)
        }
    };
    let token = form.require("token")?;
    let found = st
        .service
        .introspect(&caller, token)
        .await
        .map_err(|e| OAuthError::from_service(e, basic))?;
    let Some(i) = found else {
        return Ok(no_store(wire::Introspection {
            active: false,
            client_id: None,
            exp: None,
            iat: None,
            iss: None,
            scope: None,
            sub: None,
            token_type: None,
        }));
    };
    let (token_type, exp) = match i.kind {
        TokenKind::Access => ("Bearer", i.record.expires_at),
        _ => ("refresh_token", i.record.refresh_expires_at),
    };
    Ok(no_store(wire::Introspection {
        active: true,
        client_id: Some(i.client_id),
        exp: Some(exp.timestamp()),
        iat: Some(i.record.created_at.timestamp()),
        iss: Some(issuer(&st, &headers)),
        scope: Some(i.record.scopes.join(" ")),
        sub: Some(i.record.installation_id),
        token_type: Some(token_type.to_owned()),
    }))
}

/// Authorization-server metadata (RFC 8414)
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    security(()),
    responses((status = 200, body = wire::ServerMetadata)))]
pub(super) async fn metadata(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Json<wire::ServerMetadata> {
    let iss = issuer(&st, &headers);
    let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let methods = strings(&[
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
    ]);
    let hs256 = strings(&["HS256"]);
    Json(wire::ServerMetadata {
        grant_types_supported: strings(&["authorization_code", "refresh_token"]),
        introspection_endpoint: format!("{iss}/oauth/introspect"),
        introspection_endpoint_auth_methods_supported: methods.clone(),
        introspection_endpoint_auth_signing_alg_values_supported: hs256.clone(),
        issuer: iss.clone(),
        // Codes are issued by installing an app, not by an authorization endpoint.
        response_types_supported: Vec::new(),
        revocation_endpoint: format!("{iss}/oauth/revoke"),
        revocation_endpoint_auth_methods_supported: methods.clone(),
        revocation_endpoint_auth_signing_alg_values_supported: hs256.clone(),
        scopes_supported: st.service.scopes().all(),
        token_endpoint: format!("{iss}/oauth/token"),
        token_endpoint_auth_methods_supported: methods,
        token_endpoint_auth_signing_alg_values_supported: hs256,
    })
}
