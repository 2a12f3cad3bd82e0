//! Property-based fuzzing of every route through the real server: thousands
//! of generated requests (methods, paths with real, random and hostile
//! segments, credentials, content types and bodies). None may answer 5xx or
//! anything but JSON for an error, and a refused request changes nothing.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

const TEMPLATES: &[&str] = &[
    "/api/0/sentry-apps/",
    "/api/0/sentry-apps/{slug}/",
    "/api/0/sentry-apps/{slug}/rotate-secret/",
    "/api/0/sentry-apps/{slug}/webhook-requests/",
    "/api/0/sentry-apps/{slug}/webhook-requests/{id}/redeliver/",
    "/api/0/organizations/{slug}/sentry-app-installations/",
    "/api/0/sentry-app-installations/{id}/",
    "/api/0/sentry-app-installations/{id}/authorizations/",
    "/api/0/events/",
    "/api/0/upstream/providers/",
    "/api/0/upstream/identities/",
    "/api/0/upstream/identities/{id}/",
    "/api/0/upstream/identities/{id}/token/",
    "/api/0/upstream/identities/{id}/refresh/",
    "/oauth/token",
    "/oauth/revoke",
    "/oauth/introspect",
    "/.well-known/oauth-authorization-server",
    "/healthz",
    "/readyz",
    "/{slug}",
];

#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    template: usize,
    segment: String,
    query: String,
    auth: usize,
    content_type: usize,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>),
    Form(Vec<(String, String)>),
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,30}".prop_map(Value::String),
        Just(json!(
            "rtr_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000"
        )),
        Just(json!("urn:sentry:params:oauth:grant-type:jwt-bearer")),
        Just(json!("authorization_code")),
        Just(json!("refresh_token")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-zA-Z_]{1,12}",
                    Just("grant_type".to_owned()),
                    Just("client_id".to_owned()),
                    Just("client_secret".to_owned()),
                    Just("code".to_owned()),
                    Just("refresh_token".to_owned()),
                    Just("name".to_owned()),
                    Just("scopes".to_owned()),
                    Just("slug".to_owned()),
                    Just("webhookUrl".to_owned()),
                    Just("status".to_owned()),
                    Just("provider".to_owned()),
                    Just("kind".to_owned()),
                    Just("config".to_owned()),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn request() -> impl Strategy<Value = Req> {
    (
        prop_oneof![
            6 => Just("POST"),
            3 => Just("GET"),
            1 => Just("PATCH"),
            1 => Just("PUT"),
            1 => Just("DELETE"),
            1 => prop::sample::select(vec!["HEAD", "OPTIONS", "TRACE"]),
        ],
        0..TEMPLATES.len(),
        prop_oneof![
            Just("REAL".to_owned()),
            "[a-z0-9-]{0,20}",
            "%[0-9A-F]{2}[a-z]{0,4}",
            "[\\PC]{0,8}".prop_map(|s| s.replace(['/', '?', '#'], "")),
            Just("00000000-0000-0000-0000-000000000000".to_owned()),
            Just("..%2F..".to_owned()),
        ],
        prop_oneof![
            Just(String::new()),
            "\\?[a-zA-Z]{1,8}=[a-z0-9%]{0,10}",
            Just("?status=nope".to_owned()),
            Just("?limit=0".to_owned()),
            Just("?minValidSeconds=-1".to_owned()),
        ],
        prop_oneof![3 => Just(1usize), 1 => Just(0usize), 1 => Just(2usize), 1 => Just(3usize)],
        0..4usize,
        prop_oneof![
            Just(Body::None),
            json_value().prop_map(Body::Json),
            prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Bytes),
            prop::collection::vec(("[a-z_]{1,14}", "\\PC{0,20}"), 0..5).prop_map(Body::Form),
        ],
    )
        .prop_map(
            |(method, template, segment, query, auth, content_type, body)| Req {
                method,
                template,
                segment,
                query,
                auth,
                content_type,
                body,
            },
        )
}

/// What a refused request must not change.
async fn digest(app: &TestApp) -> String {
    let svc = &app.service;
    let apps = svc.list_apps().await.unwrap();
    let events = svc
        .events(rotor_core::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let identities = svc
        .identities_page(&rotor_core::IdentityFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    format!("{apps:?}|{}|{identities:?}", events.len())
}

#[test]
fn thousands_of_generated_requests_never_5xx_and_refusals_change_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, real) = rt.block_on(async {
        // No throttling here: the point is to reach every handler.
        let app = spawn_with(fresh().await, |c| {
            c.throttle.per_client = u32::MAX;
            c.throttle.per_ip = u32::MAX;
        })
        .await;
        let i = app.installed("Fuzzed", "acme").await;
        let t = app.tokens(&i).await;
        (app, (i, t))
    });
    let (inst, tokens) = real;
    let access = tokens["token"].as_str().unwrap().to_owned();
    let cases = std::env::var("ROTOR_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4000);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&request(), |r| {
            let (status, ct, text, changed) = rt.block_on(async {
                let seg = if r.segment == "REAL" {
                    // A real id or slug, so requests reach deep into handlers.
                    if TEMPLATES[r.template].contains("{id}") {
                        inst.uuid.clone()
                    } else {
                        "fuzzed".to_owned()
                    }
                } else {
                    r.segment.clone()
                };
                let path = TEMPLATES[r.template]
                    .replace("{slug}", &seg)
                    .replace("{id}", &seg);
                let url = format!("{}{}{}", app.base, path, r.query);
                let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
                let mut req = app.http.request(method, url);
                req = match r.auth {
                    0 => req,
                    1 => req.bearer_auth(ADMIN),
                    2 => req.bearer_auth("rtr_at_wrong"),
                    _ => req.bearer_auth(&access),
                };
                let ct = [
                    "application/json",
                    "application/x-www-form-urlencoded",
                    "text/plain",
                    "",
                ][r.content_type];
                if !ct.is_empty() {
                    req = req.header("content-type", ct);
                }
                req = match &r.body {
                    Body::None => req,
                    Body::Json(v) => req.body(serde_json::to_vec(v).unwrap()),
                    Body::Bytes(b) => req.body(b.clone()),
                    Body::Form(f) => req.body(
                        url::form_urlencoded::Serializer::new(String::new())
                            .extend_pairs(f)
                            .finish(),
                    ),
                };
                let before = digest(&app).await;
                let res = req.send().await.unwrap();
                let status = res.status().as_u16();
                let ct = res
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let text = res.text().await.unwrap_or_default();
                let changed = status >= 400 && digest(&app).await != before;
                (status, ct, text, changed)
            });
            if std::env::var("ROTOR_FUZZ_SHOW").is_ok() {
                eprintln!("STATUS {status}");
            }
            prop_assert!(status < 500, "{r:?} answered {status}: {text}");
            if status >= 400 && r.method != "HEAD" {
                prop_assert!(
                    ct.starts_with("application/json"),
                    "{r:?} answered {status} {ct}: {text}"
                );
            }
            prop_assert!(
                !changed,
                "{r:?} was refused ({status}: {text}) but changed the database"
            );
            Ok(())
        })
        .unwrap();
}
