//! Token exchange, as the reference design does it: authenticate the app,
//! check the installation, validate the grant or refresh token, then one
//! atomic store call that also records the events. The Sentry route and
//! `/oauth/token` share these; a route that names no installation lets the
//! grant or token name it.

use chrono::Duration;
use rotor_core::validate::{self, RefreshState, RetiredDecision};
use rotor_core::{
    App, CoreError, ExchangeType, Installation, IssuedToken, NewEvent, ReusePolicy, Secret, Token,
    TokenKind,
};
use rotor_store::{Rotation, StoreError};
use uuid::Uuid;

use super::installs::log_event;
use super::{Service, ServiceError, ServiceResult, ThrottleKey};

/// How an app proves itself.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Client id and secret (Sentry body, HTTP Basic, or form post).
    Secret {
        /// The public client id.
        client_id: String,
        /// The client secret (redacted in `Debug`).
        client_secret: Secret,
    },
    /// An RFC 7523 `client_secret_jwt` assertion whose `aud` must be one of
    /// `audiences`.
    Jwt {
        /// The assertion (redacted in `Debug`).
        assertion: Secret,
        /// Acceptable audiences: the token endpoint URL and the issuer.
        audiences: Vec<String>,
    },
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
    /// Whether this answers a retired refresh token again within the grace
    /// window (the same pair as the first time).
    pub replayed: bool,
}

impl Service {
    /// The app's client secret, opened with the keyring.
    pub(crate) fn client_secret(&self, app: &App) -> ServiceResult<Secret> {
        let raw = self
            .keyring
            .open(&app.client_secret, &App::secret_aad(app.id))
            .map_err(|cause| ServiceError::Sealed {
                what: format!("the client secret of app {}", app.slug),
                cause,
            })?;
        Ok(Secret::new(String::from_utf8_lossy(&raw).into_owned()))
    }

    /// [`Service::authenticate`], throttled: refused with
    /// `ServiceError::Throttled` while the client id or the caller's IP has
    /// too many recent failures; a failure counts against both and is logged
    /// with the client id, IP and installation (never the secret).
    pub async fn authenticate_from(
        &self,
        auth: &ClientAuth,
        ip: Option<&str>,
        installation: Option<&str>,
    ) -> ServiceResult<App> {
        let client_id = match auth {
            ClientAuth::Secret { client_id, .. } => Some(client_id.as_str()),
            ClientAuth::Jwt { .. } => None,
        };
        let keys: Vec<ThrottleKey> = client_id
            .map(|c| ThrottleKey::Client(c.to_owned()))
            .into_iter()
            .chain(ip.map(|i| ThrottleKey::Ip(i.to_owned())))
            .collect();
        self.check_throttle(&keys)?;
        let result = self.authenticate(auth).await;
        if let Err(ServiceError::Refused(CoreError::InvalidClient)) = &result {
            tracing::warn!(
                reason = "invalid client credentials",
                client_id = client_id.unwrap_or("(in a client assertion)"),
                ip = ip.unwrap_or(""),
                installation = installation.unwrap_or(""),
                "client authentication refused"
            );
            self.count_failure(&keys, "client authentication");
        }
        result
    }

    /// Authenticates an app: secret compared in constant time, or a
    /// client-secret JWT verified and its `jti` spent.
    #[tracing::instrument(name = "exchange.authenticate", skip_all)]
    pub async fn authenticate(&self, auth: &ClientAuth) -> ServiceResult<App> {
        match auth {
            ClientAuth::Secret {
                client_id,
                client_secret,
            } => {
                let Some(app) = self.store.app_by_client_id(client_id).await? else {
                    return Err(CoreError::InvalidClient.into());
                };
                if !self.client_secret(&app)?.ct_eq(client_secret.expose()) {
                    tracing::info!(
                        app = %app.slug,
                        secret_last4 = %client_secret.last4(),
                        "client authentication failed"
                    );
                    return Err(CoreError::InvalidClient.into());
                }
                Ok(app)
            }
            ClientAuth::Jwt {
                assertion,
                audiences,
            } => {
                let (app, jti) = self
                    .verify_client_jwt(assertion.expose(), Some(audiences))
                    .await
                    .map_err(|e| match e {
                        super::ServiceError::Refused(_) => CoreError::InvalidClient.into(),
                        other => other,
                    })?;
                match self.store.remember_jti(&jti).await {
                    Ok(()) => Ok(app),
                    Err(StoreError::Conflict(_)) => Err(CoreError::InvalidClient.into()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The installation `id` (as the route gives it) of `app`, validated.
    async fn installation_of(&self, app: &App, id: &str) -> ServiceResult<Installation> {
        self.installation_by_id(app, route_installation_id(id)?)
            .await
    }

    /// The installation `id` of `app`, validated.
    async fn installation_by_id(&self, app: &App, id: Uuid) -> ServiceResult<Installation> {
        let found = self.store.installation(id).await?;
        Ok(validate::installation_for_app(app, found)?)
    }

    /// The installation the route names, if it names one, validated.
    async fn named_installation(
        &self,
        app: &App,
        installation: Option<&str>,
    ) -> ServiceResult<Option<Installation>> {
        match installation {
            Some(id) => Ok(Some(self.installation_of(app, id).await?)),
            None => Ok(None),
        }
    }

    /// A new pair record `id` for `inst`: a new family when `parent` is
    /// `None`, else the parent's successor in the parent's family. `access`
    /// and `refresh` carry `id` as their selector.
    ///
    /// Pair and family ids are UUIDv7 (time-ordered, from [`Uuid::now_v7`]):
    /// a rotation then appends to the right edge of the id indexes instead of
    /// dirtying a random page of each, which is most of what a commit
    /// writes. The time a v7 id carries is the pair's `dateCreated`, which
    /// the answer holds anyway.
    fn new_pair(
        &self,
        app: &App,
        inst: &Installation,
        parent: Option<&IssuedToken>,
        id: Uuid,
        access: &Token,
        refresh: &Token,
    ) -> IssuedToken {
        let now = self.now();
        let (family_id, family_expires_at) = match parent {
            Some(p) => (p.family_id, p.family_expires_at),
            None => (Uuid::now_v7(), now + self.lifetimes.family_absolute),
        };
        IssuedToken {
            id,
            family_id,
            installation_id: inst.id,
            app_id: app.id,
            access_hash: access.hash(),
            refresh_hash: refresh.hash(),
            scopes: app.settings.scopes.clone(),
            expires_at: now + Duration::seconds(app.settings.access_token_ttl_seconds),
            refresh_expires_at: (now + self.lifetimes.refresh_idle).min(family_expires_at),
            family_expires_at,
            created_at: now,
            parent_id: parent.map(|p| p.id),
            successor_id: None,
            retired_at: None,
            revoked_at: None,
        }
    }

    /// The `token_exchanged` event and its audit record with the caller's IP.
    fn exchange_events(
        &self,
        app: &App,
        inst: &Installation,
        kind: ExchangeType,
        ip: Option<&str>,
    ) -> [NewEvent; 2] {
        let event = NewEvent {
            installation_id: Some(inst.id),
            exchange_type: Some(kind.as_str().into()),
            actor: Some(app.slug.clone()),
            ..NewEvent::new(rotor_core::EventKind::TokenExchanged, self.now())
        };
        let audit = NewEvent {
            kind: rotor_core::EventKind::TokenExchangeAudit,
            ip: ip.map(str::to_owned),
            actor: Some(app.client_id.clone()),
            ..event.clone()
        };
        [event, audit]
    }

    /// Exchanges a grant code for the first pair of a new family.
    #[tracing::instrument(name = "exchange.authorization_code", skip_all)]
    pub async fn exchange_code(
        &self,
        app: &App,
        installation: Option<&str>,
        code: &str,
        ip: Option<&str>,
    ) -> ServiceResult<Issued> {
        let named = self.named_installation(app, installation).await?;
        let grant = match Token::parse(TokenKind::GrantCode, code) {
            Ok(code) => self.store.grant(&code.hash()).await?,
            Err(_) => None,
        };
        let inst = match (named, &grant) {
            (Some(i), _) => i,
            (None, Some(g)) => self.installation_by_id(app, g.installation_id).await?,
            (None, None) => return Err(CoreError::GrantNotFound.into()),
        };
        let grant = validate::grant(app, &inst, grant, self.now())?;

        let (id, access, refresh) = first_tokens();
        let record = self.new_pair(app, &inst, None, id, &access, &refresh);
        let events = self.exchange_events(app, &inst, ExchangeType::Authorization, ip);
        let mark_installed = !app.settings.verify_install;
        match self
            .store
            .exchange_grant(&grant.code_hash, &record, mark_installed, &events)
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
            replayed: false,
        })
    }

    /// Trades a refresh token for its successor pair, retiring it in the same
    /// transaction. A retired token presented again gets the same successor
    /// within the app's grace window, and is treated as stolen after it.
    #[tracing::instrument(name = "exchange.refresh", skip_all)]
    pub async fn refresh(
        &self,
        app: &App,
        installation: Option<&str>,
        refresh_token: &str,
        ip: Option<&str>,
    ) -> ServiceResult<Issued> {
        let Ok(presented) = Token::parse(TokenKind::Refresh, refresh_token) else {
            // The route's installation is checked first, as for any token; a
            // malformed token is one no store holds: refused as not found,
            // without reading anything for it.
            self.named_installation(app, installation).await?;
            return Err(CoreError::RefreshTokenNotFound.into());
        };
        let (named, found, own) = self.refresh_reads(app, installation, &presented).await?;
        let (old, state) = validate::refresh(app, named.as_ref(), found, self.now())?;
        let inst = match named {
            Some(i) => i,
            None => validate::installation_for_app(app, own)?,
        };
        if state == RefreshState::Retired {
            return self.retired_refresh(app, &inst, &old, &presented, ip).await;
        }

        let id = Uuid::now_v7();
        let (access, refresh) = self.successor_tokens(&presented, Some(id), 0);
        let record = self.new_pair(app, &inst, Some(&old), id, &access, &refresh);
        let events = self.exchange_events(app, &inst, ExchangeType::Refresh, ip);
        match self.store.rotate_refresh(old.id, &record, &events).await? {
            Rotation::Rotated => {
                events.iter().for_each(log_event);
                Ok(Issued {
                    record,
                    access,
                    refresh,
                    replayed: false,
                })
            }
            // Someone rotated (or revoked) it between our read and our CAS.
            Rotation::Lost(current) if current.revoked_at.is_some() => {
                Err(CoreError::RefreshTokenRevoked.into())
            }
            Rotation::Lost(current) => {
                self.retired_refresh(app, &inst, &current, &presented, ip)
                    .await
            }
        }
    }

    /// The refresh path's reads: the route's installation (validated for
    /// `app`), the pair the presented token names (verified against it)
    /// and, when the route names no installation, the pair's own (validated
    /// by the caller after the pair). For a selector token that is one store
    /// call, one statement on PostgreSQL; a token issued before selectors
    /// takes the reads one by one.
    async fn refresh_reads(
        &self,
        app: &App,
        installation: Option<&str>,
        presented: &Token,
    ) -> ServiceResult<(
        Option<Installation>,
        Option<IssuedToken>,
        Option<Installation>,
    )> {
        let Some(pair) = presented.selector() else {
            let named = self.named_installation(app, installation).await?;
            let found = self.pair_of(presented).await?;
            let own = match (&named, &found) {
                (None, Some(t)) => self.store.installation(t.installation_id).await?,
                _ => None,
            };
            return Ok((named, found, own));
        };
        let named = installation.map(route_installation_id).transpose()?;
        let (token, inst) = self.store.token_with_installation(pair, named).await?;
        let token = token.filter(|t| super::tokens::verifies(presented, t));
        Ok(match named {
            Some(_) => (
                Some(validate::installation_for_app(app, inst)?),
                token,
                None,
            ),
            None => (None, token, inst),
        })
    }

    /// A retired refresh token presented again: the same successor within
    /// the grace window, else reuse handled by the app's policy.
    async fn retired_refresh(
        &self,
        app: &App,
        inst: &Installation,
        retired: &IssuedToken,
        presented: &Token,
        ip: Option<&str>,
    ) -> ServiceResult<Issued> {
        let now = self.now();
        let found = self.successor_of(retired, presented).await?;
        let event = |kind: rotor_core::EventKind, detail: &str| NewEvent {
            installation_id: Some(inst.id),
            ip: ip.map(str::to_owned),
            actor: Some(app.client_id.clone()),
            detail: Some(detail.into()),
            ..NewEvent::new(kind, now)
        };
        let successor = found.as_ref().map(|(_, _, s)| s);
        match validate::retired_refresh(app, retired, successor, now) {
            RetiredDecision::Replay => {
                let (access, refresh, record) = found.expect("a replay has a successor");
                self.record(event(
                    rotor_core::EventKind::RefreshReplayed,
                    "same successor answered within the grace window",
                ))
                .await;
                Ok(Issued {
                    record,
                    access,
                    refresh,
                    replayed: true,
                })
            }
            RetiredDecision::Reuse => {
                match app.settings.reuse_policy {
                    ReusePolicy::RevokeFamily => {
                        let ev = event(
                            rotor_core::EventKind::RefreshTokenReused,
                            "token family revoked",
                        );
                        log_event(&ev);
                        self.store
                            .revoke_family(retired.family_id, now, std::slice::from_ref(&ev))
                            .await?;
                    }
                    ReusePolicy::Reject => {
                        self.record(event(
                            rotor_core::EventKind::RefreshTokenReused,
                            "request rejected; family kept",
                        ))
                        .await;
                    }
                }
                Err(CoreError::RefreshTokenReused.into())
            }
        }
    }

    /// The stored successor of a retired pair with its tokens, as the
    /// rotation that retired it answered them; `None` when there is none
    /// (or it was derived under a key this server no longer holds).
    ///
    /// A pair retired since selector tokens names its successor
    /// (`successor_id`), whose tokens carry that id; one retired before is
    /// found the old way, by the hash of its successor's derived token.
    /// Either way the tokens are derived under the current key, or under an
    /// older one when the pair was rotated before a key rotation.
    async fn successor_of(
        &self,
        retired: &IssuedToken,
        presented: &Token,
    ) -> ServiceResult<Option<(Token, Token, IssuedToken)>> {
        let keys = 0..self.successor_keys.len();
        if let Some(id) = retired.successor_id {
            let Some(stored) = self.store.token(id).await? else {
                return Ok(None);
            };
            return Ok(keys
                .map(|k| self.successor_tokens(presented, Some(id), k))
                .find(|(_, refresh)| super::tokens::verifies(refresh, &stored))
                .map(|(access, refresh)| (access, refresh, stored)));
        }
        for k in keys {
            let (access, refresh) = self.successor_tokens(presented, None, k);
            if let Some(s) = self.store.legacy_token_by_refresh(&refresh.hash()).await? {
                return Ok(Some((access, refresh, s)));
            }
        }
        Ok(None)
    }

    /// The successor pair of a refresh token, for the pair `selector`:
    /// HMAC-derived under the server key, so the same presented token
    /// always yields the same pair. (`None`: how successors were derived
    /// before selector tokens, to find those.)
    fn successor_tokens(
        &self,
        presented: &Token,
        selector: Option<Uuid>,
        key: usize,
    ) -> (Token, Token) {
        let input = presented.expose().as_bytes();
        let key = &self.successor_keys[key];
        (
            Token::derive(TokenKind::Access, selector, key, input),
            Token::derive(TokenKind::Refresh, selector, key, input),
        )
    }

    /// Manual refresh: an app that lost its refresh token proves itself with
    /// a client-secret JWT; the installation's current tokens are revoked and
    /// a new pair (a new family) is issued.
    #[tracing::instrument(name = "exchange.jwt_bearer", skip_all)]
    pub async fn manual_refresh(
        &self,
        jwt: &str,
        installation: &str,
        ip: Option<&str>,
    ) -> ServiceResult<Issued> {
        let (app, jti) = self.verify_client_jwt(jwt, None).await?;
        let inst = self.installation_of(&app, installation).await?;
        let (id, access, refresh) = first_tokens();
        let record = self.new_pair(&app, &inst, None, id, &access, &refresh);
        let events = self.exchange_events(&app, &inst, ExchangeType::ManualRefresh, ip);
        match self.store.reissue(&jti, &record, &events).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(CoreError::AssertionReplayed.into()),
            Err(StoreError::NotFound) => return Err(CoreError::InstallationNotFound.into()),
            Err(e) => return Err(e.into()),
        }
        events.iter().for_each(log_event);
        Ok(Issued {
            record,
            access,
            refresh,
            replayed: false,
        })
    }
}

/// The installation id a route gives; a malformed one names no
/// installation.
fn route_installation_id(id: &str) -> Result<Uuid, CoreError> {
    Uuid::parse_str(id).map_err(|_| CoreError::InstallationNotFound)
}

/// A new pair's id and its two random tokens, which carry the id.
fn first_tokens() -> (Uuid, Token, Token) {
    let id = Uuid::now_v7();
    (
        id,
        Token::generate_for(TokenKind::Access, id),
        Token::generate_for(TokenKind::Refresh, id),
    )
}
