//! How each provider kind refreshes: the request it expects (or a token
//! minted locally), and how its answer becomes a [`Refreshed`].

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rotor_core::Secret;
use serde_json::{json, Value};

use crate::classify::{classify_answer, classify_transport, Failure};
use crate::config::{ProviderConfig, ProviderKind, ProviderSecrets};
use crate::http::{HttpClient, HttpRequest};

/// What a refresh needs to know of the identity.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamIdentity<'a> {
    /// Scopes granted to the identity.
    pub scopes: &'a [String],
    /// The stored refresh token, if the kind uses one.
    pub refresh_token: Option<&'a Secret>,
    /// GitHub App installation id.
    pub installation_id: Option<&'a str>,
}

/// A fresh upstream token.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The new access token.
    pub access_token: Secret,
    /// Usually `Bearer`.
    pub token_type: String,
    /// When it expires; computed from when the request was sent.
    pub expires_at: Option<DateTime<Utc>>,
    /// A new refresh token, only when the provider returned one.
    pub refresh_token: Option<Secret>,
}

/// GitHub App JWTs: issued 60 s in the past against clock drift, 9 minutes ahead.
const GITHUB_JWT_BACKDATE: i64 = 60;
const GITHUB_JWT_LIFETIME: i64 = 540;
/// App Store Connect tokens may live at most 20 minutes.
pub const ASC_TOKEN_LIFETIME: Duration = Duration::minutes(20);

/// Refreshes (or mints) a token for `ident` at provider `kind`. `now` is when
/// the request is sent: expiries count from it, not from the answer.
pub async fn refresh(
    kind: ProviderKind,
    cfg: &ProviderConfig,
    secrets: &ProviderSecrets,
    ident: UpstreamIdentity<'_>,
    http: &dyn HttpClient,
    now: DateTime<Utc>,
) -> Result<Refreshed, Failure> {
    let config_error = |m: String| Failure::Invalid(format!("provider configuration: {m}"));
    let req = match kind {
        ProviderKind::AppStoreConnect => {
            return mint_app_store_connect(cfg, secrets, now).map_err(config_error)
        }
        ProviderKind::GithubApp => {
            github_request(cfg, secrets, ident, now).map_err(config_error)?
        }
        _ => oauth_request(kind, cfg, secrets, ident).map_err(config_error)?,
    };
    let res = http.post(&req).await.map_err(|e| classify_transport(&e))?;
    if !(200..300).contains(&res.status) {
        return Err(classify_answer(kind, res.status, &res.body));
    }
    let v: Value = serde_json::from_slice(&res.body)
        .map_err(|_| Failure::transient(format!("HTTP {}: answer is not JSON", res.status)))?;
    if kind == ProviderKind::Slack && v["ok"] != json!(true) {
        return Err(classify_answer(kind, res.status, &res.body));
    }
    if kind == ProviderKind::GithubApp {
        let token = v["token"].as_str().filter(|t| !t.is_empty());
        let expires = v["expires_at"]
            .as_str()
            .and_then(|e| e.parse::<DateTime<Utc>>().ok());
        return match (token, expires) {
            (Some(t), Some(e)) => Ok(Refreshed {
                access_token: Secret::new(t),
                token_type: "token".into(),
                expires_at: Some(e),
                refresh_token: None,
            }),
            _ => Err(Failure::transient("answer had no token or expires_at")),
        };
    }
    let access = v["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Failure::transient(format!("HTTP {}: answer had no access_token", res.status))
        })?;
    let expires_in = v["expires_in"]
        .as_i64()
        .or_else(|| v["expires_in"].as_str().and_then(|s| s.parse().ok()));
    Ok(Refreshed {
        access_token: Secret::new(access),
        token_type: v["token_type"].as_str().unwrap_or("Bearer").to_owned(),
        // A nonsensical expires_in (overflowing) is treated as "not given".
        expires_at: expires_in
            .and_then(Duration::try_seconds)
            .and_then(|d| now.checked_add_signed(d)),
        refresh_token: v["refresh_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(Secret::new),
    })
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn oauth_request(
    kind: ProviderKind,
    cfg: &ProviderConfig,
    secrets: &ProviderSecrets,
    ident: UpstreamIdentity<'_>,
) -> Result<HttpRequest, String> {
    let url = cfg.token_url.clone().ok_or("tokenUrl is missing")?;
    let refresh = ident
        .refresh_token
        .ok_or("the identity has no refresh token")?;
    let client_id = cfg.client_id.clone().unwrap_or_default();
    let secret = secrets.need("clientSecret", &secrets.client_secret)?;
    let rt = refresh.expose();
    let mut req = HttpRequest {
        url,
        headers: vec![("Accept".into(), "application/json".into())],
        form: None,
        json: None,
    };
    match kind {
        ProviderKind::AzureDevOps => {
            // The "limited" secret serves identities that were not granted code access.
            let assertion = if ident.scopes.iter().any(|s| s == "vso.code") {
                secret
            } else {
                secrets
                    .limited_client_secret
                    .as_deref()
                    .map(Secret::new)
                    .unwrap_or(secret)
            };
            req.form = Some(pairs(&[
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.expose()),
                ("grant_type", "refresh_token"),
                ("assertion", rt),
                (
                    "redirect_uri",
                    cfg.redirect_uri.as_deref().unwrap_or_default(),
                ),
            ]));
        }
        ProviderKind::Atlassian => {
            req.json = Some(json!({
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": secret.expose(),
                "refresh_token": rt,
            }));
        }
        ProviderKind::OAuth2 if cfg.auth_method.as_deref() != Some("client_secret_post") => {
            use base64::Engine;
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(&client_id),
                enc(secret.expose())
            ));
            req.headers
                .push(("Authorization".into(), format!("Basic {basic}")));
            let mut form = pairs(&[("grant_type", "refresh_token"), ("refresh_token", rt)]);
            form.extend(cfg.extra_params.iter().map(|(k, v)| (k.clone(), v.clone())));
            req.form = Some(form);
        }
        _ => {
            let mut form = pairs(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", &client_id),
                ("client_secret", secret.expose()),
            ]);
            if kind == ProviderKind::Entra && !ident.scopes.is_empty() {
                form.push(("scope".into(), ident.scopes.join(" ")));
            }
            form.extend(cfg.extra_params.iter().map(|(k, v)| (k.clone(), v.clone())));
            req.form = Some(form);
        }
    }
    Ok(req)
}

fn github_request(
    cfg: &ProviderConfig,
    secrets: &ProviderSecrets,
    ident: UpstreamIdentity<'_>,
    now: DateTime<Utc>,
) -> Result<HttpRequest, String> {
    let installation = ident
        .installation_id
        .ok_or("the identity has no installationId")?;
    let pem = secrets.need("privateKey", &secrets.private_key)?;
    let key = EncodingKey::from_rsa_pem(pem.expose().as_bytes()).map_err(|e| e.to_string())?;
    let claims = json!({
        "iat": now.timestamp() - GITHUB_JWT_BACKDATE,
        "exp": now.timestamp() + GITHUB_JWT_LIFETIME,
        "iss": cfg.app_id.as_deref().unwrap_or_default(),
    });
    let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
        .map_err(|e| e.to_string())?;
    let base = cfg
        .api_base_url
        .as_deref()
        .unwrap_or("https://api.github.com");
    Ok(HttpRequest {
        url: format!("{base}/app/installations/{installation}/access_tokens"),
        headers: vec![
            ("Authorization".into(), format!("Bearer {jwt}")),
            ("Accept".into(), "application/vnd.github+json".into()),
            ("X-GitHub-Api-Version".into(), "2022-11-28".into()),
        ],
        form: None,
        json: Some(json!({})),
    })
}

fn mint_app_store_connect(
    cfg: &ProviderConfig,
    secrets: &ProviderSecrets,
    now: DateTime<Utc>,
) -> Result<Refreshed, String> {
    let pem = secrets.need("privateKey", &secrets.private_key)?;
    let key = EncodingKey::from_ec_pem(pem.expose().as_bytes()).map_err(|e| e.to_string())?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = cfg.key_id.clone();
    header.typ = Some("JWT".into());
    let exp = now + ASC_TOKEN_LIFETIME;
    let claims = json!({
        "iss": cfg.issuer_id.as_deref().unwrap_or_default(),
        "iat": now.timestamp(),
        "exp": exp.timestamp(),
        "aud": "appstoreconnect-v1",
    });
    let jwt = jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())?;
    Ok(Refreshed {
        access_token: Secret::new(jwt),
        token_type: "Bearer".into(),
        expires_at: DateTime::from_timestamp(exp.timestamp(), 0),
        refresh_token: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpResponse, TransportError};
    use async_trait::async_trait;

    #[derive(Debug)]
    struct Canned(u16, &'static str);

    #[async_trait]
    impl HttpClient for Canned {
        async fn post(&self, _req: &HttpRequest) -> Result<HttpResponse, TransportError> {
            Ok(HttpResponse {
                status: self.0,
                body: self.1.as_bytes().to_vec(),
            })
        }
    }

    fn google() -> (ProviderConfig, ProviderSecrets) {
        crate::config::parse(
            ProviderKind::Google,
            &json!({"clientId": "c", "clientSecret": "s"}),
        )
        .unwrap()
    }

    async fn run(answer: &'static str) -> Result<Refreshed, Failure> {
        let (cfg, secrets) = google();
        let rt = Secret::new("rt");
        let ident = UpstreamIdentity {
            scopes: &[],
            refresh_token: Some(&rt),
            installation_id: None,
        };
        refresh(
            ProviderKind::Google,
            &cfg,
            &secrets,
            ident,
            &Canned(200, answer),
            Utc::now(),
        )
        .await
    }

    #[tokio::test]
    async fn provider_answers_that_make_no_sense_never_panic() {
        let r = run(r#"{"access_token": "a", "expires_in": 9223372036854775807}"#)
            .await
            .unwrap();
        assert_eq!(r.expires_at, None);
        let r = run(r#"{"access_token": "a", "expires_in": "3600"}"#)
            .await
            .unwrap();
        assert!(r.expires_at.is_some());
        assert!(matches!(
            run(r#"{"access_token": ""}"#).await,
            Err(Failure::Transient { .. })
        ));
        assert!(matches!(
            run("not json").await,
            Err(Failure::Transient { .. })
        ));
        assert!(matches!(run("[]").await, Err(Failure::Transient { .. })));
        let r = run(r#"{"access_token": "a", "refresh_token": ""}"#)
            .await
            .unwrap();
        assert!(
            r.refresh_token.is_none(),
            "an empty refresh token is not a new one"
        );
    }
}
