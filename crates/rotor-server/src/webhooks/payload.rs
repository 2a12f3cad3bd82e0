//! The bodies Rotor sends, as typed values (Sentry's installation webhook,
//! and the platform's identity webhook), and their exact bytes: compact JSON
//! with non-ASCII escaped, which is what receivers that re-serialize before
//! checking the signature hash (see [`rotor_core::webhook::ascii_json`]).

use serde::Serialize;
use uuid::Uuid;

/// Who caused the change (Sentry's `actor`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Actor {
    /// `user` or `application`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The actor's id, as the platform knows it.
    pub id: String,
    /// Display name.
    pub name: String,
}

impl Actor {
    /// The operator acting through the admin API or the CLI, when it did
    /// not say on whose behalf.
    pub fn operator() -> Self {
        Self {
            kind: "application".into(),
            id: "rotor-admin".into(),
            name: "Rotor operator".into(),
        }
    }

    /// A user of the platform, named by the operator.
    pub fn user(id: String, name: String) -> Self {
        Self {
            kind: "user".into(),
            id,
            name,
        }
    }
}

/// `{"uuid"}`.
#[derive(Debug, Serialize)]
pub struct UuidRef {
    /// The id.
    pub uuid: Uuid,
}

/// `{"slug"}`.
#[derive(Debug, Serialize)]
pub struct SlugRef<'a> {
    /// The slug.
    pub slug: &'a str,
}

/// An app as an installation webhook names it.
#[derive(Debug, Serialize)]
pub struct AppRef<'a> {
    /// The app's id.
    pub uuid: Uuid,
    /// The app's slug.
    pub slug: &'a str,
}

/// The installation inside `data`.
#[derive(Debug, Serialize)]
pub struct HookInstallation<'a> {
    /// The installation's id.
    pub uuid: Uuid,
    /// `pending` or `installed`.
    pub status: &'a str,
    /// The grant code (`created` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
    /// The installed app.
    pub app: AppRef<'a>,
    /// The organization.
    pub organization: SlugRef<'a>,
}

/// `data` of an installation webhook.
#[derive(Debug, Serialize)]
pub struct InstallationData<'a> {
    /// The installation.
    pub installation: HookInstallation<'a>,
}

/// The body of `installation.created` and `installation.deleted`.
#[derive(Debug, Serialize)]
pub struct InstallationHook<'a> {
    /// `created` or `deleted`.
    pub action: &'a str,
    /// `{"uuid"}` of the installation.
    pub installation: UuidRef,
    /// The installation in full.
    pub data: InstallationData<'a>,
    /// Who did it.
    pub actor: &'a Actor,
}

/// The identity inside `data`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookIdentity<'a> {
    /// The identity's id.
    pub id: Uuid,
    /// Its provider's key.
    pub provider: &'a str,
    /// Its id at the provider.
    pub external_id: &'a str,
    /// `active` or `invalid`.
    pub status: &'a str,
    /// The provider's last error, if any.
    pub last_error: Option<&'a str>,
}

/// `data` of an identity webhook.
#[derive(Debug, Serialize)]
pub struct IdentityData<'a> {
    /// The identity.
    pub identity: HookIdentity<'a>,
}

/// The body of the platform's `identity` webhooks.
#[derive(Debug, Serialize)]
pub struct IdentityHook<'a> {
    /// `invalid` or `reauthorized`.
    pub action: &'a str,
    /// The identity.
    pub data: IdentityData<'a>,
}

/// The exact bytes sent for `body`.
pub fn bytes<T: Serialize>(body: &T) -> Vec<u8> {
    let compact = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    rotor_core::webhook::ascii_json(&compact).into_bytes()
}
