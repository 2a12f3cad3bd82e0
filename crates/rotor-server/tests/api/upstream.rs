//! Upstream identities over HTTP, against a local stand-in of each provider
//! (wiremock): each kind's request exactly as the provider expects it, the
//! classification of failures, single-flight, and what is stored.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const GITHUB_KEY: &str = include_str!("fixtures/github-app.pem");
const GITHUB_PUB: &str = include_str!("fixtures/github-app.pub.pem");
const ASC_KEY: &str = include_str!("fixtures/asc.p8");
const ASC_PUB: &str = include_str!("fixtures/asc.pub.pem");

async fn provider(app: &TestApp, key: &str, kind: &str, config: Value) -> (StatusCode, Value) {
    app.admin_post(
        "/api/0/upstream/providers/",
        json!({"key": key, "kind": kind, "config": config}),
    )
    .await
}

async fn identity(app: &TestApp, body: Value) -> String {
    let (status, i) = app.admin_post("/api/0/upstream/identities/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{i}");
    assert_eq!(i["status"], "active");
    i["id"].as_str().unwrap().to_owned()
}

async fn token(app: &TestApp, id: &str) -> (StatusCode, Value) {
    app.admin_post(
        &format!("/api/0/upstream/identities/{id}/token/?minValidSeconds=60"),
        json!({}),
    )
    .await
}

fn form(req: &wiremock::Request) -> std::collections::BTreeMap<String, String> {
    url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect()
}

fn ok_answer(access: &str, refresh: Option<&str>) -> ResponseTemplate {
    let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600});
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

async fn oauth2_provider(app: &TestApp, server: &MockServer, key: &str, extra: Value) {
    let mut config = json!({"tokenUrl": format!("{}/token", server.uri()), "clientId": "cid", "clientSecret": "csecret"});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, p) = provider(app, key, "oauth2", config).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert!(
        p["config"].get("clientSecret").is_none(),
        "secrets are write-only: {p}"
    );
}

http_tests! {
    async fn asking_for_longer_than_the_provider_grants_is_a_400_not_a_retry() {
        let app = spawn_app().await;
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ok_answer("fresh", Some("r2")))
            .expect(1)
            .mount(&server)
            .await;
        oauth2_provider(&app, &server, "short", json!({})).await;
        let id = identity(&app, json!({"provider": "short", "externalId": "u", "refreshToken": "r1"})).await;
        // Tokens live an hour; two are asked for. The refresh happens (and is
        // kept), but no retry would ever satisfy the ask: 400, not 503.
        let (status, body) = app
            .admin_post(&format!("/api/0/upstream/identities/{id}/token/?minValidSeconds=7200"), json!({}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["minValidSeconds"][0].as_str().unwrap().contains("7200"), "{body}");
        let (status, t) = token(&app, &id).await;
        assert_eq!((status, t["accessToken"].as_str()), (StatusCode::OK, Some("fresh")));
    }

    async fn an_oauth2_identity_is_refreshed_once_and_rotates() {
        let app = spawn_app().await;
        let server = MockServer::start().await;
        oauth2_provider(&app, &server, "idp", json!({})).await;
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ok_answer("at-1", Some("rt-2")))
            .expect(1)
            .mount(&server)
            .await;
        let id = identity(&app, json!({"provider": "idp", "externalId": "u1", "scopes": ["read"], "refreshToken": "rt-1"})).await;
        let (status, t) = token(&app, &id).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        assert_eq!(t["accessToken"], "at-1");
        assert_eq!(t["tokenType"], "Bearer");
        // Again: the stored token is good for 60 s, no second call.
        let (_, t2) = token(&app, &id).await;
        assert_eq!(t2["accessToken"], "at-1");
        let req = &server.received_requests().await.unwrap()[0];
        let f = form(req);
        assert_eq!(f["grant_type"], "refresh_token");
        assert_eq!(f["refresh_token"], "rt-1");
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode("cid:csecret");
        assert_eq!(req.headers["authorization"], format!("Basic {basic}").as_str());
        // The rotated refresh token is the one sent next.
        server.reset().await;
        Mock::given(method("POST")).and(path("/token")).and(body_string_contains("refresh_token=rt-2"))
            .respond_with(ok_answer("at-2", None))
            .expect(1)
            .mount(&server)
            .await;
        let (status, t3) = app.admin_post(&format!("/api/0/upstream/identities/{id}/refresh/"), json!({})).await;
        assert_eq!((status, t3["accessToken"].as_str()), (StatusCode::OK, Some("at-2")));
        let (_, shown) = app.admin_get(&format!("/api/0/upstream/identities/{id}/")).await;
        assert_eq!(shown["status"], "active");
        assert_eq!(shown["failureCount"], 0);
        assert!(shown.get("accessToken").is_none() && !shown.to_string().contains("at-2"), "{shown}");
    }

    async fn a_hundred_concurrent_callers_cause_one_upstream_call() {
        let app = Arc::new(spawn_app().await);
        let server = MockServer::start().await;
        oauth2_provider(&app, &server, "idp", json!({})).await;
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ok_answer("at-1", Some("rt-2")).set_delay(std::time::Duration::from_millis(100)))
            .expect(1)
            .mount(&server)
            .await;
        let id = identity(&app, json!({"provider": "idp", "externalId": "u1", "refreshToken": "rt-1"})).await;
        let calls: Vec<_> = (0..100).map(|_| {
            let (app, id) = (app.clone(), id.clone());
            tokio::spawn(async move { token(&app, &id).await })
        }).collect();
        for c in calls {
            let (status, t) = c.await.unwrap();
            assert_eq!((status, t["accessToken"].as_str()), (StatusCode::OK, Some("at-1")));
        }
        server.verify().await;
    }

    async fn invalid_grant_marks_the_identity_invalid() {
        let app = spawn_app().await;
        let server = MockServer::start().await;
        oauth2_provider(&app, &server, "idp", json!({"authMethod": "client_secret_post"})).await;
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant", "error_description": "revoked"})))
            .expect(1)
            .mount(&server)
            .await;
        let id = identity(&app, json!({"provider": "idp", "externalId": "u1", "refreshToken": "rt-1"})).await;
        let (status, body) = token(&app, &id).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("invalid_grant"));
        // No more attempts.
        assert_eq!(token(&app, &id).await.0, StatusCode::CONFLICT);
        let (_, shown) = app.admin_get(&format!("/api/0/upstream/identities/{id}/")).await;
        assert_eq!(shown["status"], "invalid");
        let (_, ev) = app.admin_get(&format!("/api/0/events/?identity={id}&type=identity_invalid")).await;
        assert_eq!(ev[0]["detail"], "HTTP 400: invalid_grant: revoked");
        let f = form(&server.received_requests().await.unwrap()[0]);
        assert_eq!((f["client_id"].as_str(), f["client_secret"].as_str()), ("cid", "csecret"));
    }

    async fn transient_failures_keep_the_identity_and_count() {
        let app = spawn_app().await;
        let server = MockServer::start().await;
        oauth2_provider(&app, &server, "idp", json!({})).await;
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ResponseTemplate::new(503).set_body_string("<html>down</html>"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token_type": "Bearer"})))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        let id = identity(&app, json!({"provider": "idp", "externalId": "u1", "refreshToken": "rt-1"})).await;
        let (status, body) = token(&app, &id).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        // Within the backoff, callers are answered without asking the provider.
        let (status, body) = token(&app, &id).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body["detail"].as_str().unwrap().contains("backoff"), "{body}");
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
        app.advance(chrono::Duration::seconds(10));
        let (status, body) = token(&app, &id).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "a 200 without access_token is an error: {body}");
        assert!(body["detail"].as_str().unwrap().contains("access_token"));
        let (_, shown) = app.admin_get(&format!("/api/0/upstream/identities/{id}/")).await;
        assert_eq!(shown["status"], "active");
        assert_eq!(shown["failureCount"], 2);
        assert!(shown["lastError"].as_str().unwrap().contains("access_token"));
    }

    async fn google_does_not_rotate_slack_and_atlassian_do() {
        let app = spawn_app().await;
        let server = MockServer::start().await;
        let base = server.uri();
        for (key, kind) in [("g", "google"), ("s", "slack"), ("a", "atlassian"), ("e", "entra")] {
            let (status, p) = provider(&app, key, kind,
                json!({"clientId": "cid", "clientSecret": "cs", "tokenUrl": format!("{base}/{key}")})).await;
            assert_eq!(status, StatusCode::CREATED, "{p}");
        }
        Mock::given(method("POST")).and(path("/g")).respond_with(ok_answer("g-at", None)).mount(&server).await;
        Mock::given(method("POST")).and(path("/s"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "access_token": "s-at", "refresh_token": "s-rt2", "expires_in": 43200, "token_type": "bot"})))
            .mount(&server).await;
        Mock::given(method("POST")).and(path("/a")).and(header("content-type", "application/json"))
            .respond_with(ok_answer("a-at", Some("a-rt2"))).mount(&server).await;
        Mock::given(method("POST")).and(path("/e")).and(body_string_contains("scope=offline_access+User.Read"))
            .respond_with(ok_answer("e-at", Some("e-rt2"))).mount(&server).await;
        let g = identity(&app, json!({"provider": "g", "externalId": "x", "refreshToken": "g-rt"})).await;
        let s = identity(&app, json!({"provider": "s", "externalId": "x", "refreshToken": "s-rt"})).await;
        let a = identity(&app, json!({"provider": "a", "externalId": "x", "refreshToken": "a-rt"})).await;
        let e = identity(&app, json!({"provider": "e", "externalId": "x", "scopes": ["offline_access", "User.Read"], "refreshToken": "e-rt"})).await;
        for (id, want) in [(&g, "g-at"), (&s, "s-at"), (&a, "a-at"), (&e, "e-at")] {
            let (status, t) = token(&app, id).await;
            assert_eq!((status, t["accessToken"].as_str()), (StatusCode::OK, Some(want)), "{t}");
        }
        // Forced refreshes: Google sends its original refresh token again; the
        // rotating providers send the new one.
        for id in [&g, &s, &a] {
            assert_eq!(app.admin_post(&format!("/api/0/upstream/identities/{id}/refresh/"), json!({})).await.0, StatusCode::OK);
        }
        let reqs = server.received_requests().await.unwrap();
        let sent = |p: &str| reqs.iter().filter(|r| r.url.path() == p).map(|r| r.body.clone()).collect::<Vec<_>>();
        let g_sent = sent("/g");
        assert!(String::from_utf8_lossy(&g_sent[1]).contains("refresh_token=g-rt&"), "google keeps the stored token");
        assert!(String::from_utf8_lossy(&sent("/s")[1]).contains("refresh_token=s-rt2"));
        let a_body: Value = serde_json::from_slice(&sent("/a")[1]).unwrap();
        assert_eq!(a_body, json!({"grant_type": "refresh_token", "client_id": "cid", "client_secret": "cs", "refresh_token": "a-rt2"}));
    }

    async fn provider_specific_failures_are_classified() {
        let app = spawn_app().await;
        let server = MockServer::start().await;
        let base = server.uri();
        for (key, kind) in [("s", "slack"), ("a", "atlassian"), ("e", "entra")] {
            provider(&app, key, kind, json!({"clientId": "cid", "clientSecret": "cs", "tokenUrl": format!("{base}/{key}")})).await;
        }
        Mock::given(path("/s")).respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_refresh_token"}))).mount(&server).await;
        Mock::given(path("/a")).respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": "invalid_grant"}))).mount(&server).await;
        Mock::given(path("/e")).respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "interaction_required"}))).mount(&server).await;
        for key in ["s", "a", "e"] {
            let id = identity(&app, json!({"provider": key, "externalId": "x", "refreshToken": "rt"})).await;
            let (status, body) = token(&app, &id).await;
            assert_eq!(status, StatusCode::CONFLICT, "{key}: {body}");
        }
    }

    async fn azure_devops_posts_the_jwt_bearer_assertion() {
        let app = spawn_app().await;
        let server = MockServer::start().await;
        let (status, body) = provider(&app, "ado", "azure-devops", json!({"clientSecret": "full", "limitedClientSecret": "limited", "tokenUrl": format!("{}/oauth2/token", server.uri())})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "redirectUri is required: {body}");
        let (status, _) = provider(&app, "ado", "azure-devops", json!({"clientSecret": "full", "limitedClientSecret": "limited", "redirectUri": "https://rotor.test/cb", "tokenUrl": format!("{}/oauth2/token", server.uri())})).await;
        assert_eq!(status, StatusCode::CREATED);
        Mock::given(method("POST")).and(path("/oauth2/token")).respond_with(ok_answer("ado-at", Some("ado-rt2"))).mount(&server).await;
        let code = identity(&app, json!({"provider": "ado", "externalId": "x", "scopes": ["vso.code", "vso.work"], "refreshToken": "rt-a"})).await;
        let plain = identity(&app, json!({"provider": "ado", "externalId": "y", "scopes": ["vso.work"], "refreshToken": "rt-b"})).await;
        token(&app, &code).await;
        token(&app, &plain).await;
        let reqs = server.received_requests().await.unwrap();
        let f = form(&reqs[0]);
        assert_eq!(f["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        assert_eq!(f["client_assertion"], "full");
        assert_eq!(f["grant_type"], "refresh_token");
        assert_eq!(f["assertion"], "rt-a");
        assert_eq!(f["redirect_uri"], "https://rotor.test/cb");
        assert_eq!(form(&reqs[1])["client_assertion"], "limited", "no vso.code: the limited secret");
    }

    async fn github_app_tokens_use_an_app_jwt() {
        let app = spawn_app().await;
        let server = MockServer::start().await;
        let (status, p) = provider(&app, "gh", "github-app", json!({"appId": 12345, "privateKey": GITHUB_KEY, "apiBaseUrl": server.uri()})).await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
        assert_eq!(p["config"]["appId"], "12345");
        let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        Mock::given(method("POST")).and(path("/app/installations/777/access_tokens"))
            .and(header("accept", "application/vnd.github+json"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"token": "ghs_abc", "expires_at": expires})))
            .expect(1)
            .mount(&server)
            .await;
        let (status, _) = app.admin_post("/api/0/upstream/identities/", json!({"provider": "gh", "externalId": "org"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "installationId is required");
        let id = identity(&app, json!({"provider": "gh", "externalId": "org", "installationId": 777})).await;
        let (status, t) = token(&app, &id).await;
        assert_eq!((status, t["accessToken"].as_str()), (StatusCode::OK, Some("ghs_abc")), "{t}");
        let req = &server.received_requests().await.unwrap()[0];
        let jwt = req.headers["authorization"].to_str().unwrap().strip_prefix("Bearer ").unwrap().to_owned();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Value>(&jwt, &jsonwebtoken::DecodingKey::from_rsa_pem(GITHUB_PUB.as_bytes()).unwrap(), &v).unwrap().claims;
        let now = chrono::Utc::now().timestamp();
        assert_eq!(claims["iss"], "12345");
        let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
        assert!((now - 70..=now - 50).contains(&iat), "iat 60 s in the past");
        assert!(exp > now && exp <= now + 600, "exp at most 10 minutes ahead");
        let (status, _) = provider(&app, "gh2", "github-app", json!({"appId": "x1", "privateKey": GITHUB_KEY})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = provider(&app, "gh3", "github-app", json!({"appId": 1, "privateKey": "not a key"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    async fn app_store_connect_tokens_are_minted_locally() {
        let app = spawn_app().await;
        let (status, p) = provider(&app, "asc", "app-store-connect", json!({"issuerId": "iss-uuid", "keyId": "KEY123", "privateKey": ASC_KEY})).await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
        let id = identity(&app, json!({"provider": "asc", "externalId": "team"})).await;
        let (status, t) = token(&app, &id).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        let jwt = t["accessToken"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        assert_eq!((header.alg, header.kid.as_deref(), header.typ.as_deref()), (jsonwebtoken::Algorithm::ES256, Some("KEY123"), Some("JWT")));
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&["appstoreconnect-v1"]);
        let claims = jsonwebtoken::decode::<Value>(jwt, &jsonwebtoken::DecodingKey::from_ec_pem(ASC_PUB.as_bytes()).unwrap(), &v).unwrap().claims;
        assert_eq!(claims["iss"], "iss-uuid");
        assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 1200);
        // Cached while valid.
        let (_, again) = token(&app, &id).await;
        assert_eq!(again["accessToken"], t["accessToken"]);
    }

    async fn bad_provider_and_identity_input_is_refused() {
        let app = spawn_app().await;
        for (key, kind, config) in [
            ("x", "nope", json!({})),
            ("x", "oauth2", json!({"clientId": "c", "clientSecret": "s"})),
            ("x", "oauth2", json!({"tokenUrl": "ftp://x", "clientId": "c", "clientSecret": "s"})),
            ("x", "oauth2", json!({"tokenUrl": "https://x.test/t", "clientId": "c", "clientSecret": "s", "authMethod": "magic"})),
            ("x", "google", json!({"clientId": "c"})),
            ("x", "google", json!({"clientId": "c", "clientSecret": "s", "colour": "red"})),
            ("Bad Key", "google", json!({"clientId": "c", "clientSecret": "s"})),
            ("x", "google", json!("string")),
        ] {
            let (status, body) = provider(&app, key, kind, config.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{kind} {config}: {body}");
        }
        let (status, _) = provider(&app, "g", "google", json!({"clientId": "c", "clientSecret": "s"})).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = provider(&app, "g", "google", json!({"clientId": "c", "clientSecret": "s"})).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (_, list) = app.admin_get("/api/0/upstream/providers/").await;
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["config"]["tokenUrl"], "https://oauth2.googleapis.com/token");
        let (status, _) = app.admin_post("/api/0/upstream/identities/", json!({"provider": "nope", "externalId": "x", "refreshToken": "r"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = app.admin_post("/api/0/upstream/identities/", json!({"provider": "g"})).await;
        assert_eq!((status, &body["externalId"][0]), (StatusCode::BAD_REQUEST, &json!("This field is required.")));
        // A malformed id is refused as such; an unknown one is not found.
        assert_eq!(token(&app, "not-a-uuid").await.0, StatusCode::BAD_REQUEST);
        assert_eq!(token(&app, &uuid::Uuid::new_v4().to_string()).await.0, StatusCode::NOT_FOUND);
        let id = identity(&app, json!({"provider": "g", "externalId": "x", "refreshToken": "r"})).await;
        let (status, _) = app.admin_post(&format!("/api/0/upstream/identities/{id}/token/?minValidSeconds=-5"), json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(app.admin_delete(&format!("/api/0/upstream/identities/{id}/")).await, StatusCode::NO_CONTENT);
        assert_eq!(app.admin_delete(&format!("/api/0/upstream/identities/{id}/")).await, StatusCode::NOT_FOUND);
    }
    async fn two_nodes_on_one_database_cause_one_upstream_call() {
        let a = spawn_app().await;
        let b = spawn_on(Restart {
            dir: a.dir.clone(),
            key: a.key.clone(),
            clock: a.clock.clone(),
            database_url: a.database_url.clone(),
        })
        .await;
        let server = MockServer::start().await;
        oauth2_provider(&a, &server, "idp", json!({})).await;
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ok_answer("at-1", Some("rt-2")).set_delay(std::time::Duration::from_millis(200)))
            .expect(1)
            .mount(&server)
            .await;
        let id = identity(&a, json!({"provider": "idp", "externalId": "u1", "refreshToken": "rt-1"})).await;
        let calls = (0..20).map(|n| {
            let node = if n % 2 == 0 { &a } else { &b };
            token(node, &id)
        });
        for (status, t) in futures::future::join_all(calls).await {
            assert_eq!((status, t["accessToken"].as_str()), (StatusCode::OK, Some("at-1")), "{t}");
        }
        server.verify().await;
    }

    async fn a_lost_answer_is_retried_with_the_same_refresh_token() {
        let r = spawn_app().await.stop().await;
        let app = spawn_with(r, |c| c.upstream_timeout = std::time::Duration::from_millis(300)).await;
        let server = MockServer::start().await;
        oauth2_provider(&app, &server, "idp", json!({})).await;
        // The first answer never arrives in time; the provider may or may not
        // have rotated. Rotor asks again with the same refresh token.
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ok_answer("lost", Some("rt-lost")).set_delay(std::time::Duration::from_secs(2)))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ok_answer("at-ok", Some("rt-2")))
            .mount(&server)
            .await;
        let id = identity(&app, json!({"provider": "idp", "externalId": "u1", "refreshToken": "rt-1"})).await;
        let (status, t) = token(&app, &id).await;
        assert_eq!((status, t["accessToken"].as_str()), (StatusCode::OK, Some("at-ok")), "{t}");
        let reqs = server.received_requests().await.unwrap();
        assert_eq!(reqs.len(), 2);
        for req in &reqs {
            assert_eq!(form(req)["refresh_token"], "rt-1", "the same refresh token both times");
        }
        let (_, shown) = app.admin_get(&format!("/api/0/upstream/identities/{id}/")).await;
        assert_eq!((shown["status"].as_str(), shown["failureCount"].as_i64()), (Some("active"), Some(0)));
    }

    async fn the_background_refresher_renews_ahead_of_expiry() {
        let app = spawn_app().await;
        let server = MockServer::start().await;
        oauth2_provider(&app, &server, "idp", json!({})).await;
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ok_answer("renewed", None))
            .mount(&server)
            .await;
        let now = rotor_core::Clock::now(&*app.clock);
        let soon = (now + chrono::Duration::seconds(90)).to_rfc3339();
        let later = (now + chrono::Duration::hours(2)).to_rfc3339();
        let due = identity(&app, json!({"provider": "idp", "externalId": "a", "refreshToken": "r1", "accessToken": "old", "expiresAt": soon})).await;
        identity(&app, json!({"provider": "idp", "externalId": "b", "refreshToken": "r2", "accessToken": "fine", "expiresAt": later})).await;
        assert_eq!(app.service.refresh_due().await.unwrap(), 1);
        let (_, t) = token(&app, &due).await;
        assert_eq!(t["accessToken"], "renewed");
        // Long-lived tokens nobody asks for are still refreshed every 7 days,
        // so their refresh tokens never expire from idleness.
        let month = (now + chrono::Duration::days(30)).to_rfc3339();
        let quiet = identity(&app, json!({"provider": "idp", "externalId": "c", "refreshToken": "r3", "accessToken": "quiet", "expiresAt": month})).await;
        app.advance(chrono::Duration::days(6));
        app.service.refresh_due().await.unwrap();
        let sent: Vec<_> = server.received_requests().await.unwrap().iter().map(|r| form(r)["refresh_token"].clone()).collect();
        assert!(!sent.contains(&"r3".to_owned()), "not yet idle for 7 days: {sent:?}");
        app.advance(chrono::Duration::days(2));
        app.service.refresh_due().await.unwrap();
        let sent: Vec<_> = server.received_requests().await.unwrap().iter().map(|r| form(r)["refresh_token"].clone()).collect();
        assert!(sent.contains(&"r3".to_owned()), "the quiet identity was refreshed: {sent:?}");
        let (_, shown) = app.admin_get(&format!("/api/0/upstream/identities/{quiet}/")).await;
        assert!(shown["lastRefreshedAt"].is_string());
    }
}
