//! `ApiError`: every way a request on the `/api/0/` routes and the health and
//! fallback routes can fail, with its status; rendered as Sentry's
//! `{"detail": "…"}` (or a per-field map). The RFC 6749 shape of `/oauth/`
//! lives with those routes.
//!
//! # Which error type belongs where
//!
//! | type | layer | says |
//! |---|---|---|
//! | `rotor_core::CoreError` | domain (pure validation) | what the client got wrong: a bad secret, a used code, a reused refresh token, a scope outside the vocabulary |
//! | `rotor_core::KeyError` | keyring | a key that does not parse, or a sealed value that does not open |
//! | `rotor_store::StoreError` | storage | not found; a [`rotor_store::Conflict`] (which uniqueness or compare-and-swap rule); unavailable (retry); other (a bug), each with its cause as `source()` |
//! | `ServiceError` | use cases | a `CoreError` refusal, a `StoreError`, or the use case's own: not found, conflict, invalid input, throttled, and `Sealed` (a `KeyError` on a value at rest: a server-key problem, not a store fault) |
//! | `UpstreamError` | upstream use cases | needs re-authorization (`Invalid`), try again (`Unavailable`), or a `ServiceError` |
//! | `ApiError` (here) | HTTP, `/api/0/` | the status and Sentry-shaped body |
//! | `OAuthError` (`http::oauth`) | HTTP, `/oauth/` | RFC 6749 §5.2's status and body |
//!
//! Each layer converts the one below with a `From` that names every
//! variant (no wildcard arm), so a new variant does not compile until
//! someone chooses its answer. Faults (store, sealed values) are logged and
//! counted once, where they become `ApiError::Internal` or `Unavailable`;
//! their text never reaches the client.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rotor_core::CoreError;
use rotor_store::StoreError;

use super::wire::ApiErrorBody;
use crate::service::ServiceError;

/// An error answered to the client.
#[derive(Debug)]
pub enum ApiError {
    /// 400: required fields missing; `{"field": ["This field is required."]}`.
    MissingFields(Vec<&'static str>),
    /// 400: per-field problems; `{"field": ["message"]}`.
    FieldErrors(BTreeMap<String, Vec<String>>),
    /// 400: the request is malformed in a way the message names.
    BadRequest(String),
    /// 401: authentication or an exchange validation step failed.
    Unauthorized(String),
    /// 403: authenticated but not allowed (or an unknown grant type).
    Forbidden(String),
    /// 404: no such thing.
    NotFound(String),
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: a uniqueness rule.
    Conflict(String),
    /// 429: too many failed authentications; `Retry-After` seconds.
    TooManyRequests(u64),
    /// 413: body over 64 KiB.
    PayloadTooLarge,
    /// 415: not JSON.
    UnsupportedMediaType(String),
    /// 503: the database is unreachable; worth retrying.
    Unavailable,
    /// 503: an upstream provider is unreachable and no stored token will do.
    ProviderUnavailable(String),
    /// 500: a bug; the cause is logged once, never sent.
    Internal,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingFields(_) | ApiError::FieldErrors(_) | ApiError::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable | ApiError::ProviderUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A single-field error.
    pub fn field(name: &str, message: impl Into<String>) -> ApiError {
        let mut map = BTreeMap::new();
        map.insert(name.to_owned(), vec![message.into()]);
        ApiError::FieldErrors(map)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::TooManyRequests(secs) = self {
            return (
                status,
                [(axum::http::header::RETRY_AFTER, secs.to_string())],
                Json(ApiErrorBody::detail(format!(
                    "Too many failed authentication attempts; retry in {secs} s"
                ))),
            )
                .into_response();
        }
        let body = match self {
            ApiError::MissingFields(fields) => ApiErrorBody::fields(
                fields
                    .into_iter()
                    .map(|f| (f.to_owned(), vec!["This field is required.".to_owned()]))
                    .collect(),
            ),
            ApiError::FieldErrors(map) => ApiErrorBody::fields(map),
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::ProviderUnavailable(m) => ApiErrorBody::detail(m),
            ApiError::MethodNotAllowed => ApiErrorBody::detail("Method not allowed"),
            ApiError::PayloadTooLarge => {
                ApiErrorBody::detail("Request body is larger than the 64 KiB limit")
            }
            ApiError::Unavailable => {
                ApiErrorBody::detail("The database is unavailable; try again shortly")
            }
            ApiError::Internal => ApiErrorBody::detail("Internal error"),
            ApiError::TooManyRequests(_) => ApiErrorBody::fields(BTreeMap::new()),
        };
        (status, Json(body)).into_response()
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        // Every variant named: a new one does not compile until someone
        // chooses its status. Sentry answers every refused exchange 401.
        match e {
            CoreError::Forbidden => ApiError::Forbidden(e.to_string()),
            CoreError::InvalidScope { .. } => ApiError::field("scopes", e.to_string()),
            CoreError::InvalidSetting(m) => ApiError::BadRequest(m),
            CoreError::InvalidClient
            | CoreError::InstallationNotFound
            | CoreError::InstallationNotForApp
            | CoreError::GrantNotFound
            | CoreError::ForbiddenGrant
            | CoreError::GrantExpired
            | CoreError::RefreshTokenNotFound
            | CoreError::RefreshTokenReused
            | CoreError::RefreshTokenExpired
            | CoreError::RefreshTokenRevoked
            | CoreError::InvalidAssertion(_)
            | CoreError::AssertionReplayed
            | CoreError::TokenNotForApp
            | CoreError::TokenNotForInstallation
            | CoreError::InvalidBearer => ApiError::Unauthorized(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("Not found".into()),
            StoreError::Conflict(what) => ApiError::Conflict(format!("Conflict: {what}")),
            StoreError::Unavailable(cause) => {
                crate::telemetry::record_store_error("unavailable");
                tracing::warn!(%cause, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::Other(cause) => {
                crate::telemetry::record_store_error("other");
                tracing::error!(%cause, "store error");
                ApiError::Internal
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Refused(c) => c.into(),
            ServiceError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            ServiceError::Conflict(m) => ApiError::Conflict(m),
            ServiceError::Invalid(m) => ApiError::BadRequest(m),
            ServiceError::Throttled(secs) => ApiError::TooManyRequests(secs),
            ServiceError::Store(s) => s.into(),
            ServiceError::Sealed { what, cause } => {
                crate::telemetry::record_store_error("sealed");
                tracing::error!(
                    %what, error = %cause,
                    "a sealed value does not open: is the key that sealed it in the keyring?"
                );
                ApiError::Internal
            }
        }
    }
}

/// The most of a non-JSON error body kept as its `detail`.
const DETAIL_MAX: usize = 1024;

/// Makes every error answer JSON: a refusal produced before a handler ran
/// (axum's rejection of a path parameter that is not UTF-8, of a malformed
/// query, …) comes as `text/plain`; it becomes `{"detail": <that text>}` with
/// the same status. JSON answers pass untouched.
pub async fn json_errors(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, DETAIL_MAX * 4)
        .await
        .map(|b| {
            String::from_utf8_lossy(&b)
                .chars()
                .take(DETAIL_MAX)
                .collect::<String>()
        })
        .unwrap_or_default();
    let detail = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text
    };
    let mut out = (status, Json(ApiErrorBody::detail(detail))).into_response();
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}
