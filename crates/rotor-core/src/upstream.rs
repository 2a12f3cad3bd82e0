//! Upstream provider and identity records: what Rotor holds on behalf of its
//! customers at other OAuth providers. Secrets are stored only sealed, each
//! bound to its row and field.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::keys::Ciphertext;

/// A configured upstream provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamProvider {
    /// Unique key chosen by the operator.
    pub key: String,
    /// The provider kind's wire name (`oauth2`, `github-app`, …).
    pub kind: String,
    /// Public settings as JSON (no secrets).
    pub config: String,
    /// The write-only secrets, sealed as one JSON document.
    pub secrets: Ciphertext,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl UpstreamProvider {
    /// Associated data binding the sealed secrets to this provider.
    pub fn secrets_aad(key: &str) -> String {
        format!("provider:{key}:secrets")
    }
}

/// Whether an identity can still be refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityStatus {
    /// Refreshes normally.
    Active,
    /// The provider refused the grant: a human must re-authorize.
    Invalid,
}

impl IdentityStatus {
    /// Every status.
    pub const ALL: [IdentityStatus; 2] = [IdentityStatus::Active, IdentityStatus::Invalid];

    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityStatus::Active => "active",
            IdentityStatus::Invalid => "invalid",
        }
    }

    /// Parses the wire and storage name.
    pub fn parse(s: &str) -> Option<IdentityStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One page of the identities list, in id order.
#[derive(Debug, Clone, Default)]
pub struct IdentityFilter {
    /// Only identities in this state.
    pub status: Option<IdentityStatus>,
    /// Only identities at this provider (its key).
    pub provider: Option<String>,
    /// Only identities whose id sorts after this one (the page cursor).
    pub after: Option<Uuid>,
    /// At most this many.
    pub limit: u32,
}

/// An identity at an upstream provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamIdentityRecord {
    /// Rotor's id for it.
    pub id: Uuid,
    /// The provider's key.
    pub provider: String,
    /// The account at the provider (user id, tenant, installation …).
    pub external_id: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// The current access token, sealed (AAD `identity:<id>:access_token`).
    pub access_token: Option<Ciphertext>,
    /// The refresh token, sealed (AAD `identity:<id>:refresh_token`).
    pub refresh_token: Option<Ciphertext>,
    /// Token type of the access token.
    pub token_type: String,
    /// When the access token expires (`None`: unknown, treat as expired).
    pub expires_at: Option<DateTime<Utc>>,
    /// GitHub App installation id.
    pub installation_id: Option<String>,
    /// Active or needing re-authorization.
    pub status: IdentityStatus,
    /// When the last successful refresh was sent.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// Transient failures since the last success.
    pub failure_count: i64,
    /// The last failure's reason (never a secret).
    pub last_error: Option<String>,
    /// No background attempt before this (backoff).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl UpstreamIdentityRecord {
    /// AAD of a sealed token field of identity `id`.
    pub fn aad(id: Uuid, field: &str) -> String {
        format!("identity:{id}:{field}")
    }
}
