//! Installations: create (with its grant code), show, confirm, delete; events.

use rotor_core::{
    slug, validate, Event, EventFilter, Grant, Installation, InstallationStatus, NewEvent, Token,
    TokenKind, GRANT_TTL,
};
use rotor_store::StoreError;
use uuid::Uuid;

use super::{Service, ServiceError, ServiceResult};
use crate::webhooks::payload::Actor;

/// A new installation and its grant code, shown this once.
#[derive(Debug, Clone)]
pub struct CreatedInstallation {
    /// The stored installation.
    pub installation: Installation,
    /// The single-use grant code (10 minutes).
    pub code: Token,
    /// The app's redirect URL with `code`, `installationId` and `orgSlug`
    /// added, when the app has one.
    pub redirect_to: Option<String>,
}

/// `url` with the install's query parameters added (what Sentry's install
/// redirect carries).
fn redirect_to(url: &str, code: &Token, inst: &Installation) -> Option<String> {
    let mut u = url::Url::parse(url).ok()?;
    u.query_pairs_mut()
        .append_pair("code", code.expose())
        .append_pair("installationId", &inst.id.to_string())
        .append_pair("orgSlug", &inst.org_slug);
    Some(u.into())
}

impl Service {
    /// Installs the app `app_slug` into organization `org_slug`, on behalf
    /// of `actor` (default: the operator); queues `installation.created`
    /// (carrying the code) in the same transaction when the app has a
    /// webhook URL.
    #[tracing::instrument(name = "installations.create", skip_all)]
    pub async fn create_installation(
        &self,
        org_slug: &str,
        app_slug: &str,
        actor: Option<Actor>,
    ) -> ServiceResult<CreatedInstallation> {
        if !slug::is_valid(org_slug) {
            return Err(ServiceError::Invalid(
                "organization slug must be 1 to 64 lower-case letters, digits, '-' or '_'".into(),
            ));
        }
        let app = self.app(app_slug).await?;
        let now = self.now();
        let installation = Installation {
            id: Uuid::new_v4(),
            app_id: app.id,
            app_slug: app.slug.clone(),
            org_slug: org_slug.to_owned(),
            status: InstallationStatus::Pending,
            created_at: now,
            deleted_at: None,
        };
        let code = Token::generate(TokenKind::GrantCode);
        let grant = Grant {
            code_hash: code.hash(),
            installation_id: installation.id,
            app_id: app.id,
            expires_at: now + GRANT_TTL,
            created_at: now,
        };
        let actor = actor.unwrap_or_else(Actor::operator);
        let hook = self.installation_hook(&app, &installation, "created", Some(&code), &actor);
        let outbox: Vec<_> = hook.iter().cloned().collect();
        match self
            .store
            .create_installation(&installation, &grant, &outbox)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ServiceError::Conflict(format!(
                    "organization {org_slug} already has a live installation of {}",
                    app.slug
                )))
            }
            Err(e) => return Err(e.into()),
        }
        self.record(NewEvent {
            installation_id: Some(installation.id),
            actor: Some(app.slug.clone()),
            ..NewEvent::new(rotor_core::EventKind::InstallationCreated, now)
        })
        .await;
        if hook.is_some() {
            self.wake_webhooks();
        }
        let redirect = app
            .settings
            .redirect_url
            .as_deref()
            .and_then(|u| redirect_to(u, &code, &installation));
        Ok(CreatedInstallation {
            installation,
            code,
            redirect_to: redirect,
        })
    }

    /// Live installations, in id order, a page at a time.
    pub async fn list_installations(
        &self,
        filter: rotor_core::InstallationFilter,
    ) -> ServiceResult<Vec<Installation>> {
        Ok(self.store.list_installations(&filter).await?)
    }

    /// The installation with this uuid, if it exists and is not deleted.
    pub async fn installation(&self, id: Uuid) -> ServiceResult<Installation> {
        match self.store.installation(id).await? {
            Some(i) if i.deleted_at.is_none() => Ok(i),
            _ => Err(ServiceError::NotFound("Installation")),
        }
    }

    /// Deletes an installation: every token of it stops working at once;
    /// `installation.deleted` is queued in the same transaction when the app
    /// has a webhook URL.
    #[tracing::instrument(name = "installations.delete", skip_all)]
    pub async fn delete_installation(
        &self,
        id: Uuid,
        actor: Option<Actor>,
    ) -> ServiceResult<Installation> {
        let inst = self.installation(id).await?;
        let now = self.now();
        let app = self
            .store
            .app_by_id(inst.app_id)
            .await?
            .ok_or(ServiceError::NotFound("App"))?;
        let actor = actor.unwrap_or_else(Actor::operator);
        let hook = self.installation_hook(&app, &inst, "deleted", None, &actor);
        let outbox: Vec<_> = hook.iter().cloned().collect();
        match self.store.delete_installation(inst.id, now, &outbox).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(ServiceError::NotFound("Installation")),
            Err(e) => return Err(e.into()),
        }
        self.record(NewEvent {
            installation_id: Some(inst.id),
            actor: Some(inst.app_slug.clone()),
            ..NewEvent::new(rotor_core::EventKind::InstallationDeleted, now)
        })
        .await;
        if hook.is_some() {
            self.wake_webhooks();
        }
        Ok(inst)
    }

    /// The installation `id`, proven by one of its live access tokens.
    pub async fn installation_for_bearer(
        &self,
        id: &str,
        bearer: Option<&str>,
    ) -> ServiceResult<Installation> {
        let expected = Uuid::parse_str(id).map_err(|_| ServiceError::NotFound("Installation"))?;
        let token = match bearer.map(|b| Token::parse(TokenKind::Access, b)) {
            Some(Ok(t)) => t,
            _ => return Err(rotor_core::CoreError::InvalidBearer.into()),
        };
        let issued = self.pair_of(&token).await?;
        let inst = match &issued {
            Some(t) => self.store.installation(t.installation_id).await?,
            None => None,
        };
        validate::bearer_for_installation(issued.as_ref(), inst.as_ref(), expected, self.now())?;
        inst.ok_or(ServiceError::NotFound("Installation"))
    }

    /// Confirms an installation (after [`Service::installation_for_bearer`]).
    pub async fn mark_installed(&self, mut inst: Installation) -> ServiceResult<Installation> {
        self.store
            .set_installation_status(inst.id, InstallationStatus::Installed)
            .await?;
        inst.status = InstallationStatus::Installed;
        tracing::info!(installation = %inst.id, "installation verified");
        Ok(inst)
    }

    /// Events, newest first.
    pub async fn events(&self, filter: EventFilter) -> ServiceResult<Vec<Event>> {
        Ok(self.store.list_events(&filter).await?)
    }

    /// Records an event outside an exchange and logs it; a failure to record
    /// is logged, not returned, because the change it describes is done.
    pub(crate) async fn record(&self, event: NewEvent) {
        log_event(&event);
        if let Err(e) = self.store.record_event(&event).await {
            tracing::error!(error = %e, kind = %event.kind, "could not record event");
        }
    }
}

/// Writes an event as one structured log line (target `rotor::event`).
pub(crate) fn log_event(e: &NewEvent) {
    tracing::info!(
        target: "rotor::event",
        kind = %e.kind,
        installation = e.installation_id.map(|i| i.to_string()).as_deref().unwrap_or(""),
        exchange_type = e.exchange_type.as_deref().unwrap_or(""),
        ip = e.ip.as_deref().unwrap_or(""),
        actor = e.actor.as_deref().unwrap_or(""),
        detail = e.detail.as_deref().unwrap_or(""),
        "event"
    );
}
