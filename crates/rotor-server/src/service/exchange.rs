//! Token exchange, as the reference design does it: authenticate the app,
//! check the installation, validate the grant or refresh token, then one
//! atomic store call that also records the events.

use chrono::Duration;
use rotor_core::{
    validate, App, CoreError, ExchangeType, Installation, IssuedToken, NewEvent, Secret, Token,
    TokenKind,
};
use rotor_store::{Rotation, StoreError};
use uuid::Uuid;

use super::installs::log_event;
use super::{Service, ServiceResult};

/// How an app proved itself: client id and secret.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The public client id.
    pub client_id: String,
    /// The client secret (redacted in `Debug`).
    pub client_secret: Secret,
}

/// A pair handed to its app: the stored record and the two token strings.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The stored pair (hashes only).
    pub record: IssuedToken,
    /// The access token.
    pub access: Token,
    /// The refresh token.
    pub refresh: Token,
}

impl Service {
    /// Authenticates an app by client id and secret (constant-time compare).
    pub async fn authenticate_client(&self, creds: &ClientCredentials) -> ServiceResult<App> {
        let app = match self.store.app_by_client_id(&creds.client_id).await? {
            Some(app) => app,
            None => return Err(CoreError::InvalidClient.into()),
        };
        let secret = self
            .keyring
            .open(&app.client_secret, &App::secret_aad(app.id))
            .map_err(|e| {
                tracing::error!(app = %app.slug, error = %e, "client secret does not decrypt");
                StoreError::Other("client secret does not decrypt under the server key".into())
            })?;
        let secret = Secret::new(String::from_utf8_lossy(&secret).into_owned());
        if !secret.ct_eq(creds.client_secret.expose()) {
            tracing::info!(
                app = %app.slug,
                secret_last4 = %creds.client_secret.last4(),
                "client authentication failed"
            );
            return Err(CoreError::InvalidClient.into());
        }
        Ok(app)
    }

    async fn installation_of(&self, app: &App, installation: &str) -> ServiceResult<Installation> {
        let found = match Uuid::parse_str(installation) {
            Ok(id) => self.store.installation(id).await?,
            Err(_) => None,
        };
        validate::installation_for_app(app, found.as_ref())?;
        Ok(found.expect("validated above"))
    }

    fn new_pair(
        &self,
        app: &App,
        inst: &Installation,
        family_id: Uuid,
        parent: Option<Uuid>,
        access: &Token,
        refresh: &Token,
    ) -> IssuedToken {
        let now = self.now();
        IssuedToken {
            id: Uuid::new_v4(),
            family_id,
            installation_id: inst.id,
            app_id: app.id,
            access_hash: access.hash(),
            refresh_hash: refresh.hash(),
            scopes: app.settings.scopes.clone(),
            expires_at: now + Duration::seconds(app.settings.access_token_ttl_seconds),
            created_at: now,
            parent_id: parent,
            retired_at: None,
            revoked_at: None,
        }
    }

    fn exchange_events(
        &self,
        app: &App,
        inst: &Installation,
        kind: ExchangeType,
        ip: Option<&str>,
    ) -> [NewEvent; 2] {
        let now = self.now();
        let event = NewEvent {
            kind: "token_exchanged".into(),
            installation_id: Some(inst.id),
            exchange_type: Some(kind.as_str().into()),
            actor: Some(app.slug.clone()),
            created_at: now,
            ..NewEvent::default()
        };
        let audit = NewEvent {
            kind: "token_exchange_audit".into(),
            ip: ip.map(str::to_owned),
            actor: Some(app.client_id.clone()),
            ..event.clone()
        };
        [event, audit]
    }

    /// Exchanges a grant code for the installation's first pair.
    pub async fn exchange_code(
        &self,
        creds: &ClientCredentials,
        installation: &str,
        code: &str,
        ip: Option<&str>,
    ) -> ServiceResult<Issued> {
        let app = self.authenticate_client(creds).await?;
        let inst = self.installation_of(&app, installation).await?;
        let grant = match Token::parse(TokenKind::GrantCode, code) {
            Ok(code) => self.store.grant(&code.hash()).await?,
            Err(_) => None,
        };
        validate::grant(&app, &inst, grant.as_ref(), self.now())?;
        let grant = grant.expect("validated above");

        let access = Token::generate(TokenKind::Access);
        let refresh = Token::generate(TokenKind::Refresh);
        let record = self.new_pair(&app, &inst, Uuid::new_v4(), None, &access, &refresh);
        let events = self.exchange_events(&app, &inst, ExchangeType::Authorization, ip);
        match self
            .store
            .exchange_grant(
                &grant.code_hash,
                &record,
                !app.settings.verify_install,
                &events,
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(CoreError::GrantNotFound.into()),
            Err(StoreError::NotFound) => return Err(CoreError::InstallationNotFound.into()),
            Err(e) => return Err(e.into()),
        }
        events.iter().for_each(log_event);
        Ok(Issued {
            record,
            access,
            refresh,
        })
    }

    /// Trades a refresh token for a new pair; the old pair is retired in the
    /// same transaction. The successor is derived from the presented refresh
    /// token under the server key, so a replay can be recognised later.
    pub async fn refresh(
        &self,
        creds: &ClientCredentials,
        installation: &str,
        refresh_token: &str,
        ip: Option<&str>,
    ) -> ServiceResult<Issued> {
        let app = self.authenticate_client(creds).await?;
        let inst = self.installation_of(&app, installation).await?;
        let presented = Token::parse(TokenKind::Refresh, refresh_token).ok();
        let old = match &presented {
            Some(t) => self.store.token_by_refresh(&t.hash()).await?,
            None => None,
        };
        validate::refresh(&app, &inst, old.as_ref())?;
        let (old, presented) = (old.expect("validated"), presented.expect("validated"));

        let (access, refresh) = self.successor_tokens(&presented);
        let record = self.new_pair(&app, &inst, old.family_id, Some(old.id), &access, &refresh);
        let events = self.exchange_events(&app, &inst, ExchangeType::Refresh, ip);
        match self.store.rotate_refresh(old.id, &record, &events).await? {
            Rotation::Rotated => {}
            Rotation::Lost(_) => return Err(CoreError::RefreshTokenNotFound.into()),
        }
        events.iter().for_each(log_event);
        Ok(Issued {
            record,
            access,
            refresh,
        })
    }

    /// The successor pair of a refresh token: HMAC-derived under the server
    /// key, so the same presented token always yields the same pair.
    fn successor_tokens(&self, presented: &Token) -> (Token, Token) {
        let input = presented.expose().as_bytes();
        (
            Token::derive(TokenKind::Access, &self.successor_key, input),
            Token::derive(TokenKind::Refresh, &self.successor_key, input),
        )
    }
}
