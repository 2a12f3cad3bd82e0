//! The OpenAPI 3.1 document of the HTTP API, derived at compile time from
//! the handlers' `#[utoipa::path]` annotations and the typed wire structs
//! ([`super::wire`]). Served at `GET /api/openapi.json`; the copy in
//! `docs/openapi.json` is checked against it by a test, so the two cannot
//! drift. Regenerate the copy with `rotor openapi > docs/openapi.json`.
//!
//! Only the trailing-slash form of each `/api/0/` path is listed; the form
//! without the slash answers the same.
//!
//! The refusals every operation can meet (a malformed query or body, an
//! oversized or non-JSON body, throttling, an unavailable database, a
//! missing admin token) are added to each operation by `CommonAnswers`
//! rather than repeated on every handler.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::Ref;
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{admin, health, oauth, sentry, upstream, wire, AppState};

/// The document's root: every operation and the schemas they name.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Rotor",
        description = "Token service for integration platforms: apps installed into \
            organizations (Sentry's integration-platform wire format and OAuth 2.0), \
            and upstream provider tokens kept fresh.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        admin::list_apps, admin::create_app, admin::show_app, admin::update_app,
        admin::delete_app, admin::rotate_secret, admin::list_app_installations,
        admin::list_org_installations, admin::create_installation,
        admin::show_installation, admin::delete_installation,
        admin::webhook_requests, admin::redeliver, admin::revoke_token, admin::list_events,
        sentry::authorizations, sentry::verify,
        upstream::list_providers, upstream::create_provider,
        upstream::list_identities, upstream::create_identity, upstream::show_identity,
        upstream::reauthorize_identity, upstream::delete_identity, upstream::token,
        upstream::force_refresh,
        oauth::token, oauth::revoke, oauth::introspect, oauth::metadata,
        health::alive, health::ready, document,
    ),
    components(schemas(wire::ApiErrorBody, wire::OAuthErrorBody)),
    modifiers(&CommonAnswers),
    security(("admin" = [])),
    tags(
        (name = "apps", description = "The operator's apps"),
        (name = "installations", description = "Apps installed into organizations"),
        (name = "sentry", description = "The app's side, in Sentry's wire format"),
        (name = "oauth", description = "OAuth 2.0 (RFC 6749, 7009, 7662, 8414)"),
        (name = "upstream", description = "Upstream provider tokens"),
        (name = "webhooks", description = "Webhook deliveries to apps"),
        (name = "admin", description = "Audit log and operator revocation"),
        (name = "health", description = "Probes"),
    ),
)]
pub struct ApiDoc;

/// The document as JSON, pretty-printed with a final newline (the form kept
/// in `docs/openapi.json`).
pub fn document_json() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// This document
#[utoipa::path(get, path = "/api/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub(super) async fn document() -> impl IntoResponse {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    (
        [(CONTENT_TYPE, "application/json")],
        TEXT.get_or_init(document_json).as_str(),
    )
}

/// Adds `GET /api/openapi.json`.
pub(super) fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/api/openapi.json", get(document))
}

/// The security schemes, and the refusals common to every operation.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |desc: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(desc.to_owned());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "admin",
            bearer("The operator's admin token (ROTOR_ADMIN_TOKEN)."),
        );
        components.add_security_scheme("app_token", bearer("An access token of the installation."));
        components.add_security_scheme(
            "app_jwt",
            bearer("A JWT signed with the app's client secret (HS256), for the manual refresh."),
        );
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        let global = doc.security.clone().unwrap_or_default();
        for (path, item) in doc.paths.paths.iter_mut() {
            let has_params = path.contains('{');
            let ops = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.patch, true),
                (&mut item.delete, false),
            ];
            for (op, has_body) in ops {
                if let Some(op) = op.as_mut() {
                    add_common(op, &global, has_params, has_body);
                }
            }
        }
    }
}

/// Adds to `op` every refusal it can meet that it does not list yet.
fn add_common(op: &mut Operation, global: &[SecurityRequirement], params: bool, body: bool) {
    let oauth = op
        .tags
        .as_ref()
        .is_some_and(|t| t.iter().any(|t| t == "oauth"));
    let security = op.security.as_deref().unwrap_or(global);
    let authenticated = security
        .iter()
        .any(|s| *s != SecurityRequirement::default());
    let error = |desc: &str| -> RefOr<utoipa::openapi::Response> {
        let schema = Ref::from_schema_name(if oauth {
            "OAuthErrorBody"
        } else {
            "ApiErrorBody"
        });
        ResponseBuilder::new()
            .description(desc)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(schema)).build(),
            )
            .into()
    };
    let mut add = |code: &str, desc: &str| {
        if !op.responses.responses.contains_key(code) {
            op.responses.responses.insert(code.to_owned(), error(desc));
        }
    };
    add(
        "400",
        "A malformed query or body, or a value out of range; nothing changed",
    );
    if authenticated {
        add("401", "No valid token or credentials");
    }
    if params {
        add("404", "No such resource (a malformed id is a 400)");
    }
    if body {
        add("413", "The body is larger than 64 KiB");
        add("415", "The body is not of the documented content type");
    }
    add("429", "Too many failed authentications; see Retry-After");
    add("503", "The database is unavailable; try again shortly");
    // OpenAPI requires a description on every answer: the status's reason
    // phrase where the handler gave none.
    for (code, answer) in op.responses.responses.iter_mut() {
        if let RefOr::T(answer) = answer {
            if answer.description.is_empty() {
                answer.description = code
                    .parse::<u16>()
                    .ok()
                    .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                    .and_then(|c| c.canonical_reason())
                    .unwrap_or("Answer")
                    .to_owned();
            }
        }
    }
}
