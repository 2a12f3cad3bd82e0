//! Client-secret JWTs (HS256 signed with the app's client secret): the
//! manual-refresh proof on the Sentry route and the RFC 7523
//! `client_secret_jwt` client authentication on `/oauth/` routes.
//!
//! The signature is checked by `jsonwebtoken`; expiry is checked here against
//! the injected clock; the `jti` is remembered by the store until the JWT
//! expires, so each JWT is used once, across restarts too.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rotor_core::{App, CoreError, UsedJti};
use serde::Deserialize;

use super::{Service, ServiceResult};

/// How far ahead a client-secret JWT may expire.
pub const MAX_JWT_LIFETIME: Duration = Duration::minutes(5);
/// Clock skew tolerated between the client and Rotor.
const SKEW: Duration = Duration::seconds(30);

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    exp: Option<i64>,
    jti: Option<String>,
}

fn refuse(why: &str) -> CoreError {
    CoreError::InvalidAssertion(why.to_owned())
}

/// The `iss` claim, read before the signature can be checked (the issuer
/// names the app whose secret verifies it).
fn unverified_issuer(jwt: &str) -> Result<String, CoreError> {
    let payload = jwt.split('.').nth(1).ok_or_else(|| refuse("not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| refuse("not a JWT"))?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| refuse("not a JWT"))?;
    claims.iss.ok_or_else(|| refuse("iss is required"))
}

impl Service {
    /// Verifies a client-secret JWT and returns its app and `jti` (not yet
    /// remembered). `audiences`, when given, must contain the `aud` claim
    /// (RFC 7523: the token endpoint or the issuer); RFC 7523 also wants
    /// `sub` = `iss`, checked when `sub` is present.
    pub(crate) async fn verify_client_jwt(
        &self,
        jwt: &str,
        audiences: Option<&[String]>,
    ) -> ServiceResult<(App, UsedJti)> {
        if jwt.len() > 8 * 1024 {
            return Err(refuse("too long").into());
        }
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| refuse("not a JWT"))?;
        if header.alg != Algorithm::HS256 {
            return Err(refuse("alg must be HS256").into());
        }
        let client_id = unverified_issuer(jwt)?;
        let app = self
            .store
            .app_by_client_id(&client_id)
            .await?
            .ok_or(CoreError::InvalidClient)?;
        let secret = self.client_secret(&app)?;

        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false; // checked below against the injected clock
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        match audiences {
            Some(auds) => validation.set_audience(auds),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Claims>(
            jwt,
            &DecodingKey::from_secret(secret.expose().as_bytes()),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                refuse("aud does not name this server")
            }
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                refuse("signature does not verify")
            }
            _ => refuse("malformed claims"),
        })?;
        let claims = data.claims;
        if claims.sub.as_ref().is_some_and(|s| *s != client_id) {
            return Err(refuse("sub must equal iss").into());
        }
        let now = self.now();
        let exp = claims
            .exp
            .and_then(|e| DateTime::<Utc>::from_timestamp(e, 0))
            .ok_or_else(|| refuse("exp is required"))?;
        if exp <= now - SKEW {
            return Err(refuse("expired").into());
        }
        if exp > now + MAX_JWT_LIFETIME + SKEW {
            return Err(refuse("exp is more than 5 minutes ahead").into());
        }
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.len() <= 255)
            .ok_or_else(|| refuse("jti is required"))?;
        let used = UsedJti {
            app_id: app.id,
            jti,
            // Kept until no clock could still accept the JWT.
            expires_at: exp + SKEW,
        };
        Ok((app, used))
    }
}
