//! The OpenAPI document: the one served is the one in `docs/openapi.json`,
//! it lists every route the router has, and the typed answers kept the byte
//! form the `serde_json` maps before them had (sorted keys, compact).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// `true` when `body` is exactly what a `serde_json` map would print:
/// compact, with every object's keys sorted (the form of every answer
/// before the typed wire structs).
fn in_map_form(body: &str) -> bool {
    let v: Value = serde_json::from_str(body).unwrap();
    serde_json::to_string(&v).unwrap() == body
}

async fn raw_post(
    app: &TestApp,
    path: &str,
    body: Value,
    bearer: Option<&str>,
) -> (StatusCode, String) {
    let mut req = app.http.post(app.url(path)).json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn the_served_document_is_the_one_in_docs() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let served = res.text().await.unwrap();
    let kept = std::fs::read_to_string(repo_file("docs/openapi.json")).unwrap();
    assert!(
        served == kept,
        "docs/openapi.json is not the served document: run `cargo run -p rotor -- openapi > docs/openapi.json`"
    );
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every answer has a description (OpenAPI requires one) and every
    // operation an id.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["operationId"].is_string(), "{method} {path}");
            for (code, answer) in op["responses"].as_object().unwrap() {
                assert!(
                    answer["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {code}"
                );
            }
        }
    }
}

/// The routes the router registers, read from the route modules' sources:
/// every string literal that is a path.
fn routes_in_source() -> BTreeSet<String> {
    let mut files = Vec::new();
    let mut dirs = vec![repo_file("crates/rotor-server/src/http")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for part in text.split('"').skip(1).step_by(2) {
            let is_route = ["/api/", "/oauth/", "/.well-known/", "/healthz", "/readyz"]
                .iter()
                .any(|p| part.starts_with(p))
                && !part.contains(' ')
                && !part.contains('?');
            if is_route {
                out.insert(part.to_owned());
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_lists_every_route_and_each_answers() {
    let app = spawn_app().await;
    let doc: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    let missing: Vec<_> = routes_in_source()
        .difference(&documented)
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "routes without an OpenAPI operation: {missing:?}"
    );
    assert!(documented.len() >= 23, "{documented:?}");
    // Every documented operation is routed: none falls through to the
    // router's 404 fallback or its 405.
    for (path, item) in paths {
        let concrete = path
            .replace("{slug}", "no-such-app")
            .replace("{org}", "acme")
            .replace("{uuid}", "00000000-0000-4000-8000-000000000000")
            .replace("{id}", "00000000-0000-4000-8000-000000000000");
        for method in item.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = app
                .http
                .request(m, app.url(&concrete))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !(status == StatusCode::NOT_FOUND && body.contains("\"Not found\"")),
                "{method} {path} is not routed: {body}"
            );
        }
    }
}

http_tests! {
    async fn sentry_and_oauth_answers_keep_their_byte_form() {
        let app = spawn_app().await;
        let i = app.installed("Bytes", "acme").await;
        let path = format!("/api/0/sentry-app-installations/{}/authorizations/", i.uuid);
        let (status, body) = raw_post(&app, &path, json!({
            "client_id": i.client_id, "client_secret": i.client_secret,
            "grant_type": "authorization_code", "code": i.code,
        }), None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(in_map_form(&body), "{body}");
        let pair: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(pair["application"], Value::Null);
        assert_eq!(pair["state"], Value::Null);
        let (status, body) = raw_post(&app, &path, json!({
            "client_id": i.client_id, "client_secret": i.client_secret,
            "grant_type": "refresh_token", "refresh_token": pair["refreshToken"],
        }), None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(in_map_form(&body), "{body}");
        let pair: Value = serde_json::from_str(&body).unwrap();
        // A refusal, in Sentry's shape.
        let (status, body) = raw_post(&app, &path, json!({"grant_type": "refresh_token"}), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(in_map_form(&body), "{body}");
        // The installation's answers.
        let res = app
            .http
            .put(app.url(&format!("/api/0/sentry-app-installations/{}/", i.uuid)))
            .bearer_auth(pair["token"].as_str().unwrap())
            .json(&json!({"status": "installed"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.text().await.unwrap();
        assert!(in_map_form(&body), "{body}");
        // The OAuth routes.
        let (status, _, tokens) = app
            .form(
                "/oauth/token",
                Some((&i.client_id, &i.client_secret)),
                &[("grant_type", "refresh_token"), ("refresh_token", pair["refreshToken"].as_str().unwrap())],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let res = app
            .http
            .post(app.url("/oauth/introspect"))
            .bearer_auth(ADMIN)
            .form(&[("token", tokens["access_token"].as_str().unwrap())])
            .send()
            .await
            .unwrap();
        let body = res.text().await.unwrap();
        assert!(body.starts_with("{\"active\":true,\"client_id\""), "{body}");
        assert!(in_map_form(&body), "{body}");
        let res = app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap();
        let body = res.text().await.unwrap();
        assert!(in_map_form(&body), "{body}");
        // Admin answers without a secret, too.
        let res = app.http.get(app.url("/api/0/sentry-apps/")).bearer_auth(ADMIN).send().await.unwrap();
        let body = res.text().await.unwrap();
        assert!(in_map_form(&body), "{body}");
    }
}
