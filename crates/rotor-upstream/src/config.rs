//! Provider kinds and their configuration: public settings (stored and shown)
//! and write-only secrets (sealed, never shown), checked when a provider is
//! created. Every kind has its provider's public endpoints as defaults and
//! accepts overrides for sovereign clouds, GitHub Enterprise Server and tests.

use std::collections::BTreeMap;

use rotor_core::Secret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kinds of upstream provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any RFC 6749 server.
    OAuth2,
    /// Azure DevOps (legacy jwt-bearer assertion flow).
    AzureDevOps,
    /// Microsoft identity platform v2.
    Entra,
    /// GitHub App installation tokens.
    GithubApp,
    /// App Store Connect API keys (tokens minted locally).
    AppStoreConnect,
    /// Slack OAuth v2 with token rotation.
    Slack,
    /// Google OAuth 2.0 (refresh tokens do not rotate).
    Google,
    /// Atlassian (rotating refresh tokens).
    Atlassian,
}

impl ProviderKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OAuth2 => "oauth2",
            ProviderKind::AzureDevOps => "azure-devops",
            ProviderKind::Entra => "entra",
            ProviderKind::GithubApp => "github-app",
            ProviderKind::AppStoreConnect => "app-store-connect",
            ProviderKind::Slack => "slack",
            ProviderKind::Google => "google",
            ProviderKind::Atlassian => "atlassian",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<ProviderKind> {
        [
            ProviderKind::OAuth2,
            ProviderKind::AzureDevOps,
            ProviderKind::Entra,
            ProviderKind::GithubApp,
            ProviderKind::AppStoreConnect,
            ProviderKind::Slack,
            ProviderKind::Google,
            ProviderKind::Atlassian,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether a refresh answer may carry a new refresh token that replaces
    /// the stored one.
    pub fn uses_refresh_token(self) -> bool {
        !matches!(
            self,
            ProviderKind::GithubApp | ProviderKind::AppStoreConnect
        )
    }
}

/// Public settings of a provider (no secrets); stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfig {
    /// Token endpoint (every kind but github-app and app-store-connect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// OAuth client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `client_secret_basic` or `client_secret_post` (oauth2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    /// Redirect URI registered with Azure DevOps (required there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// Entra tenant (default `common`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// GitHub App id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// GitHub API base URL (GitHub Enterprise Server, tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
    /// App Store Connect issuer id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_id: Option<String>,
    /// App Store Connect key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Extra form parameters sent with each refresh (oauth2).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_params: BTreeMap<String, String>,
    /// Refresh this long before expiry (default: min(5 min, 10% of lifetime)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_margin_seconds: Option<i64>,
}

/// Write-only secrets of a provider; sealed as one JSON document.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSecrets {
    /// OAuth client secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Azure DevOps secret for identities without the `vso.code` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limited_client_secret: Option<String>,
    /// PEM private key (github-app: PKCS#1 or PKCS#8 RSA; app-store-connect: PKCS#8 EC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

impl std::fmt::Debug for ProviderSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderSecrets([redacted])")
    }
}

impl ProviderSecrets {
    /// A secret as [`Secret`], or an error naming the missing field.
    pub fn need(&self, field: &str, value: &Option<String>) -> Result<Secret, String> {
        value
            .as_deref()
            .map(Secret::new)
            .ok_or_else(|| format!("config.{field} is required"))
    }
}

fn default_token_url(kind: ProviderKind, tenant: &str) -> Option<String> {
    Some(match kind {
        ProviderKind::AzureDevOps => "https://app.vssps.visualstudio.com/oauth2/token".into(),
        ProviderKind::Entra => {
            format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
        }
        ProviderKind::Slack => "https://slack.com/api/oauth.v2.access".into(),
        ProviderKind::Google => "https://oauth2.googleapis.com/token".into(),
        ProviderKind::Atlassian => "https://auth.atlassian.com/oauth/token".into(),
        ProviderKind::OAuth2 | ProviderKind::GithubApp | ProviderKind::AppStoreConnect => {
            return None
        }
    })
}

fn http_url(field: &str, v: &str) -> Result<String, String> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(v.trim_end_matches('/').to_owned())
        }
        _ => Err(format!("config.{field} must be an absolute http(s) URL")),
    }
}

fn string(obj: &serde_json::Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(Value::Number(n)) if field == "appId" => Ok(Some(n.to_string())),
        Some(_) => Err(format!("config.{field} must be a non-empty string")),
    }
}

/// Parses and checks `config` for `kind`; answers the public settings and
/// the secrets, or a message naming the problem.
pub fn parse(
    kind: ProviderKind,
    config: &Value,
) -> Result<(ProviderConfig, ProviderSecrets), String> {
    let obj = config.as_object().ok_or("config must be a JSON object")?;
    const KNOWN: &[&str] = &[
        "tokenUrl",
        "clientId",
        "clientSecret",
        "limitedClientSecret",
        "authMethod",
        "redirectUri",
        "tenant",
        "appId",
        "apiBaseUrl",
        "issuerId",
        "keyId",
        "privateKey",
        "extraParams",
        "refreshMarginSeconds",
    ];
    if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "config.{unknown} is not a setting of any provider kind"
        ));
    }
    let mut c = ProviderConfig {
        token_url: string(obj, "tokenUrl")?
            .map(|u| http_url("tokenUrl", &u))
            .transpose()?,
        client_id: string(obj, "clientId")?,
        auth_method: string(obj, "authMethod")?,
        redirect_uri: string(obj, "redirectUri")?,
        tenant: string(obj, "tenant")?,
        app_id: string(obj, "appId")?,
        api_base_url: string(obj, "apiBaseUrl")?
            .map(|u| http_url("apiBaseUrl", &u))
            .transpose()?,
        issuer_id: string(obj, "issuerId")?,
        key_id: string(obj, "keyId")?,
        extra_params: match obj.get("extraParams") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|_| "config.extraParams must map names to strings".to_owned())?,
        },
        refresh_margin_seconds: match obj.get("refreshMarginSeconds") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .filter(|s| (0..=86_400).contains(s))
                    .ok_or("config.refreshMarginSeconds must be 0 to 86400")?,
            ),
        },
    };
    let s = ProviderSecrets {
        client_secret: string(obj, "clientSecret")?,
        limited_client_secret: string(obj, "limitedClientSecret")?,
        private_key: string(obj, "privateKey")?,
    };
    let require = |v: &Option<String>, field: &str| {
        v.as_ref()
            .map(|_| ())
            .ok_or(format!("config.{field} is required for {}", kind.as_str()))
    };
    match kind {
        ProviderKind::OAuth2 => {
            require(&c.token_url, "tokenUrl")?;
            require(&c.client_id, "clientId")?;
            require(&s.client_secret, "clientSecret")?;
            match c.auth_method.as_deref() {
                None => c.auth_method = Some("client_secret_basic".into()),
                Some("client_secret_basic" | "client_secret_post") => {}
                Some(_) => {
                    return Err(
                        "config.authMethod must be client_secret_basic or client_secret_post"
                            .into(),
                    )
                }
            }
        }
        ProviderKind::AzureDevOps => {
            require(&s.client_secret, "clientSecret")?;
            c.redirect_uri
                .as_deref()
                .map(|u| http_url("redirectUri", u))
                .transpose()?
                .ok_or("config.redirectUri is required for azure-devops")?;
        }
        ProviderKind::Entra
        | ProviderKind::Slack
        | ProviderKind::Google
        | ProviderKind::Atlassian => {
            require(&c.client_id, "clientId")?;
            require(&s.client_secret, "clientSecret")?;
        }
        ProviderKind::GithubApp => {
            let app_id = c
                .app_id
                .as_deref()
                .ok_or("config.appId is required for github-app")?;
            if !app_id.bytes().all(|b| b.is_ascii_digit()) {
                return Err("config.appId must be a number".into());
            }
            let pem = s
                .private_key
                .as_deref()
                .ok_or("config.privateKey is required for github-app")?;
            jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| {
                "config.privateKey must be an RSA private key in PEM (PKCS#1 or PKCS#8)"
            })?;
            if c.api_base_url.is_none() {
                c.api_base_url = Some("https://api.github.com".into());
            }
        }
        ProviderKind::AppStoreConnect => {
            require(&c.issuer_id, "issuerId")?;
            require(&c.key_id, "keyId")?;
            let pem = s
                .private_key
                .as_deref()
                .ok_or("config.privateKey is required for app-store-connect")?;
            jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| {
                "config.privateKey must be the .p8 file's EC private key (PKCS#8 PEM)"
            })?;
        }
    }
    if c.token_url.is_none() && kind != ProviderKind::OAuth2 {
        c.token_url = default_token_url(kind, c.tenant.as_deref().unwrap_or("common"));
    }
    Ok((c, s))
}
