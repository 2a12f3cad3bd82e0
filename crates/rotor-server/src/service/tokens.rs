//! Revocation (RFC 7009) and introspection (RFC 7662) of issued tokens, and
//! the janitor that deletes what nothing needs any more.

use rotor_core::{App, IssuedToken, NewEvent, Token, TokenKind};
use rotor_store::{Purged, StoreResult};

use super::installs::log_event;
use super::{Service, ServiceResult};

/// Whether `token` is `pair`'s token of its kind: its SHA-256 equals the
/// one stored, compared in constant time.
pub(crate) fn verifies(token: &Token, pair: &IssuedToken) -> bool {
    let stored = if token.kind() == TokenKind::Access {
        &pair.access_hash
    } else {
        &pair.refresh_hash
    };
    stored.ct_eq(&token.hash())
}

/// Who asks to introspect.
#[derive(Debug, Clone)]
pub enum Introspector {
    /// The operator: every token answers.
    Operator,
    /// An app: only its own tokens answer active.
    App(Box<App>),
}

/// What introspection tells about an active token.
#[derive(Debug, Clone)]
pub struct Introspection {
    /// The stored pair.
    pub record: IssuedToken,
    /// Which token of the pair was presented.
    pub kind: TokenKind,
    /// The client id of the app it was issued to.
    pub client_id: String,
}

impl Service {
    /// Looks up a token string of either kind; `None` when it is malformed
    /// or unknown (no database work for a malformed one).
    async fn lookup(&self, token: &str) -> ServiceResult<Option<(IssuedToken, TokenKind)>> {
        let kind = match TokenKind::of(token) {
            Some(k @ (TokenKind::Access | TokenKind::Refresh)) => k,
            _ => return Ok(None),
        };
        let Ok(parsed) = Token::parse(kind, token) else {
            return Ok(None);
        };
        Ok(self.pair_of(&parsed).await?.map(|t| (t, kind)))
    }

    /// The pair a presented access or refresh token belongs to, in any
    /// state. A token with a selector is looked up by it (its pair's id) and
    /// must hash to what that pair stores for its kind, compared in constant
    /// time; a token issued before selectors is looked up by its hash.
    pub(crate) async fn pair_of(&self, token: &Token) -> StoreResult<Option<IssuedToken>> {
        match token.selector() {
            Some(id) => Ok(self
                .store
                .token(id)
                .await?
                .filter(|pair| verifies(token, pair))),
            None if token.kind() == TokenKind::Access => {
                self.store.legacy_token_by_access(&token.hash()).await
            }
            None => self.store.legacy_token_by_refresh(&token.hash()).await,
        }
    }

    /// Revokes the family of `token` if it was issued to `app`. Unknown
    /// tokens and other apps' tokens are ignored (RFC 7009 §2.2).
    pub async fn revoke(&self, app: &App, token: &str, ip: Option<&str>) -> ServiceResult<()> {
        let Some((record, _)) = self.lookup(token).await? else {
            return Ok(());
        };
        if record.app_id != app.id {
            tracing::info!(app = %app.slug, "revocation of another app's token ignored");
            return Ok(());
        }
        self.revoke_family_of(&record, &app.client_id, ip).await
    }

    /// The operator revokes the family of any token (access or refresh).
    /// Answers whether the token was known.
    pub async fn revoke_as_operator(&self, token: &str) -> ServiceResult<bool> {
        let Some((record, _)) = self.lookup(token).await? else {
            return Ok(false);
        };
        self.revoke_family_of(&record, "rotor-admin", None).await?;
        Ok(true)
    }

    async fn revoke_family_of(
        &self,
        record: &rotor_core::IssuedToken,
        actor: &str,
        ip: Option<&str>,
    ) -> ServiceResult<()> {
        let event = NewEvent {
            installation_id: Some(record.installation_id),
            ip: ip.map(str::to_owned),
            actor: Some(actor.to_owned()),
            detail: Some("token family revoked".into()),
            ..NewEvent::new(rotor_core::EventKind::TokenRevoked, self.now())
        };
        if self
            .store
            .revoke_family(record.family_id, self.now(), std::slice::from_ref(&event))
            .await?
        {
            log_event(&event);
        }
        Ok(())
    }

    /// Introspects a token: `Some` only when it is live and the caller may
    /// see it.
    pub async fn introspect(
        &self,
        caller: &Introspector,
        token: &str,
    ) -> ServiceResult<Option<Introspection>> {
        let Some((record, kind)) = self.lookup(token).await? else {
            return Ok(None);
        };
        let now = self.now();
        let live = match kind {
            TokenKind::Access => record.access_is_live(now),
            _ => record.refresh_is_live(now),
        };
        if !live {
            return Ok(None);
        }
        let client_id = match caller {
            Introspector::App(app) if app.id != record.app_id => return Ok(None),
            Introspector::App(app) => app.client_id.clone(),
            Introspector::Operator => match self.store.app_by_id(record.app_id).await? {
                Some(app) => app.client_id,
                None => return Ok(None),
            },
        };
        Ok(Some(Introspection {
            record,
            kind,
            client_id,
        }))
    }

    /// One janitor pass: deletes expired rows in batches of `batch`, at most
    /// `max_batches` times, so one pass never holds the writer for long.
    #[tracing::instrument(name = "janitor.purge", skip_all)]
    pub async fn purge(&self, batch: u32, max_batches: u32) -> ServiceResult<Purged> {
        let mut total = Purged::default();
        for _ in 0..max_batches {
            let p = self.store.purge_expired(self.now(), batch).await?;
            total += p;
            if p.total() == 0 {
                break;
            }
        }
        let delivered_before = self.now() - self.webhooks.retention;
        total.webhooks = drain(max_batches, batch, || {
            self.store.purge_deliveries(delivered_before, batch)
        })
        .await?;
        if let Some(keep) = self.events_retention {
            let before = self.now() - keep;
            total.events = drain(max_batches, batch, || {
                self.store.purge_events(before, batch)
            })
            .await?;
        }
        crate::telemetry::record_janitor(&total);
        if total.total() > 0 {
            tracing::info!(
                grants = total.grants,
                jtis = total.jtis,
                tokens = total.tokens,
                families = total.families,
                webhooks = total.webhooks,
                events = total.events,
                "janitor purged expired rows"
            );
        }
        Ok(total)
    }
}

/// Calls `step` (which deletes at most `batch` rows) until it deletes fewer
/// than a batch, at most `max_batches` times; answers the rows deleted.
async fn drain<'a, F, Fut>(max_batches: u32, batch: u32, mut step: F) -> ServiceResult<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = rotor_store::StoreResult<u64>> + 'a,
{
    let mut total = 0;
    for _ in 0..max_batches {
        let n = step().await?;
        total += n;
        if n < u64::from(batch) {
            break;
        }
    }
    Ok(total)
}
