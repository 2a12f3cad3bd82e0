//! Extractors that turn every malformed input into a clear JSON error:
//! [`JsonObject`] (content type, 64 KiB limit, syntax, object shape),
//! [`Admin`] (the operator's bearer token), [`ClientIp`] and [`Bearer`].

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::AppState;
use crate::service::ThrottleKey;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON object body, checked for content type, size and syntax.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl JsonObject {
    /// A required string field; `Err(name)` when absent, null or not a string.
    pub fn required_str(&self, name: &'static str) -> Result<&str, &'static str> {
        match self.0.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            _ => Err(name),
        }
    }

    /// `400` listing every one of `names` that is absent or null.
    pub fn require_present(&self, names: &[&'static str]) -> Result<(), ApiError> {
        let missing: Vec<_> = names
            .iter()
            .copied()
            .filter(|f| self.0.get(*f).is_none_or(Value::is_null))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ApiError::MissingFields(missing))
        }
    }

    /// Deserializes the object into `T`, naming the offending field on error.
    pub fn into_typed<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        serde_json::from_value(Value::Object(self.0))
            .map_err(|e| ApiError::BadRequest(format!("Invalid request body: {e}")))
    }
}

/// Reads a body of at most [`BODY_LIMIT`] bytes; 413 past that.
pub async fn read_limited(req: Request) -> Result<axum::body::Bytes, ApiError> {
    if let Some(len) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > BODY_LIMIT as u64 {
            return Err(ApiError::PayloadTooLarge);
        }
    }
    axum::body::to_bytes(req.into_body(), BODY_LIMIT)
        .await
        .map_err(|e| {
            if e.into_inner().is::<http_body_util::LengthLimitError>() {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("Could not read the request body".into())
            }
        })
}

/// Whether the request's content type is `base` (parameters ignored).
pub fn has_content_type(parts_headers: &axum::http::HeaderMap, base: &str) -> bool {
    parts_headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(base))
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !has_content_type(req.headers(), "application/json") {
            return Err(ApiError::UnsupportedMediaType(
                "Expected Content-Type: application/json".into(),
            ));
        }
        let bytes = read_limited(req).await?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("Malformed JSON: {e}")))?;
        match value {
            Value::Object(map) => Ok(JsonObject(map)),
            _ => Err(ApiError::BadRequest(
                "Malformed JSON: the body must be a JSON object".into(),
            )),
        }
    }
}

/// The operator, proven by `Authorization: Bearer <admin token>`.
#[derive(Debug)]
pub struct Admin;

impl<S> FromRequestParts<S> for Admin
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let ip = state
            .trusted_proxies
            .client_ip(parts)
            .map(|ip| ip.to_string());
        match bearer(parts) {
            Some(given) => state.check_admin(given, ip.as_deref()).map(|()| Admin),
            None if state.admin_token.is_none() => Err(ApiError::Unauthorized(
                "The admin API is closed: no admin token is configured (ROTOR_ADMIN_TOKEN)".into(),
            )),
            None => Err(ApiError::Unauthorized(
                "Authentication credentials were not provided.".into(),
            )),
        }
    }
}

impl AppState {
    /// Checks an admin bearer token, throttled per caller IP: while the IP
    /// has too many recent failures the token is not even compared (429).
    pub fn check_admin(&self, given: &str, ip: Option<&str>) -> Result<(), ApiError> {
        let Some(expected) = self.admin_token.as_ref() else {
            return Err(ApiError::Unauthorized(
                "The admin API is closed: no admin token is configured (ROTOR_ADMIN_TOKEN)".into(),
            ));
        };
        let keys: Vec<ThrottleKey> = ip
            .map(|i| ThrottleKey::Ip(i.to_owned()))
            .into_iter()
            .collect();
        self.service.check_throttle(&keys)?;
        if expected.ct_eq(given) {
            return Ok(());
        }
        tracing::warn!(
            reason = "invalid admin token",
            ip = ip.unwrap_or(""),
            "admin authentication refused"
        );
        self.service.count_failure(&keys, "admin authentication");
        Err(ApiError::Unauthorized("Invalid admin token".into()))
    }
}

/// The bearer credential of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The `Authorization: Bearer` credential, possibly absent.
#[derive(Debug)]
pub struct Bearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Bearer(bearer(parts).map(str::to_owned)))
    }
}

/// The caller's IP address: the TCP peer, or the client a trusted proxy
/// names ([`super::client_ip`]).
#[derive(Debug)]
pub struct ClientIp(pub Option<String>);

impl<S> FromRequestParts<S> for ClientIp
where
    std::sync::Arc<super::client_ip::TrustedProxies>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let proxies = std::sync::Arc::<super::client_ip::TrustedProxies>::from_ref(state);
        Ok(ClientIp(proxies.client_ip(parts).map(|ip| ip.to_string())))
    }
}

/// A `{id}` or `{uuid}` path parameter that must be a UUID: a malformed one
/// is a `400` that says so (an unknown one is the handler's `404`).
#[derive(Debug, Clone, Copy)]
pub struct IdPath(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        uuid::Uuid::parse_str(&raw)
            .map(IdPath)
            .map_err(|_| ApiError::BadRequest(format!("Malformed id {raw:?}: it must be a UUID.")))
    }
}
