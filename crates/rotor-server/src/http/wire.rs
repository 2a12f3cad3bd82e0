//! The JSON shapes of the `/api/0/` routes (camelCase, Sentry's convention).

use chrono::{DateTime, SecondsFormat, Utc};
use rotor_core::{
    App, Event, Installation, UpstreamIdentityRecord, UpstreamProvider, WebhookDelivery,
};
use serde_json::{json, Value};

use crate::service::upstream::UpstreamToken;
use crate::service::Issued;

/// Sentry's timestamp format: microseconds and a `Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An app without its secret.
pub fn app(a: &App) -> Value {
    let s = &a.settings;
    json!({
        "uuid": a.id,
        "slug": a.slug,
        "name": s.name,
        "scopes": s.scopes,
        "webhookUrl": s.webhook_url,
        "redirectUrl": s.redirect_url,
        "verifyInstall": s.verify_install,
        "accessTokenTtlSeconds": s.access_token_ttl_seconds,
        "refreshGraceSeconds": s.refresh_grace_seconds,
        "reusePolicy": s.reuse_policy.as_str(),
        "clientId": a.client_id,
        "dateCreated": time(a.created_at),
        "dateUpdated": time(a.updated_at),
    })
}

/// An installation.
pub fn installation(i: &Installation) -> Value {
    json!({
        "uuid": i.id,
        "status": i.status.as_str(),
        "app": { "uuid": i.app_id, "slug": i.app_slug },
        "organization": { "slug": i.org_slug },
        "dateCreated": time(i.created_at),
    })
}

/// The answer of a successful exchange on the Sentry route.
pub fn issued(t: &Issued) -> Value {
    json!({
        "id": t.record.id,
        "token": t.access.expose(),
        "refreshToken": t.refresh.expose(),
        "expiresAt": time(t.record.expires_at),
        "dateCreated": time(t.record.created_at),
        "scopes": t.record.scopes,
        "application": null,
        "state": null,
    })
}

/// An event; absent fields are left out.
pub fn event(e: &Event) -> Value {
    let v = &e.event;
    let mut out = json!({
        "id": e.id,
        "type": v.kind,
        "installation": v.installation_id,
        "dateCreated": time(v.created_at),
    });
    let obj = out.as_object_mut().expect("object literal");
    let extra = [
        ("identity", &v.identity_id),
        ("exchangeType", &v.exchange_type),
        ("ip", &v.ip),
        ("actor", &v.actor),
        ("detail", &v.detail),
    ];
    for (k, val) in extra {
        if let Some(val) = val {
            obj.insert(k.into(), json!(val));
        }
    }
    out
}

/// An upstream provider with its public settings only (secrets are never
/// stored in `config`).
pub fn provider(p: &UpstreamProvider) -> Value {
    let config: Value = serde_json::from_str(&p.config).unwrap_or(Value::Null);
    json!({ "key": p.key, "kind": p.kind, "config": config })
}

/// An upstream identity; never a token.
pub fn identity(i: &UpstreamIdentityRecord) -> Value {
    json!({
        "id": i.id,
        "provider": i.provider,
        "externalId": i.external_id,
        "scopes": i.scopes,
        "status": i.status.as_str(),
        "expiresAt": i.expires_at.map(time),
        "lastRefreshedAt": i.last_refreshed_at.map(time),
        "failureCount": i.failure_count,
        "lastError": i.last_error,
        "installationId": i.installation_id,
        "dateCreated": time(i.created_at),
    })
}

/// An upstream access token handed to its caller.
pub fn upstream_token(t: &UpstreamToken) -> Value {
    json!({
        "accessToken": t.access_token.expose(),
        "tokenType": t.token_type,
        "expiresAt": t.expires_at.map(time),
    })
}

/// A webhook delivery in the delivery log (never its body: it may carry a
/// grant code).
pub fn delivery(d: &WebhookDelivery) -> Value {
    let mut out = json!({
        "id": d.id,
        "eventType": d.event_type,
        "webhookUrl": d.url,
        "status": d.status.as_str(),
        "attempts": d.attempts,
        "responseCode": d.response_code,
        "date": d.last_attempt_at.map(time),
        "dateCreated": time(d.created_at),
        "organization": d.org_slug.as_ref().map(|slug| json!({ "slug": slug })),
        "installation": d.installation_id.map(|uuid| json!({ "uuid": uuid })),
    });
    if let Some(obj) = out.as_object_mut() {
        if let Some(next) = d.next_attempt_at {
            obj.insert("nextAttemptAt".into(), json!(time(next)));
        }
        if let Some(e) = &d.error {
            obj.insert("error".into(), json!(e));
        }
    }
    out
}
