//! The domain records: apps, installations, grant codes, issued tokens and
//! their families, and events. These are plain values; the store maps its rows
//! to them and the server maps them to wire formats.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::keys::Ciphertext;
use crate::token::TokenHash;

/// How long a grant code lives (the reference design's 10 minutes).
pub const GRANT_TTL: Duration = Duration::minutes(10);
/// Default access-token lifetime: 8 hours.
pub const DEFAULT_ACCESS_TOKEN_TTL_SECONDS: i64 = 8 * 3600;
/// Default grace window in which a replayed refresh token gets the same answer.
pub const DEFAULT_REFRESH_GRACE_SECONDS: i64 = 60;

/// How long refresh tokens and token families live; server-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// A refresh token not used for this long expires (default 30 days).
    pub refresh_idle: Duration,
    /// A family (every pair descended from one grant) ends this long after
    /// its grant was exchanged, however often it is refreshed (default 365 days).
    pub family_absolute: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            refresh_idle: Duration::days(30),
            family_absolute: Duration::days(365),
        }
    }
}

/// What happens when a retired refresh token is presented after its grace window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReusePolicy {
    /// Treat it as theft: revoke every token of the family (RFC 9700 §4.14.2).
    #[default]
    RevokeFamily,
    /// Refuse only that request.
    Reject,
}

impl ReusePolicy {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReusePolicy::RevokeFamily => "revoke_family",
            ReusePolicy::Reject => "reject",
        }
    }

    /// Parses the wire and storage name.
    pub fn parse(s: &str) -> Option<ReusePolicy> {
        match s {
            "revoke_family" => Some(ReusePolicy::RevokeFamily),
            "reject" => Some(ReusePolicy::Reject),
            _ => None,
        }
    }
}

/// The settings of an app an operator may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSettings {
    /// Human name; the slug is derived from it once, at creation.
    pub name: String,
    /// Scopes every token of this app carries (the app's *current* scopes are
    /// used at each refresh, so narrowing them takes effect at the next refresh).
    pub scopes: Vec<String>,
    /// Where installation webhooks go, if anywhere.
    pub webhook_url: Option<String>,
    /// Where the platform's UI sends a user after installing (the answer's
    /// `redirectTo` carries it with `code`, `installationId` and `orgSlug`).
    pub redirect_url: Option<String>,
    /// Whether an installation must be confirmed with `PUT {"status": "installed"}`.
    pub verify_install: bool,
    /// Lifetime of an access token in seconds.
    pub access_token_ttl_seconds: i64,
    /// Grace window in seconds for refresh-token replay (0 turns it off).
    pub refresh_grace_seconds: i64,
    /// What a refresh-token reuse after the window does.
    pub reuse_policy: ReusePolicy,
}

/// An app (an integration) registered on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Stable id.
    pub id: Uuid,
    /// Unique, URL-safe name derived from `settings.name`.
    pub slug: String,
    /// Public OAuth client id (64 hex characters).
    pub client_id: String,
    /// The client secret sealed under the server key, bound to this app's id.
    pub client_secret: Ciphertext,
    /// The changeable settings.
    pub settings: AppSettings,
    /// When the app was created.
    pub created_at: DateTime<Utc>,
    /// When the settings or secret last changed.
    pub updated_at: DateTime<Utc>,
}

impl App {
    /// The associated data that binds the sealed client secret to this app.
    pub fn secret_aad(id: Uuid) -> String {
        format!("app:{id}:client_secret")
    }
}

/// Lifecycle of an installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallationStatus {
    /// Created; not yet confirmed by the app.
    Pending,
    /// Confirmed (or, for apps without `verify_install`, its code was exchanged).
    Installed,
}

impl InstallationStatus {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            InstallationStatus::Pending => "pending",
            InstallationStatus::Installed => "installed",
        }
    }

    /// Parses the wire and storage name.
    pub fn parse(s: &str) -> Option<InstallationStatus> {
        match s {
            "pending" => Some(InstallationStatus::Pending),
            "installed" => Some(InstallationStatus::Installed),
            _ => None,
        }
    }
}

/// An app installed into a customer organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// The installation's uuid, used in every route.
    pub id: Uuid,
    /// The installed app.
    pub app_id: Uuid,
    /// The app's slug, kept alongside for answers.
    pub app_slug: String,
    /// The organization it is installed in.
    pub org_slug: String,
    /// Pending until confirmed.
    pub status: InstallationStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was deleted; a deleted installation is gone for every purpose.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A single-use grant code, stored only as its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// SHA-256 of the code.
    pub code_hash: TokenHash,
    /// The installation it was issued for.
    pub installation_id: Uuid,
    /// The app it was issued to.
    pub app_id: Uuid,
    /// Ten minutes after issue.
    pub expires_at: DateTime<Utc>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

/// An issued access + refresh token pair, as stored (hashes only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token's id (the `id` of the Sentry answer).
    pub id: Uuid,
    /// The family: every pair descended from one grant exchange or manual refresh.
    pub family_id: Uuid,
    /// The installation the pair belongs to.
    pub installation_id: Uuid,
    /// The app the pair was issued to.
    pub app_id: Uuid,
    /// SHA-256 of the access token.
    pub access_hash: TokenHash,
    /// SHA-256 of the refresh token.
    pub refresh_hash: TokenHash,
    /// Scopes granted, as the app had them at issue.
    pub scopes: Vec<String>,
    /// When the access token stops working.
    pub expires_at: DateTime<Utc>,
    /// When the refresh token stops working: the idle limit after issue, but
    /// never past the family's end.
    pub refresh_expires_at: DateTime<Utc>,
    /// When the family ends, whatever is refreshed.
    pub family_expires_at: DateTime<Utc>,
    /// When the pair was issued.
    pub created_at: DateTime<Utc>,
    /// The pair this one replaced by refresh, if any.
    pub parent_id: Option<Uuid>,
    /// The pair that replaced this one by refresh, once it has been retired
    /// so (recorded since schema 7; `None` on pairs retired before).
    pub successor_id: Option<Uuid>,
    /// Set when a refresh replaced this pair.
    pub retired_at: Option<DateTime<Utc>>,
    /// Set when the pair (or its family, or its installation) was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl IssuedToken {
    /// Whether the access token is usable at `now`.
    pub fn access_is_live(&self, now: DateTime<Utc>) -> bool {
        self.retired_at.is_none() && self.revoked_at.is_none() && now < self.expires_at
    }

    /// Whether the refresh token can be traded at `now`.
    pub fn refresh_is_live(&self, now: DateTime<Utc>) -> bool {
        self.retired_at.is_none() && self.revoked_at.is_none() && now < self.refresh_expires_at
    }
}

/// A `jti` of a client-secret JWT, remembered until the JWT would expire so
/// it cannot be replayed (across restarts too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedJti {
    /// The app whose secret signed the JWT.
    pub app_id: Uuid,
    /// The JWT id.
    pub jti: String,
    /// When the JWT expires; the record may be dropped after this.
    pub expires_at: DateTime<Utc>,
}

/// The kind of exchange recorded with `token_exchanged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeType {
    /// A grant code was exchanged.
    Authorization,
    /// A refresh token was traded.
    Refresh,
    /// A client-secret JWT obtained a new pair.
    ManualRefresh,
}

impl ExchangeType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeType::Authorization => "authorization",
            ExchangeType::Refresh => "refresh",
            ExchangeType::ManualRefresh => "manual_refresh",
        }
    }
}

/// What an event records. Stored and shown as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A grant code or refresh token was exchanged for a new pair.
    TokenExchanged,
    /// The audit record of an exchange (caller IP, client).
    TokenExchangeAudit,
    /// A retired refresh token came back within its grace window and got
    /// the same successor pair again.
    RefreshReplayed,
    /// A retired refresh token came back after its grace window.
    RefreshTokenReused,
    /// A token family was revoked (by the app or the operator).
    TokenRevoked,
    /// An app was installed into an organization.
    InstallationCreated,
    /// An installation was deleted.
    InstallationDeleted,
    /// An app was deleted.
    AppDeleted,
    /// An upstream identity was refreshed.
    IdentityRefreshed,
    /// The provider refused an identity's grant: it needs re-authorization.
    IdentityInvalid,
    /// An identity's refresh failed in a way worth retrying.
    IdentityRefreshFailed,
    /// An identity got new credentials.
    IdentityReauthorized,
    /// A webhook was delivered.
    WebhookDelivered,
    /// A webhook was given up after its last attempt.
    WebhookFailed,
}

impl EventKind {
    /// Every kind, in the order above.
    pub const ALL: [EventKind; 14] = [
        EventKind::TokenExchanged,
        EventKind::TokenExchangeAudit,
        EventKind::RefreshReplayed,
        EventKind::RefreshTokenReused,
        EventKind::TokenRevoked,
        EventKind::InstallationCreated,
        EventKind::InstallationDeleted,
        EventKind::AppDeleted,
        EventKind::IdentityRefreshed,
        EventKind::IdentityInvalid,
        EventKind::IdentityRefreshFailed,
        EventKind::IdentityReauthorized,
        EventKind::WebhookDelivered,
        EventKind::WebhookFailed,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TokenExchanged => "token_exchanged",
            EventKind::TokenExchangeAudit => "token_exchange_audit",
            EventKind::RefreshReplayed => "refresh_replayed",
            EventKind::RefreshTokenReused => "refresh_token_reused",
            EventKind::TokenRevoked => "token_revoked",
            EventKind::InstallationCreated => "installation_created",
            EventKind::InstallationDeleted => "installation_deleted",
            EventKind::AppDeleted => "app_deleted",
            EventKind::IdentityRefreshed => "identity_refreshed",
            EventKind::IdentityInvalid => "identity_invalid",
            EventKind::IdentityRefreshFailed => "identity_refresh_failed",
            EventKind::IdentityReauthorized => "identity_reauthorized",
            EventKind::WebhookDelivered => "webhook_delivered",
            EventKind::WebhookFailed => "webhook_failed",
        }
    }

    /// Parses the stored and wire name.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Every name, comma-separated (for error messages).
    pub fn names() -> String {
        EventKind::ALL.map(EventKind::as_str).join(", ")
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event or audit record to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// What it records.
    pub kind: EventKind,
    /// The installation concerned.
    pub installation_id: Option<Uuid>,
    /// The upstream identity concerned.
    pub identity_id: Option<String>,
    /// For exchanges: `authorization`, `refresh`, `manual_refresh`.
    pub exchange_type: Option<String>,
    /// The caller's IP address, for audit records.
    pub ip: Option<String>,
    /// The app's client id or slug that acted, where known.
    pub actor: Option<String>,
    /// Free text (never a secret).
    pub detail: Option<String>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

impl NewEvent {
    /// An event of `kind` at `created_at`, every other field empty.
    pub fn new(kind: EventKind, created_at: DateTime<Utc>) -> Self {
        NewEvent {
            kind,
            installation_id: None,
            identity_id: None,
            exchange_type: None,
            ip: None,
            actor: None,
            detail: None,
            created_at,
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Monotonic id; larger is newer.
    pub id: i64,
    /// The recorded values.
    pub event: NewEvent,
}

/// Filter for listing events, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this installation's events.
    pub installation_id: Option<Uuid>,
    /// Only this identity's events.
    pub identity_id: Option<String>,
    /// Only events of this kind.
    pub kind: Option<EventKind>,
    /// At most this many.
    pub limit: u32,
    /// Only events older than this id (the cursor of the next page).
    pub before: Option<i64>,
}

/// Filter for listing live installations, newest first.
#[derive(Debug, Clone, Default)]
pub struct InstallationFilter {
    /// Only this app's installations.
    pub app_id: Option<Uuid>,
    /// Only this organization's installations.
    pub org_slug: Option<String>,
    /// Only those older than this (created at, id): the last one of the
    /// previous page, the cursor of the next.
    pub before: Option<(DateTime<Utc>, Uuid)>,
    /// At most this many.
    pub limit: u32,
}

impl InstallationFilter {
    /// The cursor of the page after `last`: `<created at, Unix µs>.<uuid>`.
    pub fn cursor_after(last: &Installation) -> String {
        format!("{}.{}", last.created_at.timestamp_micros(), last.id)
    }

    /// Reads a cursor made by [`InstallationFilter::cursor_after`].
    pub fn parse_cursor(c: &str) -> Option<(DateTime<Utc>, Uuid)> {
        let (micros, id) = c.split_once('.')?;
        let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        Some((at, Uuid::parse_str(id).ok()?))
    }
}
