//! Apps: create, change, list, rotate the client secret.

use rand::RngCore;
use rotor_core::{
    slug, validate, App, AppSettings, ReusePolicy, Token, TokenKind,
    DEFAULT_ACCESS_TOKEN_TTL_SECONDS, DEFAULT_REFRESH_GRACE_SECONDS,
};
use rotor_store::StoreError;
use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult};

/// What an operator gives to create an app.
#[derive(Debug, Clone)]
pub struct NewApp {
    /// Human name; the slug is derived from it.
    pub name: String,
    /// Scopes of every token.
    pub scopes: Vec<String>,
    /// Installation webhook target.
    pub webhook_url: Option<String>,
    /// Where the platform's UI sends a user after installing.
    pub redirect_url: Option<String>,
    /// Whether installs must be confirmed by the app.
    pub verify_install: bool,
    /// Access-token lifetime (default 8 hours).
    pub access_token_ttl_seconds: Option<i64>,
    /// Refresh grace window (default 60 s).
    pub refresh_grace_seconds: Option<i64>,
    /// Reuse policy (default `revoke_family`).
    pub reuse_policy: Option<ReusePolicy>,
}

/// A change to an app's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct AppPatch {
    /// New name (the slug does not change).
    pub name: Option<String>,
    /// New scopes; take effect at each token's next refresh.
    pub scopes: Option<Vec<String>>,
    /// `Some(None)` clears the webhook URL.
    pub webhook_url: Option<Option<String>>,
    /// `Some(None)` clears the redirect URL.
    pub redirect_url: Option<Option<String>>,
    /// New verify-install flag.
    pub verify_install: Option<bool>,
    /// New access-token lifetime.
    pub access_token_ttl_seconds: Option<i64>,
    /// New grace window.
    pub refresh_grace_seconds: Option<i64>,
    /// New reuse policy.
    pub reuse_policy: Option<ReusePolicy>,
}

/// A created app and its client secret, shown this once.
#[derive(Debug, Clone)]
pub struct CreatedApp {
    /// The stored app.
    pub app: App,
    /// The plaintext client secret.
    pub client_secret: Token,
}

/// What deleting an app does while it still has live installations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhileInstalled {
    /// Refuse (`Conflict`).
    Refuse,
    /// Uninstall each first (their tokens stop working at once).
    Uninstall,
}

impl Service {
    /// Creates an app with a new client id and secret.
    pub async fn create_app(&self, new: NewApp) -> ServiceResult<CreatedApp> {
        let settings = validate::app_settings(
            AppSettings {
                name: new.name,
                scopes: new.scopes,
                webhook_url: new.webhook_url,
                redirect_url: new.redirect_url,
                verify_install: new.verify_install,
                access_token_ttl_seconds: new
                    .access_token_ttl_seconds
                    .unwrap_or(DEFAULT_ACCESS_TOKEN_TTL_SECONDS),
                refresh_grace_seconds: new
                    .refresh_grace_seconds
                    .unwrap_or(DEFAULT_REFRESH_GRACE_SECONDS),
                reuse_policy: new.reuse_policy.unwrap_or_default(),
            },
            &self.scopes,
        )?;
        let id = Uuid::new_v4();
        let secret = Token::generate(TokenKind::ClientSecret);
        let mut client_id = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut client_id);
        let now = self.now();
        let app = App {
            id,
            slug: slug::slugify(&settings.name),
            client_id: hex::encode(client_id),
            client_secret: self
                .keyring
                .seal(secret.expose().as_bytes(), &App::secret_aad(id)),
            settings,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_app(&app).await {
            Ok(()) => {}
            Err(StoreError::Conflict(rotor_store::Conflict::Slug)) => {
                return Err(ServiceError::Conflict(format!(
                    "an app with the slug {} already exists",
                    app.slug
                )))
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(app = %app.slug, client_id = %app.client_id, "app created");
        Ok(CreatedApp {
            app,
            client_secret: secret,
        })
    }

    /// The app with this slug.
    pub async fn app(&self, slug: &str) -> ServiceResult<App> {
        self.store
            .app_by_slug(slug)
            .await?
            .ok_or(ServiceError::NotFound("App"))
    }

    /// All apps.
    pub async fn list_apps(&self) -> ServiceResult<Vec<App>> {
        Ok(self.store.list_apps().await?)
    }

    /// Deletes an app and everything issued for it. While it has live
    /// installations it is refused (`Conflict`) unless
    /// [`WhileInstalled::Uninstall`], which
    /// uninstalls each first (their tokens stop working at once). Nothing is
    /// sent on the deleted app's behalf afterwards: its pending webhooks go
    /// with it. Answers how many installations were uninstalled.
    #[tracing::instrument(name = "apps.delete", skip_all)]
    pub async fn delete_app(&self, slug: &str, live: WhileInstalled) -> ServiceResult<usize> {
        let app = self.app(slug).await?;
        let mut uninstalled = 0;
        if live == WhileInstalled::Uninstall {
            loop {
                let page = self
                    .store
                    .list_installations(&rotor_core::InstallationFilter {
                        app_id: Some(app.id),
                        limit: 500,
                        ..Default::default()
                    })
                    .await?;
                if page.is_empty() {
                    break;
                }
                for inst in page {
                    match self.delete_installation(inst.id, None).await {
                        Ok(_) | Err(ServiceError::NotFound(_)) => uninstalled += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        match self.store.delete_app(app.id).await {
            Ok(()) => {}
            Err(StoreError::Conflict(why)) => {
                return Err(ServiceError::Conflict(format!(
                    "{why}: uninstall them first, or delete with ?force=true"
                )))
            }
            Err(StoreError::NotFound) => return Err(ServiceError::NotFound("App")),
            Err(e) => return Err(e.into()),
        }
        self.record(rotor_core::NewEvent {
            actor: Some(app.slug.clone()),
            detail: Some(format!("{uninstalled} installation(s) uninstalled with it")),
            ..rotor_core::NewEvent::new(rotor_core::EventKind::AppDeleted, self.now())
        })
        .await;
        tracing::info!(app = %app.slug, uninstalled, "app deleted");
        Ok(uninstalled)
    }

    /// Changes an app's settings.
    pub async fn update_app(&self, slug: &str, patch: AppPatch) -> ServiceResult<App> {
        let mut app = self.app(slug).await?;
        let s = app.settings.clone();
        app.settings = validate::app_settings(
            AppSettings {
                name: patch.name.unwrap_or(s.name),
                scopes: patch.scopes.unwrap_or(s.scopes),
                webhook_url: patch.webhook_url.unwrap_or(s.webhook_url),
                redirect_url: patch.redirect_url.unwrap_or(s.redirect_url),
                verify_install: patch.verify_install.unwrap_or(s.verify_install),
                access_token_ttl_seconds: patch
                    .access_token_ttl_seconds
                    .unwrap_or(s.access_token_ttl_seconds),
                refresh_grace_seconds: patch
                    .refresh_grace_seconds
                    .unwrap_or(s.refresh_grace_seconds),
                reuse_policy: patch.reuse_policy.unwrap_or(s.reuse_policy),
            },
            &self.scopes,
        )?;
        app.updated_at = self.now();
        self.store.update_app(&app).await?;
        tracing::info!(app = %app.slug, "app updated");
        Ok(app)
    }

    /// Replaces the app's client secret; the old one stops working at once.
    pub async fn rotate_secret(&self, slug: &str) -> ServiceResult<Token> {
        let mut app = self.app(slug).await?;
        let secret = Token::generate(TokenKind::ClientSecret);
        app.client_secret = self
            .keyring
            .seal(secret.expose().as_bytes(), &App::secret_aad(app.id));
        app.updated_at = self.now();
        self.store.update_app(&app).await?;
        tracing::info!(app = %app.slug, secret_last4 = %secret.last4(), "client secret rotated");
        Ok(secret)
    }
}
