//! The validation steps of each exchange, in the order of the reference
//! design. Pure functions over records already read from the store; each
//! takes what the store found (`Option`) and answers the checked record, so
//! the use case holds a validated value, never an `Option` it must trust;
//! it then makes one atomic store call.

use chrono::{DateTime, Utc};
use url::Url;

use crate::error::CoreError;
use crate::model::{App, AppSettings, Grant, Installation, IssuedToken};
use crate::scope;

/// The installation exists, is not deleted, and belongs to `app`.
pub fn installation_for_app(
    app: &App,
    installation: Option<Installation>,
) -> Result<Installation, CoreError> {
    let inst = installation.ok_or(CoreError::InstallationNotFound)?;
    if inst.deleted_at.is_some() {
        return Err(CoreError::InstallationNotFound);
    }
    if inst.app_id != app.id {
        return Err(CoreError::InstallationNotForApp);
    }
    Ok(inst)
}

/// The grant exists, belongs to this installation and app, and has not expired.
pub fn grant(
    app: &App,
    installation: &Installation,
    grant: Option<Grant>,
    now: DateTime<Utc>,
) -> Result<Grant, CoreError> {
    let g = grant.ok_or(CoreError::GrantNotFound)?;
    if g.installation_id != installation.id || g.app_id != app.id {
        return Err(CoreError::ForbiddenGrant);
    }
    if now >= g.expires_at {
        return Err(CoreError::GrantExpired);
    }
    Ok(g)
}

/// Where a presented refresh token stands once it is known to be the app's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshState {
    /// Live: rotate it.
    Live,
    /// Already rotated: a replay within the grace window, or reuse.
    Retired,
}

/// The refresh token exists and belongs to this app (and installation, when
/// the route names one); it is not revoked or expired. Says whether it is
/// live or already rotated — what happens to a rotated one is
/// [`retired_refresh`]'s decision.
pub fn refresh(
    app: &App,
    installation: Option<&Installation>,
    token: Option<IssuedToken>,
    now: DateTime<Utc>,
) -> Result<(IssuedToken, RefreshState), CoreError> {
    let t = token.ok_or(CoreError::RefreshTokenNotFound)?;
    if t.app_id != app.id {
        return Err(CoreError::TokenNotForApp);
    }
    if installation.is_some_and(|i| t.installation_id != i.id) {
        return Err(CoreError::TokenNotForInstallation);
    }
    if t.revoked_at.is_some() {
        return Err(CoreError::RefreshTokenRevoked);
    }
    if now >= t.refresh_expires_at {
        return Err(CoreError::RefreshTokenExpired);
    }
    let state = if t.retired_at.is_some() {
        RefreshState::Retired
    } else {
        RefreshState::Live
    };
    Ok((t, state))
}

/// What to do with a retired refresh token presented again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetiredDecision {
    /// Within the grace window and the successor untouched: answer with the
    /// successor pair again.
    Replay,
    /// Reuse after the window (or after the successor moved on): theft.
    Reuse,
}

/// Decides a replay against reuse (RFC 9700 §4.14.2 with a grace window):
/// a replay needs the app's window to be open (`grace > 0`), the token to
/// have been retired less than `grace` ago, and its successor — the pair
/// derived from it — to be stored, its child, and still live.
pub fn retired_refresh(
    app: &App,
    retired: &IssuedToken,
    successor: Option<&IssuedToken>,
    now: DateTime<Utc>,
) -> RetiredDecision {
    let grace = chrono::Duration::seconds(app.settings.refresh_grace_seconds);
    let in_window = retired
        .retired_at
        .is_some_and(|at| grace > chrono::Duration::zero() && now < at + grace);
    let successor_fresh = successor.is_some_and(|s| {
        s.parent_id == Some(retired.id) && s.refresh_is_live(now) && s.access_is_live(now)
    });
    if in_window && successor_fresh {
        RetiredDecision::Replay
    } else {
        RetiredDecision::Reuse
    }
}

/// A bearer access token is live and belongs to `installation`.
pub fn bearer_for_installation(
    token: Option<&IssuedToken>,
    installation: Option<&Installation>,
    expected_installation: uuid::Uuid,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    let t = token.ok_or(CoreError::InvalidBearer)?;
    if !t.access_is_live(now) {
        return Err(CoreError::InvalidBearer);
    }
    match installation {
        Some(i) if i.deleted_at.is_none() => {}
        _ => return Err(CoreError::InvalidBearer),
    }
    if t.installation_id != expected_installation {
        return Err(CoreError::Forbidden);
    }
    Ok(())
}

/// Checks that an optional setting is an absolute http(s) URL with a host.
fn http_url(field: &str, url: Option<&str>) -> Result<(), CoreError> {
    match url.map(Url::parse) {
        None => Ok(()),
        Some(Ok(u)) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {
            Ok(())
        }
        Some(_) => Err(CoreError::InvalidSetting(format!(
            "{field} must be an absolute http(s) URL"
        ))),
    }
}

/// Upper bound on an access-token lifetime: 30 days.
pub const MAX_ACCESS_TOKEN_TTL_SECONDS: i64 = 30 * 24 * 3600;
/// Upper bound on the grace window: 10 minutes.
pub const MAX_REFRESH_GRACE_SECONDS: i64 = 600;

/// Checks and normalizes app settings (scopes sorted and in the platform's
/// vocabulary, ranges, webhook and redirect URLs).
pub fn app_settings(
    mut s: AppSettings,
    vocabulary: &scope::ScopeVocabulary,
) -> Result<AppSettings, CoreError> {
    let name = s.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(CoreError::InvalidSetting(
            "name must be 1 to 100 characters".into(),
        ));
    }
    if crate::slug::slugify(name).is_empty() {
        return Err(CoreError::InvalidSetting(
            "name must contain at least one ASCII letter or digit".into(),
        ));
    }
    s.name = name.to_owned();
    s.scopes = vocabulary.normalize(&s.scopes)?;
    http_url("webhookUrl", s.webhook_url.as_deref())?;
    http_url("redirectUrl", s.redirect_url.as_deref())?;
    if !(60..=MAX_ACCESS_TOKEN_TTL_SECONDS).contains(&s.access_token_ttl_seconds) {
        return Err(CoreError::InvalidSetting(format!(
            "accessTokenTtlSeconds must be between 60 and {MAX_ACCESS_TOKEN_TTL_SECONDS}"
        )));
    }
    if !(0..=MAX_REFRESH_GRACE_SECONDS).contains(&s.refresh_grace_seconds) {
        return Err(CoreError::InvalidSetting(format!(
            "refreshGraceSeconds must be between 0 and {MAX_REFRESH_GRACE_SECONDS}"
        )));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Ciphertext;
    use crate::model::*;
    use crate::token::TokenHash;
    use chrono::Duration;
    use uuid::Uuid;

    fn app() -> App {
        App {
            id: Uuid::new_v4(),
            slug: "a".into(),
            client_id: "c".into(),
            client_secret: Ciphertext {
                key_id: "k".into(),
                bytes: vec![],
            },
            settings: settings(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn settings() -> AppSettings {
        AppSettings {
            name: "A".into(),
            scopes: vec!["project:read".into()],
            webhook_url: None,
            redirect_url: None,
            verify_install: false,
            access_token_ttl_seconds: DEFAULT_ACCESS_TOKEN_TTL_SECONDS,
            refresh_grace_seconds: DEFAULT_REFRESH_GRACE_SECONDS,
            reuse_policy: ReusePolicy::RevokeFamily,
        }
    }

    fn inst(app: &App) -> Installation {
        Installation {
            id: Uuid::new_v4(),
            app_id: app.id,
            app_slug: app.slug.clone(),
            org_slug: "o".into(),
            status: InstallationStatus::Pending,
            created_at: Utc::now(),
            deleted_at: None,
        }
    }

    fn token(app: &App, inst: &Installation) -> IssuedToken {
        IssuedToken {
            id: Uuid::new_v4(),
            family_id: Uuid::new_v4(),
            installation_id: inst.id,
            app_id: app.id,
            access_hash: TokenHash([1; 32]),
            refresh_hash: TokenHash([2; 32]),
            scopes: vec![],
            expires_at: Utc::now() + Duration::hours(1),
            refresh_expires_at: Utc::now() + Duration::days(30),
            family_expires_at: Utc::now() + Duration::days(365),
            created_at: Utc::now(),
            parent_id: None,
            successor_id: None,
            retired_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn installation_checks() {
        let a = app();
        let mut i = inst(&a);
        assert_eq!(
            installation_for_app(&a, None),
            Err(CoreError::InstallationNotFound)
        );
        assert_eq!(
            installation_for_app(&a, Some(i.clone())).map(|x| x.id),
            Ok(i.id)
        );
        i.app_id = Uuid::new_v4();
        assert_eq!(
            installation_for_app(&a, Some(i.clone())),
            Err(CoreError::InstallationNotForApp)
        );
        i.app_id = a.id;
        i.deleted_at = Some(Utc::now());
        assert_eq!(
            installation_for_app(&a, Some(i.clone())),
            Err(CoreError::InstallationNotFound)
        );
    }

    #[test]
    fn grant_checks() {
        let a = app();
        let i = inst(&a);
        let now = Utc::now();
        let mut g = Grant {
            code_hash: TokenHash([0; 32]),
            installation_id: i.id,
            app_id: a.id,
            expires_at: now + GRANT_TTL,
            created_at: now,
        };
        assert_eq!(grant(&a, &i, None, now), Err(CoreError::GrantNotFound));
        assert_eq!(grant(&a, &i, Some(g.clone()), now), Ok(g.clone()));
        assert_eq!(
            grant(&a, &i, Some(g.clone()), now + GRANT_TTL),
            Err(CoreError::GrantExpired)
        );
        g.installation_id = Uuid::new_v4();
        assert_eq!(
            grant(&a, &i, Some(g.clone()), now),
            Err(CoreError::ForbiddenGrant)
        );
        g.installation_id = i.id;
        g.app_id = Uuid::new_v4();
        assert_eq!(
            grant(&a, &i, Some(g.clone()), now),
            Err(CoreError::ForbiddenGrant)
        );
    }

    #[test]
    fn refresh_checks() {
        let a = app();
        let i = inst(&a);
        let now = Utc::now();
        let mut t = token(&a, &i);
        let r =
            |t: Option<&IssuedToken>, now| refresh(&a, Some(&i), t.cloned(), now).map(|(_, s)| s);
        assert_eq!(r(None, now), Err(CoreError::RefreshTokenNotFound));
        assert_eq!(r(Some(&t), now), Ok(RefreshState::Live));
        assert_eq!(
            r(Some(&t), t.refresh_expires_at),
            Err(CoreError::RefreshTokenExpired)
        );
        t.retired_at = Some(now);
        assert_eq!(r(Some(&t), now), Ok(RefreshState::Retired));
        t.revoked_at = Some(now);
        assert_eq!(r(Some(&t), now), Err(CoreError::RefreshTokenRevoked));
        t.revoked_at = None;
        t.installation_id = Uuid::new_v4();
        assert_eq!(r(Some(&t), now), Err(CoreError::TokenNotForInstallation));
        assert_eq!(
            refresh(&a, None, Some(t.clone()), now).map(|(_, s)| s),
            Ok(RefreshState::Retired)
        );
        t.app_id = Uuid::new_v4();
        assert_eq!(r(Some(&t), now), Err(CoreError::TokenNotForApp));
    }

    #[test]
    fn replay_needs_the_window_and_a_fresh_successor() {
        let a = app();
        let i = inst(&a);
        let now = Utc::now();
        let mut old = token(&a, &i);
        old.retired_at = Some(now);
        let mut next = token(&a, &i);
        next.parent_id = Some(old.id);
        let d = |succ: Option<&IssuedToken>, at| retired_refresh(&a, &old, succ, at);
        assert_eq!(
            d(Some(&next), now + Duration::seconds(59)),
            RetiredDecision::Replay
        );
        assert_eq!(
            d(Some(&next), now + Duration::seconds(60)),
            RetiredDecision::Reuse
        );
        assert_eq!(d(None, now), RetiredDecision::Reuse);
        let mut used = next.clone();
        used.retired_at = Some(now);
        assert_eq!(d(Some(&used), now), RetiredDecision::Reuse);
        let mut stranger = next.clone();
        stranger.parent_id = Some(Uuid::new_v4());
        assert_eq!(d(Some(&stranger), now), RetiredDecision::Reuse);
        let mut closed = a.clone();
        closed.settings.refresh_grace_seconds = 0;
        assert_eq!(
            retired_refresh(&closed, &old, Some(&next), now),
            RetiredDecision::Reuse
        );
    }
    #[test]
    fn bearer_checks() {
        let a = app();
        let i = inst(&a);
        let t = token(&a, &i);
        let now = Utc::now();
        assert_eq!(
            bearer_for_installation(Some(&t), Some(&i), i.id, now),
            Ok(())
        );
        assert_eq!(
            bearer_for_installation(Some(&t), Some(&i), i.id, t.expires_at),
            Err(CoreError::InvalidBearer)
        );
        assert_eq!(
            bearer_for_installation(Some(&t), Some(&i), Uuid::new_v4(), now),
            Err(CoreError::Forbidden)
        );
        let mut gone = i.clone();
        gone.deleted_at = Some(now);
        assert_eq!(
            bearer_for_installation(Some(&t), Some(&gone), i.id, now),
            Err(CoreError::InvalidBearer)
        );
    }

    #[test]
    fn settings_checks() {
        let v = crate::scope::ScopeVocabulary::sentry();
        assert!(app_settings(settings(), &v).is_ok());
        let mut s = settings();
        s.access_token_ttl_seconds = 10;
        assert!(app_settings(s, &v).is_err());
        let mut s = settings();
        s.refresh_grace_seconds = -1;
        assert!(app_settings(s, &v).is_err());
        let mut s = settings();
        s.webhook_url = Some("ftp://x".into());
        assert!(app_settings(s, &v).is_err());
        let mut s = settings();
        s.redirect_url = Some("/relative".into());
        assert!(app_settings(s, &v).is_err());
        let mut s = settings();
        s.scopes = vec!["nope:read".into()];
        assert!(matches!(
            app_settings(s, &v),
            Err(CoreError::InvalidScope { .. })
        ));
        let mut s = settings();
        s.name = "   ".into();
        assert!(app_settings(s, &v).is_err());
    }
}
