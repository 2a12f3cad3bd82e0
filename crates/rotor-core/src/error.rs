//! Why a request is refused, in domain words. The HTTP layer maps each variant
//! to a status and a wire format (Sentry `{"detail"}` or RFC 6749 `{"error"}`);
//! the messages here are the Sentry-compatible `detail` texts.

/// A refusal decided by the domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// Client id unknown or secret wrong.
    #[error("Invalid Client ID / Secret pair")]
    InvalidClient,
    /// The installation does not exist or was deleted.
    #[error("Installation does not exist")]
    InstallationNotFound,
    /// The installation belongs to another app.
    #[error("Installation is not for this app")]
    InstallationNotForApp,
    /// No grant has this code (never issued, or already used).
    #[error("Could not find grant for the given code")]
    GrantNotFound,
    /// The grant belongs to another installation or app.
    #[error("Forbidden grant")]
    ForbiddenGrant,
    /// The grant is older than its 10 minutes.
    #[error("Grant has already expired.")]
    GrantExpired,
    /// No live token has this refresh token.
    #[error("Given refresh token does not exist")]
    RefreshTokenNotFound,
    /// The refresh token was already traded and is presented again outside
    /// the grace window (or after its successor was used): treated as theft.
    #[error("Refresh token was already used")]
    RefreshTokenReused,
    /// The refresh token passed its idle or family lifetime.
    #[error("Refresh token has expired")]
    RefreshTokenExpired,
    /// The refresh token's family was revoked.
    #[error("Refresh token has been revoked")]
    RefreshTokenRevoked,
    /// A client-secret JWT that does not verify or whose claims are wrong.
    #[error("Invalid client assertion: {0}")]
    InvalidAssertion(String),
    /// A client-secret JWT whose `jti` was already used.
    #[error("Invalid client assertion: jti was already used")]
    AssertionReplayed,
    /// The refresh token was issued to another app.
    #[error("Token does not belong to the application")]
    TokenNotForApp,
    /// The refresh token was issued for another installation.
    #[error("Token does not belong to the installation")]
    TokenNotForInstallation,
    /// A bearer token that is missing, malformed, expired, retired or revoked.
    #[error("Invalid or expired token")]
    InvalidBearer,
    /// A live bearer token of another installation.
    #[error("You do not have permission to perform this action.")]
    Forbidden,
    /// A scope name outside the platform's vocabulary.
    #[error("Unknown scope: {scope}. Valid scopes: {valid}")]
    InvalidScope {
        /// The refused name (at most 64 characters of it).
        scope: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// A setting out of its range.
    #[error("{0}")]
    InvalidSetting(String),
}
