//! Sentry parity: the manual-refresh grant type under Sentry's name, the
//! platform's own scope vocabulary, the install redirect, and `no-store` on
//! every answer that carries a token, a code or a secret.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const JWT_BEARER: &str = "urn:sentry:params:oauth:grant-type:jwt-bearer";

async fn post_raw(app: &TestApp, path: &str, body: Value, bearer: &str) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn no_store(res: &reqwest::Response) -> bool {
    res.headers()
        .get("cache-control")
        .is_some_and(|v| v == "no-store")
}

http_tests! {
    async fn sentrys_jwt_bearer_grant_type_refreshes_manually_and_the_old_name_still_works() {
        let app = spawn_app().await;
        let i = app.installed("Acme", "acme").await;
        app.tokens(&i).await;
        let path = format!("/api/0/sentry-app-installations/{}/authorizations/", i.uuid);
        for (n, grant) in [JWT_BEARER, "client_secret_jwt"].iter().enumerate() {
            let claims = json!({"iss": i.client_id, "exp": app.epoch() + 240, "iat": app.epoch(), "jti": format!("j{n}")});
            let jwt = hs256(&i.client_secret, &claims);
            let res = post_raw(&app, &path, json!({"grant_type": grant}), &jwt).await;
            assert_eq!(res.status(), StatusCode::CREATED, "{grant}");
            assert!(no_store(&res), "{grant}: no Cache-Control: no-store");
            let t: Value = res.json().await.unwrap();
            assert!(t["token"].as_str().unwrap().starts_with("rtr_at_"));
        }
        let (_, ev) = app
            .admin_get(&format!("/api/0/events/?installation={}&type=token_exchanged", i.uuid))
            .await;
        let manual = ev.as_array().unwrap().iter().filter(|e| e["exchangeType"] == "manual_refresh").count();
        assert_eq!(manual, 2);
        // Without the JWT the error names the grant type used.
        let (status, body) = app.authorize(&i.uuid, json!({"grant_type": JWT_BEARER})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body["detail"].as_str().unwrap().contains(JWT_BEARER), "{body}");
        // Anything else is still Sentry's 403.
        let (status, body) = app.authorize(&i.uuid, json!({"grant_type": "urn:sentry:params:oauth:grant-type:other"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["detail"], "Invalid grant_type");
    }

    async fn every_answer_with_a_token_code_or_secret_is_no_store() {
        let app = spawn_app().await;
        let res = post_raw(&app, "/api/0/sentry-apps/", json!({"name": "Ns", "scopes": ["project:read"]}), ADMIN).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(no_store(&res), "app creation");
        let a: Value = res.json().await.unwrap();
        let res = post_raw(&app, "/api/0/sentry-apps/ns/rotate-secret/", json!({}), ADMIN).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(no_store(&res), "rotate-secret");
        let secret = res.json::<Value>().await.unwrap()["clientSecret"].as_str().unwrap().to_owned();
        let res = post_raw(&app, "/api/0/organizations/acme/sentry-app-installations/", json!({"slug": "ns"}), ADMIN).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(no_store(&res), "installation creation");
        let inst: Value = res.json().await.unwrap();
        let path = format!("/api/0/sentry-app-installations/{}/authorizations/", inst["uuid"].as_str().unwrap());
        let res = post_raw(&app, &path, json!({"grant_type": "authorization_code", "client_id": a["clientId"],
            "client_secret": secret, "code": inst["code"]}), "").await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(no_store(&res), "code exchange");
        let t: Value = res.json().await.unwrap();
        let res = post_raw(&app, &path, json!({"grant_type": "refresh_token", "client_id": a["clientId"],
            "client_secret": secret, "refresh_token": t["refreshToken"]}), "").await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(no_store(&res), "refresh");
    }

    async fn an_app_with_a_redirect_url_answers_where_to_send_the_user() {
        let app = spawn_app().await;
        let a = app.create_app("Redir", json!({"redirectUrl": "https://app.example/setup?from=rotor"})).await;
        assert_eq!(a["redirectUrl"], "https://app.example/setup?from=rotor");
        let (status, inst) = app
            .admin_post("/api/0/organizations/acme-co/sentry-app-installations/", json!({"slug": "redir"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let to = url::Url::parse(inst["redirectTo"].as_str().unwrap()).unwrap();
        assert_eq!((to.host_str(), to.path()), (Some("app.example"), "/setup"));
        let q: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
        assert_eq!(q["from"], "rotor");
        assert_eq!(q["code"], inst["code"].as_str().unwrap());
        assert_eq!(q["installationId"], inst["uuid"].as_str().unwrap());
        assert_eq!(q["orgSlug"], "acme-co");
        // Apps without one answer no redirectTo; a bad URL is refused; null clears it.
        let plain = app.create_app("Plain", json!({})).await;
        let i = app.install_app(&plain, "acme-co").await;
        let (_, shown) = app.admin_get(&format!("/api/0/sentry-app-installations/{}/", i.uuid)).await;
        assert!(shown.get("redirectTo").is_none());
        let (status, _) = app.admin_patch("/api/0/sentry-apps/redir/", json!({"redirectUrl": "javascript:alert(1)"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, cleared) = app.admin_patch("/api/0/sentry-apps/redir/", json!({"redirectUrl": null})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(cleared["redirectUrl"], Value::Null);
        let (_, inst) = app
            .admin_post("/api/0/organizations/other/sentry-app-installations/", json!({"slug": "redir"}))
            .await;
        assert!(inst.get("redirectTo").is_none(), "{inst}");
        // A bad actor is refused and installs nothing.
        let (status, body) = app
            .admin_post("/api/0/organizations/third/sentry-app-installations/", json!({"slug": "redir", "actor": {"id": [], "name": "x"}}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = app
            .admin_post("/api/0/organizations/third/sentry-app-installations/", json!({"slug": "redir"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "the refused request must not have installed it");
    }

    async fn the_platform_chooses_its_scopes() {
        let app = spawn_with(
            fresh().await,
            |c| c.scopes = rotor_core::ScopeVocabulary::parse("repo:read,repo:write,deploy").unwrap(),
        )
        .await;
        let (status, a) = app.admin_post("/api/0/sentry-apps/", json!({"name": "Ci", "scopes": ["repo:read", "deploy"]})).await;
        assert_eq!(status, StatusCode::CREATED, "{a}");
        assert_eq!(a["scopes"], json!(["deploy", "repo:read"]));
        let (status, body) = app.admin_post("/api/0/sentry-apps/", json!({"name": "Sentryish", "scopes": ["project:read"]})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let msg = body["scopes"][0].as_str().unwrap();
        assert!(msg.contains("project:read") && msg.contains("repo:write") && msg.contains("deploy"), "{msg}");
        let (_, meta) = app.admin_get("/.well-known/oauth-authorization-server").await;
        assert_eq!(meta["scopes_supported"], json!(["deploy", "repo:read", "repo:write"]));
    }
}
