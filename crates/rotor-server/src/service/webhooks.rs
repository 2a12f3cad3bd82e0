//! Webhook use cases: which deliveries a change queues (built here, written
//! by the store in the change's own transaction), one attempt at a claimed
//! delivery, the delivery log and redelivery.

use rotor_core::webhook::signature;
use rotor_core::{
    App, AttemptResult, DeliveryStatus, Installation, NewEvent, Token, UpstreamIdentityRecord,
    WebhookDelivery, WebhookTarget,
};
use rotor_store::Claim;
use uuid::Uuid;

use super::installs::log_event;
use super::{Service, ServiceError, ServiceResult};
use crate::webhooks::payload::{
    self, Actor, AppRef, HookIdentity, HookInstallation, IdentityData, IdentityHook,
    InstallationData, InstallationHook, SlugRef, UuidRef,
};
use crate::webhooks::sender::{Outgoing, Sender};

impl Service {
    /// Seals `body` into a new pending delivery.
    fn delivery(
        &self,
        target: WebhookTarget,
        resource: &str,
        event_type: &str,
        url: &str,
        body: &[u8],
        order_key: String,
    ) -> WebhookDelivery {
        let id = Uuid::now_v7();
        let sealed = self.keyring.seal(body, &WebhookDelivery::body_aad(id));
        WebhookDelivery::new(
            id,
            target,
            resource,
            event_type,
            url,
            sealed,
            order_key,
            self.now(),
        )
    }

    /// The `installation.<action>` delivery for `inst`, if the app has a
    /// webhook URL. `code` goes in `created` only.
    pub(crate) fn installation_hook(
        &self,
        app: &App,
        inst: &Installation,
        action: &str,
        code: Option<&Token>,
        actor: &Actor,
    ) -> Option<WebhookDelivery> {
        let url = app.settings.webhook_url.as_deref()?;
        let body = payload::bytes(&InstallationHook {
            action,
            installation: UuidRef { uuid: inst.id },
            data: InstallationData {
                installation: HookInstallation {
                    uuid: inst.id,
                    status: inst.status.as_str(),
                    code: code.map(Token::expose),
                    app: AppRef {
                        uuid: app.id,
                        slug: &app.slug,
                    },
                    organization: SlugRef {
                        slug: &inst.org_slug,
                    },
                },
            },
            actor,
        });
        let mut d = self.delivery(
            WebhookTarget::App(app.id),
            "installation",
            &format!("installation.{action}"),
            url,
            &body,
            format!("installation:{}", inst.id),
        );
        d.installation_id = Some(inst.id);
        d.org_slug = Some(inst.org_slug.clone());
        Some(d)
    }

    /// The platform's `identity.<action>` delivery, if a platform webhook
    /// URL is configured.
    pub(crate) fn identity_hook(
        &self,
        ident: &UpstreamIdentityRecord,
        action: &str,
    ) -> Option<WebhookDelivery> {
        let url = self.webhooks.platform_url.as_deref()?;
        let body = payload::bytes(&IdentityHook {
            action,
            data: IdentityData {
                identity: HookIdentity {
                    id: ident.id,
                    provider: &ident.provider,
                    external_id: &ident.external_id,
                    status: ident.status.as_str(),
                    last_error: ident.last_error.as_deref(),
                },
            },
        });
        let mut d = self.delivery(
            WebhookTarget::Platform,
            "identity",
            &format!("identity.{action}"),
            url,
            &body,
            format!("identity:{}", ident.id),
        );
        d.identity_id = Some(ident.id);
        Some(d)
    }

    /// Tells this node's webhook worker that deliveries were queued.
    pub(crate) fn wake_webhooks(&self) {
        self.webhook_wake.notify_one();
    }

    /// Waits until deliveries are queued on this node (or `poll` passes).
    pub async fn webhooks_queued(&self) {
        let _ = tokio::time::timeout(self.webhooks.poll, self.webhook_wake.notified()).await;
    }

    /// Leases up to `limit` due deliveries to `owner`.
    pub async fn claim_webhooks(
        &self,
        owner: &str,
        limit: u32,
    ) -> ServiceResult<Vec<WebhookDelivery>> {
        let now = self.now();
        let lease = chrono::Duration::from_std(self.webhooks.lease())
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        Ok(self
            .store
            .claim_deliveries(&Claim {
                owner: owner.to_owned(),
                now,
                lease_until: now + lease,
                limit,
                per_target: self.webhooks.per_target,
            })
            .await?)
    }

    /// The key that signs deliveries to `target`, or why there is none.
    async fn signing_key(&self, target: WebhookTarget) -> Result<Vec<u8>, String> {
        match target {
            WebhookTarget::Platform => self
                .webhooks
                .platform_secret
                .as_ref()
                .map(|s| s.expose().as_bytes().to_vec())
                .ok_or_else(|| "ROTOR_PLATFORM_WEBHOOK_SECRET is not set on this node".into()),
            WebhookTarget::App(id) => {
                let app = self
                    .store
                    .app_by_id(id)
                    .await
                    .map_err(|e| format!("cannot read the app: {e}"))?
                    .ok_or("the app no longer exists")?;
                self.keyring
                    .open(&app.client_secret, &App::secret_aad(app.id))
                    .map_err(|e| format!("the app's client secret does not open: {e}"))
            }
        }
    }

    /// Makes one attempt at a delivery `owner` has claimed and records it.
    #[tracing::instrument(name = "webhooks.attempt", skip_all)]
    pub async fn attempt_webhook(
        &self,
        sender: &Sender,
        owner: &str,
        d: WebhookDelivery,
    ) -> ServiceResult<DeliveryStatus> {
        let body = self
            .keyring
            .open(&d.body, &WebhookDelivery::body_aad(d.id))
            .map_err(|e| format!("the delivery body does not open: {e}"));
        let key = self.signing_key(d.target).await;
        let result = match (body, key) {
            (Ok(body), Ok(key)) => {
                let signature = signature(&key, &body);
                sender
                    .send(Outgoing {
                        url: &d.url,
                        request_id: d.id.to_string(),
                        resource: &d.resource,
                        timestamp: self.now().timestamp(),
                        signature,
                        body,
                    })
                    .await
            }
            (Err(why), _) | (_, Err(why)) => AttemptResult::Refused(why),
        };
        let now = self.now();
        let attempts = d.attempts + 1;
        let record = self.webhooks.retry.after_attempt(
            &result,
            attempts,
            d.retry_from,
            now,
            rand::random::<f64>() * 0.5 + 0.5,
        );
        crate::telemetry::record_webhook(match record.status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Pending => "retry",
        });
        let kind = match record.status {
            DeliveryStatus::Delivered => Some(rotor_core::EventKind::WebhookDelivered),
            DeliveryStatus::Failed => Some(rotor_core::EventKind::WebhookFailed),
            DeliveryStatus::Pending => None,
        };
        let events: Vec<NewEvent> = kind
            .map(|kind| NewEvent {
                installation_id: d.installation_id,
                identity_id: d.identity_id.map(|i| i.to_string()),
                actor: Some(d.event_type.clone()),
                detail: Some(format!(
                    "{} {} after {attempts} attempt(s){}",
                    d.id,
                    d.url,
                    record
                        .error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )),
                ..NewEvent::new(kind, now)
            })
            .into_iter()
            .collect();
        match record.status {
            DeliveryStatus::Delivered => tracing::info!(
                request_id = %d.id, event = %d.event_type, url = %d.url,
                status = record.response_code.unwrap_or_default(), attempts,
                "webhook delivered"
            ),
            DeliveryStatus::Pending => tracing::warn!(
                request_id = %d.id, event = %d.event_type, url = %d.url, attempts,
                error = record.error.as_deref().unwrap_or(""),
                next_attempt_at = %record.next_attempt_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                "webhook attempt failed; will retry"
            ),
            DeliveryStatus::Failed => tracing::error!(
                request_id = %d.id, event = %d.event_type, url = %d.url, attempts,
                error = record.error.as_deref().unwrap_or(""),
                "webhook failed; not retried"
            ),
        }
        for e in &events {
            log_event(e);
        }
        let kept = self
            .store
            .finish_delivery(d.id, owner, &record, &events)
            .await?;
        if !kept {
            tracing::info!(request_id = %d.id, "webhook lease lost (redelivered or taken over); result dropped");
        }
        Ok(record.status)
    }

    /// An app's deliveries, newest first.
    pub async fn webhook_requests(
        &self,
        slug: &str,
        status: Option<DeliveryStatus>,
        before: Option<Uuid>,
        limit: u32,
    ) -> ServiceResult<Vec<WebhookDelivery>> {
        let app = self.app(slug).await?;
        Ok(self
            .store
            .list_deliveries(Some(app.id), status, before, limit)
            .await?)
    }

    /// Sends an app's delivery again now (its retry window restarts).
    pub async fn redeliver(&self, slug: &str, id: Uuid) -> ServiceResult<()> {
        let app = self.app(slug).await?;
        match self.store.delivery(id).await? {
            Some(d) if d.target == WebhookTarget::App(app.id) => {}
            _ => return Err(ServiceError::NotFound("Webhook request")),
        }
        self.store.redeliver(id, self.now()).await?;
        tracing::info!(app = %app.slug, request_id = %id, "webhook redelivery requested");
        self.wake_webhooks();
        Ok(())
    }
}
