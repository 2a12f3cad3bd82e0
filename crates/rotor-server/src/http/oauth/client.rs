//! How a client proves itself on the `/oauth/` routes: the form body, HTTP
//! Basic, `client_secret_post`, and RFC 7523 `client_secret_jwt`; and the
//! issuer those JWTs name.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request};
use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::HeaderMap;
use base64::Engine;
use rotor_core::Secret;

use super::error::OAuthError;
use crate::http::extract::{has_content_type, read_limited};
use crate::http::{error::ApiError, AppState};
use crate::service::ClientAuth;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A form body: content type, 64 KiB limit, and no parameter twice.
#[derive(Debug)]
pub struct Form(BTreeMap<String, String>);

impl Form {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(super) fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = OAuthError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !has_content_type(req.headers(), "application/x-www-form-urlencoded") {
            return Err(OAuthError::from_body(ApiError::UnsupportedMediaType(
                "Expected Content-Type: application/x-www-form-urlencoded".into(),
            )));
        }
        let bytes = read_limited(req).await.map_err(OAuthError::from_body)?;
        let mut map = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(&bytes) {
            if map.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {k} is given more than once"
                )));
            }
        }
        Ok(Form(map))
    }
}

/// The issuer: the configured public URL, else this request's host.
pub(super) fn issuer(st: &AppState, headers: &HeaderMap) -> String {
    if let Some(i) = &st.issuer {
        return i.clone();
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), OAuthError>> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let parsed = (|| {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (id, secret) = text.split_once(':')?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        Some((decode(id)?, decode(secret)?))
    })();
    Some(parsed.ok_or_else(|| OAuthError::invalid_client(true)))
}

/// Works out how the client authenticates; exactly one method is allowed.
/// Answers the method and whether it was Basic.
pub(super) fn client_auth(
    st: &AppState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(ClientAuth, bool), OAuthError> {
    let basic = basic_credentials(headers).transpose()?;
    let post = form.get("client_secret");
    let assertion = form.get("client_assertion");
    match (basic, post, assertion) {
        (Some((id, secret)), None, None) => {
            if form.get("client_id").is_some_and(|c| c != id) {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the Basic credentials",
                ));
            }
            Ok((
                ClientAuth::Secret {
                    client_id: id,
                    client_secret: Secret::new(secret),
                },
                true,
            ))
        }
        (None, Some(secret), None) => Ok((
            ClientAuth::Secret {
                client_id: form.require("client_id")?.to_owned(),
                client_secret: Secret::new(secret),
            },
            false,
        )),
        (None, None, Some(jwt)) => {
            if form.get("client_assertion_type") != Some(JWT_BEARER) {
                return Err(OAuthError::invalid_request(format!(
                    "client_assertion_type must be {JWT_BEARER}"
                )));
            }
            let iss = issuer(st, headers);
            Ok((
                ClientAuth::Jwt {
                    assertion: Secret::new(jwt),
                    audiences: vec![format!("{iss}/oauth/token"), iss],
                },
                false,
            ))
        }
        (None, None, None) => Err(OAuthError::invalid_client(false)),
        _ => Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        )),
    }
}
