//! The typed JSON shapes of every request and answer: the HTTP handlers and
//! the CLI render the same structs, and the OpenAPI document
//! ([`super::openapi`]) is derived from them.
//!
//! The `/api/0/` shapes are camelCase (Sentry's convention); the `/oauth/`
//! ones are RFC 6749's snake_case.
//!
//! **Field order.** Fields are declared in the alphabetical order of their
//! wire names. Before these types existed the answers were `serde_json`
//! maps, which sort their keys, so declaring them sorted keeps every answer
//! byte-for-byte what it was (a test in `tests/api/parity.rs` holds the
//! Sentry and OAuth answers to it). The two answers that add a secret to
//! another shape ([`CreatedApp`], [`CreatedInstallation`]) put it last.
//!
//! **Secrets.** A token, a grant code or a client secret in an answer is a
//! [`Shown`]: serialized as its text (the answer exists to hand it over),
//! redacted in `Debug`, so it cannot reach a log by accident.

use chrono::{DateTime, SecondsFormat, Utc};
use rotor_core::{
    App as AppRecord, Event as EventRecord, Installation as InstallationRecord,
    UpstreamIdentityRecord, UpstreamProvider, WebhookDelivery,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::service::upstream::UpstreamToken as UpstreamTokenRecord;
use crate::service::Issued;

/// A secret handed to its owner in an answer: its text on the wire,
/// `Shown(..)` in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String)]
pub struct Shown(pub String);

impl Shown {
    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Shown {
    fn from(s: &str) -> Self {
        Shown(s.to_owned())
    }
}

impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shown(..)")
    }
}

/// Sentry's timestamp format: microseconds and a `Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

// ---------------------------------------------------------------- answers

/// An app, without its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct App {
    /// Lifetime of the access tokens issued to this app.
    pub access_token_ttl_seconds: i64,
    /// The OAuth client id.
    pub client_id: String,
    /// When the app was created (RFC 3339, microseconds, `Z`).
    #[schema(format = DateTime)]
    pub date_created: String,
    /// When the app was last changed.
    #[schema(format = DateTime)]
    pub date_updated: String,
    /// Display name.
    pub name: String,
    /// Where an installation's browser is sent with its code.
    pub redirect_url: Option<String>,
    /// Seconds in which a retired refresh token gets the same pair again.
    pub refresh_grace_seconds: i64,
    /// What a retired refresh token presented after the grace window does.
    pub reuse_policy: ReusePolicy,
    /// Scopes every token of this app carries.
    pub scopes: Vec<String>,
    /// The app's slug (its id in URLs).
    pub slug: String,
    /// The app's id.
    pub uuid: Uuid,
    /// Whether installations wait for the app's `PUT … {"status":"installed"}`.
    pub verify_install: bool,
    /// Where webhooks go.
    pub webhook_url: Option<String>,
}

impl From<&AppRecord> for App {
    fn from(a: &AppRecord) -> Self {
        let s = &a.settings;
        App {
            access_token_ttl_seconds: s.access_token_ttl_seconds,
            client_id: a.client_id.clone(),
            date_created: time(a.created_at),
            date_updated: time(a.updated_at),
            name: s.name.clone(),
            redirect_url: s.redirect_url.clone(),
            refresh_grace_seconds: s.refresh_grace_seconds,
            reuse_policy: s.reuse_policy.into(),
            scopes: s.scopes.clone(),
            slug: a.slug.clone(),
            uuid: a.id,
            verify_install: s.verify_install,
            webhook_url: s.webhook_url.clone(),
        }
    }
}

/// What a retired refresh token presented after the grace window does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReusePolicy {
    /// Treat it as theft: revoke the whole family (RFC 9700 §4.14.2).
    RevokeFamily,
    /// Refuse only that request.
    Reject,
}

impl From<rotor_core::ReusePolicy> for ReusePolicy {
    fn from(p: rotor_core::ReusePolicy) -> Self {
        match p {
            rotor_core::ReusePolicy::RevokeFamily => ReusePolicy::RevokeFamily,
            rotor_core::ReusePolicy::Reject => ReusePolicy::Reject,
        }
    }
}

impl From<ReusePolicy> for rotor_core::ReusePolicy {
    fn from(p: ReusePolicy) -> Self {
        match p {
            ReusePolicy::RevokeFamily => rotor_core::ReusePolicy::RevokeFamily,
            ReusePolicy::Reject => rotor_core::ReusePolicy::Reject,
        }
    }
}

/// A new app with its client secret, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApp {
    /// The app.
    #[serde(flatten)]
    pub app: App,
    /// The client secret; Rotor keeps it encrypted and never shows it again.
    pub client_secret: Shown,
}

/// A new client secret (the old one stops working at once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecret {
    /// The new client secret, shown this once.
    pub client_secret: Shown,
}

/// An app as an installation names it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AppRef {
    /// The app's slug.
    pub slug: String,
    /// The app's id.
    pub uuid: Uuid,
}

/// An organization, by its slug.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct OrgRef {
    /// The organization's slug.
    pub slug: String,
}

/// An installation, by its id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct InstallationRef {
    /// The installation's id.
    pub uuid: Uuid,
}

/// An installation's state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InstallationStatus {
    /// Waiting for the app to verify it (apps with `verifyInstall`).
    Pending,
    /// Live.
    Installed,
}

/// An installation of an app into an organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Installation {
    /// The app installed.
    pub app: AppRef,
    /// When it was installed.
    #[schema(format = DateTime)]
    pub date_created: String,
    /// The organization it is installed in.
    pub organization: OrgRef,
    /// `pending` until verified, then `installed`.
    pub status: InstallationStatus,
    /// The installation's id.
    pub uuid: Uuid,
}

impl From<&InstallationRecord> for Installation {
    fn from(i: &InstallationRecord) -> Self {
        Installation {
            app: AppRef {
                slug: i.app_slug.clone(),
                uuid: i.app_id,
            },
            date_created: time(i.created_at),
            organization: OrgRef {
                slug: i.org_slug.clone(),
            },
            status: match i.status {
                rotor_core::InstallationStatus::Pending => InstallationStatus::Pending,
                rotor_core::InstallationStatus::Installed => InstallationStatus::Installed,
            },
            uuid: i.id,
        }
    }
}

/// A new installation with its single-use grant code.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedInstallation {
    /// The installation.
    #[serde(flatten)]
    pub installation: Installation,
    /// The grant code the app exchanges for its first token pair (10 minutes).
    pub code: Shown,
    /// The app's redirect URL with `code`, `installationId` and `orgSlug`,
    /// when the app has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_to: Option<String>,
}

/// A token pair on the Sentry route, in Sentry's shape.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// Always `null` (Sentry's shape).
    #[schema(value_type = Option<String>)]
    pub application: Option<String>,
    /// When the pair was issued.
    #[schema(format = DateTime)]
    pub date_created: String,
    /// When the access token expires (8 hours by default).
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// The pair's id.
    pub id: Uuid,
    /// The refresh token (single use).
    pub refresh_token: Shown,
    /// The scopes the access token carries.
    pub scopes: Vec<String>,
    /// Always `null` (Sentry's shape).
    #[schema(value_type = Option<String>)]
    pub state: Option<String>,
    /// The access token.
    pub token: Shown,
}

impl From<&Issued> for Authorization {
    fn from(t: &Issued) -> Self {
        Authorization {
            application: None,
            date_created: time(t.record.created_at),
            expires_at: time(t.record.expires_at),
            id: t.record.id,
            refresh_token: t.refresh.expose().into(),
            scopes: t.record.scopes.clone(),
            state: None,
            token: t.access.expose().into(),
        }
    }
}

/// An audit event. Fields that do not apply to the event are left out.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Who did it (`operator`, `user:<id>`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// When it happened.
    #[schema(format = DateTime)]
    pub date_created: String,
    /// What happened, in words (never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `authorization_code`, `refresh_token` or `jwt_bearer`, on exchanges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_type: Option<String>,
    /// The event's id; the list's cursor.
    pub id: i64,
    /// The upstream identity it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The installation it concerns.
    pub installation: Option<Uuid>,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The event kind.
    #[serde(rename = "type")]
    #[schema(value_type = EventType)]
    pub kind: String,
}

impl From<&EventRecord> for Event {
    fn from(e: &EventRecord) -> Self {
        let v = &e.event;
        Event {
            actor: v.actor.clone(),
            date_created: time(v.created_at),
            detail: v.detail.clone(),
            exchange_type: v.exchange_type.clone(),
            id: e.id,
            identity: v.identity_id.clone(),
            installation: v.installation_id,
            ip: v.ip.clone(),
            kind: v.kind.as_str().to_owned(),
        }
    }
}

/// The name of an event kind (`rotor_core::EventKind`), as a schema: a
/// string from the closed list of kinds.
#[derive(Debug)]
pub struct EventType;

impl utoipa::PartialSchema for EventType {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("What the event records."))
            .enum_values(Some(rotor_core::EventKind::ALL.iter().map(|k| k.as_str())))
            .into()
    }
}

impl ToSchema for EventType {}

/// An upstream provider with its public settings only (its secrets are
/// stored encrypted, apart, and never shown).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Provider {
    /// Settings of its kind (token URL, client id, tenant, …).
    #[schema(value_type = Object)]
    pub config: Value,
    /// The provider's key (its id in identities).
    pub key: String,
    /// `oauth2`, `azure_devops`, `microsoft`, `github_app`, `slack`,
    /// `google`, `atlassian` or `app_store_connect`.
    pub kind: String,
}

impl From<&UpstreamProvider> for Provider {
    fn from(p: &UpstreamProvider) -> Self {
        Provider {
            config: serde_json::from_str(&p.config).unwrap_or(Value::Null),
            key: p.key.clone(),
            kind: p.kind.clone(),
        }
    }
}

/// Whether an upstream identity can still be refreshed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IdentityStatus {
    /// Its tokens work or can be refreshed.
    Active,
    /// The provider refused its grant: it needs re-authorization.
    Invalid,
}

impl From<rotor_core::IdentityStatus> for IdentityStatus {
    fn from(s: rotor_core::IdentityStatus) -> Self {
        match s {
            rotor_core::IdentityStatus::Active => IdentityStatus::Active,
            rotor_core::IdentityStatus::Invalid => IdentityStatus::Invalid,
        }
    }
}

/// An upstream identity; never its tokens.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// When it was created.
    #[schema(format = DateTime)]
    pub date_created: String,
    /// When its access token expires, if the provider said.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// The account's id at the provider.
    pub external_id: String,
    /// Refresh failures in a row.
    pub failure_count: i64,
    /// The identity's id.
    pub id: Uuid,
    /// The platform's installation it belongs to, if any.
    pub installation_id: Option<String>,
    /// The last refresh failure, classified.
    pub last_error: Option<String>,
    /// When it was last refreshed.
    #[schema(format = DateTime)]
    pub last_refreshed_at: Option<String>,
    /// The provider's key.
    pub provider: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// `active`, or `invalid` when it needs re-authorization.
    pub status: IdentityStatus,
}

impl From<&UpstreamIdentityRecord> for Identity {
    fn from(i: &UpstreamIdentityRecord) -> Self {
        Identity {
            date_created: time(i.created_at),
            expires_at: i.expires_at.map(time),
            external_id: i.external_id.clone(),
            failure_count: i.failure_count,
            id: i.id,
            installation_id: i.installation_id.clone(),
            last_error: i.last_error.clone(),
            last_refreshed_at: i.last_refreshed_at.map(time),
            provider: i.provider.clone(),
            scopes: i.scopes.clone(),
            status: i.status.into(),
        }
    }
}

/// A new upstream identity, in short.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreatedIdentity {
    /// When its access token expires, if known.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// The account's id at the provider.
    pub external_id: String,
    /// The identity's id.
    pub id: Uuid,
    /// The provider's key.
    pub provider: String,
    /// `active`.
    pub status: IdentityStatus,
}

impl From<&UpstreamIdentityRecord> for CreatedIdentity {
    fn from(i: &UpstreamIdentityRecord) -> Self {
        CreatedIdentity {
            expires_at: i.expires_at.map(time),
            external_id: i.external_id.clone(),
            id: i.id,
            provider: i.provider.clone(),
            status: i.status.into(),
        }
    }
}

/// An upstream access token handed to its caller.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamToken {
    /// The provider's access token.
    pub access_token: Shown,
    /// Its real expiry, if the provider said.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Its type (`Bearer` as a rule).
    pub token_type: String,
}

impl From<&UpstreamTokenRecord> for UpstreamToken {
    fn from(t: &UpstreamTokenRecord) -> Self {
        UpstreamToken {
            access_token: t.access_token.expose().into(),
            expires_at: t.expires_at.map(time),
            token_type: t.token_type.clone(),
        }
    }
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Queued or waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

impl From<rotor_core::DeliveryStatus> for DeliveryStatus {
    fn from(s: rotor_core::DeliveryStatus) -> Self {
        match s {
            rotor_core::DeliveryStatus::Pending => DeliveryStatus::Pending,
            rotor_core::DeliveryStatus::Delivered => DeliveryStatus::Delivered,
            rotor_core::DeliveryStatus::Failed => DeliveryStatus::Failed,
        }
    }
}

/// A webhook delivery in the delivery log (never its body: it may carry a
/// grant code).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Attempts made.
    pub attempts: i64,
    /// When it was last attempted.
    #[schema(format = DateTime)]
    pub date: Option<String>,
    /// When it was queued.
    #[schema(format = DateTime)]
    pub date_created: String,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `installation.created`, `installation.deleted`, …
    pub event_type: String,
    /// The delivery's id.
    pub id: Uuid,
    /// The installation it concerns.
    pub installation: Option<InstallationRef>,
    /// When the next attempt is due, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// The organization it concerns.
    pub organization: Option<OrgRef>,
    /// The receiver's last HTTP status.
    pub response_code: Option<i32>,
    /// `pending`, `delivered` or `failed`.
    pub status: DeliveryStatus,
    /// Where it goes.
    pub webhook_url: String,
}

impl From<&WebhookDelivery> for Delivery {
    fn from(d: &WebhookDelivery) -> Self {
        Delivery {
            attempts: d.attempts,
            date: d.last_attempt_at.map(time),
            date_created: time(d.created_at),
            error: d.error.clone(),
            event_type: d.event_type.clone(),
            id: d.id,
            installation: d.installation_id.map(|uuid| InstallationRef { uuid }),
            next_attempt_at: d.next_attempt_at.map(time),
            organization: d.org_slug.clone().map(|slug| OrgRef { slug }),
            response_code: d.response_code,
            status: d.status.into(),
            webhook_url: d.url.clone(),
        }
    }
}

/// A redelivery queued.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Redelivery {
    /// The delivery's id.
    pub id: Uuid,
    /// `pending`.
    pub status: DeliveryStatus,
}

/// Whether the operator's revocation found a live family.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Revoked {
    /// `true` when a family was revoked; `false` when the token was unknown
    /// or already dead.
    pub revoked: bool,
}

/// A health probe's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Health {
    /// `ok` (alive) or `ready` (the database answers).
    pub status: String,
}

/// An error on the `/api/0/` and health routes, in Sentry's shape: either
/// `{"detail": "…"}`, or a map of field name to messages
/// (`{"scopes": ["…"]}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiErrorBody {
    /// What went wrong, when it is not about one field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Per-field messages.
    #[serde(flatten)]
    pub fields: std::collections::BTreeMap<String, Vec<String>>,
}

impl ApiErrorBody {
    /// `{"detail": message}`.
    pub fn detail(message: impl Into<String>) -> Self {
        ApiErrorBody {
            detail: Some(message.into()),
            fields: Default::default(),
        }
    }

    /// `{field: [messages]}`.
    pub fn fields(fields: std::collections::BTreeMap<String, Vec<String>>) -> Self {
        ApiErrorBody {
            detail: None,
            fields,
        }
    }
}

impl utoipa::PartialSchema for ApiErrorBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Type};
        ObjectBuilder::new()
            .description(Some(
                "Either {\"detail\": message} or {field: [messages]} (Sentry's shape).",
            ))
            .property("detail", ObjectBuilder::new().schema_type(Type::String))
            .additional_properties(Some(AdditionalProperties::RefOr(
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String))
                    .into(),
            )))
            .into()
    }
}

impl ToSchema for ApiErrorBody {}

// ----------------------------------------------------------- /oauth/ answers

/// A token pair on `/oauth/token` (RFC 6749 §5.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OAuthToken {
    /// The access token.
    pub access_token: Shown,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token (single use).
    pub refresh_token: Shown,
    /// Space-separated scopes.
    pub scope: String,
    /// `Bearer`.
    pub token_type: String,
}

/// An RFC 6749 §5.2 error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`,
    /// `unsupported_grant_type`, `invalid_scope`, `temporarily_unavailable`
    /// or `server_error`.
    pub error: String,
    /// What went wrong, in words.
    pub error_description: String,
}

/// An RFC 7662 introspection answer; an inactive token is `{"active": false}`
/// and nothing else.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Introspection {
    /// Whether the token is live.
    pub active: bool,
    /// The app's client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Expiry (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issue time (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The installation the token acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<Uuid>,
    /// `Bearer` (an access token) or `refresh_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

/// RFC 8414 authorization-server metadata.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ServerMetadata {
    /// Grant types `/oauth/token` takes.
    pub grant_types_supported: Vec<String>,
    /// RFC 7662 endpoint.
    pub introspection_endpoint: String,
    /// Client authentication methods of `/oauth/introspect`.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// JWS algorithms of `client_secret_jwt` at `/oauth/introspect`.
    pub introspection_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// The issuer (Rotor's public URL).
    pub issuer: String,
    /// Always empty: codes come from installing an app.
    pub response_types_supported: Vec<String>,
    /// RFC 7009 endpoint.
    pub revocation_endpoint: String,
    /// Client authentication methods of `/oauth/revoke`.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// JWS algorithms of `client_secret_jwt` at `/oauth/revoke`.
    pub revocation_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Every scope an app may be given.
    pub scopes_supported: Vec<String>,
    /// RFC 6749 token endpoint.
    pub token_endpoint: String,
    /// Client authentication methods of `/oauth/token`.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// JWS algorithms of `client_secret_jwt` at `/oauth/token`.
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
}
