//! The operator's admin API over real HTTP: apps, installations, events, and
//! the admin token that guards them.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn without_an_admin_token_the_admin_api_is_closed() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let config =
        rotor_server::Config::new(format!("sqlite://{}", dir.path().join("r.db").display()));
    let state = rotor_server::startup::build_default(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(rotor_server::serve(listener, state, std::future::pending()));
    let res = reqwest::Client::new()
        .get(format!("{base}/api/0/sentry-apps/"))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    let (status, body) = split(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].as_str().unwrap().contains("closed"));
    assert!(
        dir.path().join("r.db.key").exists(),
        "a key file was created next to the database"
    );
}

http_tests! {
    async fn the_admin_api_needs_the_admin_token() {
        let app = spawn_app().await;
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic dGVzdA=="),
            Some("Bearer "),
        ] {
            let mut req = app.http.get(app.url("/api/0/sentry-apps/"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let (status, body) = split(req.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert!(body["detail"].is_string());
        }
        let (status, _) = app.admin_get("/api/0/sentry-apps/").await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn create_an_app_and_see_its_secret_only_once() {
        let app = spawn_app().await;
        let (status, a) = app
            .admin_post(
                "/api/0/sentry-apps/",
                json!({"name": "Acme CI!", "scopes": ["project:read", "event:read", "project:read"],
                       "webhookUrl": "https://acme.test/hook", "verifyInstall": true,
                       "accessTokenTtlSeconds": 3600, "refreshGraceSeconds": 30,
                       "reusePolicy": "reject"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{a}");
        assert_eq!(a["slug"], "acme-ci");
        assert_eq!(a["name"], "Acme CI!");
        assert_eq!(a["scopes"], json!(["event:read", "project:read"]));
        assert_eq!(a["webhookUrl"], "https://acme.test/hook");
        assert_eq!(a["verifyInstall"], true);
        assert_eq!(a["accessTokenTtlSeconds"], 3600);
        assert_eq!(a["refreshGraceSeconds"], 30);
        assert_eq!(a["reusePolicy"], "reject");
        assert_eq!(a["clientId"].as_str().unwrap().len(), 64);
        let secret = a["clientSecret"].as_str().unwrap();
        assert!(secret.starts_with("rtr_cs_"));
        assert!(rotor_core::Token::parse(rotor_core::TokenKind::ClientSecret, secret).is_ok());

        let (_, list) = app.admin_get("/api/0/sentry-apps/").await;
        let (_, one) = app.admin_get("/api/0/sentry-apps/acme-ci/").await;
        for v in [&list, &one] {
            let text = v.to_string();
            assert!(!text.contains(secret), "no secret after creation");
            assert!(!text.contains("clientSecret"));
        }
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(one["uuid"], a["uuid"]);

        // Defaults.
        let b = app.create_app("Plain", json!({})).await;
        assert_eq!(b["accessTokenTtlSeconds"], 28800);
        assert_eq!(b["refreshGraceSeconds"], 60);
        assert_eq!(b["reusePolicy"], "revoke_family");
        assert_eq!(b["verifyInstall"], false);
        assert_eq!(b["webhookUrl"], Value::Null);
    }

    async fn bad_app_input_is_refused_and_changes_nothing() {
        let app = spawn_app().await;
        app.create_app("Taken", json!({})).await;
        let cases = [
            (json!({}), StatusCode::BAD_REQUEST, "name"),
            (json!({"name": "x"}), StatusCode::BAD_REQUEST, "scopes"),
            (
                json!({"name": "x", "scopes": ["root:all"]}),
                StatusCode::BAD_REQUEST,
                "scopes",
            ),
            (
                json!({"name": "x", "scopes": [], "reusePolicy": "maybe"}),
                StatusCode::BAD_REQUEST,
                "reusePolicy",
            ),
            (
                json!({"name": "x", "scopes": [], "webhookUrl": "not a url"}),
                StatusCode::BAD_REQUEST,
                "webhookUrl",
            ),
            (
                json!({"name": "x", "scopes": [], "accessTokenTtlSeconds": 0}),
                StatusCode::BAD_REQUEST,
                "accessTokenTtlSeconds",
            ),
            (
                json!({"name": "x", "scopes": [], "refreshGraceSeconds": 100000}),
                StatusCode::BAD_REQUEST,
                "refreshGraceSeconds",
            ),
            (
                json!({"name": "x", "scopes": [], "colour": "red"}),
                StatusCode::BAD_REQUEST,
                "colour",
            ),
            (
                json!({"name": "x", "scopes": "project:read"}),
                StatusCode::BAD_REQUEST,
                "sequence",
            ),
            (
                json!({"name": "!!!", "scopes": []}),
                StatusCode::BAD_REQUEST,
                "letter",
            ),
            (
                json!({"name": "TAKEN", "scopes": []}),
                StatusCode::CONFLICT,
                "taken",
            ),
        ];
        for (body, want, mention) in cases {
            let (status, answer) = app.admin_post("/api/0/sentry-apps/", body.clone()).await;
            assert_eq!(status, want, "{body} → {answer}");
            assert!(
                answer.to_string().contains(mention),
                "{body} → {answer} should mention {mention}"
            );
        }
        let (_, list) = app.admin_get("/api/0/sentry-apps/").await;
        assert_eq!(list.as_array().unwrap().len(), 1);
    }

    async fn patch_changes_settings() {
        let app = spawn_app().await;
        app.create_app("Acme", json!({"webhookUrl": "https://a.test/h"}))
            .await;
        let (status, a) = app
            .admin_patch(
                "/api/0/sentry-apps/acme/",
                json!({"webhookUrl": null, "verifyInstall": true, "refreshGraceSeconds": 0,
                       "reusePolicy": "reject", "name": "Acme Renamed"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{a}");
        assert_eq!(a["webhookUrl"], Value::Null);
        assert_eq!(a["verifyInstall"], true);
        assert_eq!(a["refreshGraceSeconds"], 0);
        assert_eq!(a["reusePolicy"], "reject");
        assert_eq!(a["name"], "Acme Renamed");
        assert_eq!(a["slug"], "acme", "the slug does not change");
        let (_, again) = app.admin_get("/api/0/sentry-apps/acme/").await;
        assert_eq!(again, a);
        let (status, _) = app
            .admin_patch("/api/0/sentry-apps/acme/", json!({"scopes": ["nope"]}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = app
            .admin_patch("/api/0/sentry-apps/ghost/", json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app.admin_get("/api/0/sentry-apps/ghost/").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn rotating_the_secret_ends_the_old_one() {
        let app = spawn_app().await;
        let i = app.installed("Acme", "acme").await;
        let (status, body) = app
            .admin_post("/api/0/sentry-apps/acme/rotate-secret/", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let new_secret = body["clientSecret"].as_str().unwrap();
        assert_ne!(new_secret, i.client_secret);
        let (status, _) = app.exchange(&i).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "old secret refused");
        let fresh = Installed {
            client_secret: new_secret.to_owned(),
            ..i
        };
        app.tokens(&fresh).await;
        let (status, _) = app
            .admin_post("/api/0/sentry-apps/ghost/rotate-secret/", json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn installations_are_one_per_org_and_app() {
        let app = spawn_app().await;
        let a = app.create_app("Acme", json!({})).await;
        let path = "/api/0/organizations/globex/sentry-app-installations/";
        let (status, inst) = app.admin_post(path, json!({"slug": "acme"})).await;
        assert_eq!(status, StatusCode::CREATED, "{inst}");
        assert_eq!(inst["status"], "pending");
        assert_eq!(inst["app"], json!({"uuid": a["uuid"], "slug": "acme"}));
        assert_eq!(inst["organization"], json!({"slug": "globex"}));
        assert!(inst["code"].as_str().unwrap().starts_with("rtr_gc_"));
        assert!(inst["dateCreated"].is_string());

        let (status, body) = app.admin_post(path, json!({"slug": "acme"})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, _) = app.admin_post(path, json!({"slug": "ghost"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = app.admin_post(path, json!({})).await;
        assert_eq!(
            (status, &body["slug"][0]),
            (StatusCode::BAD_REQUEST, &json!("This field is required."))
        );
        let (status, _) = app
            .admin_post(
                "/api/0/organizations/Bad%20Org/sentry-app-installations/",
                json!({"slug": "acme"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let uuid = inst["uuid"].as_str().unwrap();
        let one = format!("/api/0/sentry-app-installations/{uuid}/");
        let (status, shown) = app.admin_get(&one).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(shown["uuid"], uuid);
        assert!(
            shown.get("code").is_none(),
            "the code is shown only at creation"
        );
        assert_eq!(app.admin_delete(&one).await, StatusCode::NO_CONTENT);
        assert_eq!(app.admin_delete(&one).await, StatusCode::NOT_FOUND);
        assert_eq!(app.admin_get(&one).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            app.admin_get("/api/0/sentry-app-installations/nope/")
                .await
                .0,
            StatusCode::BAD_REQUEST,
            "a malformed id is a 400; an unknown one (above) a 404"
        );
        let (status, _) = app.admin_post(path, json!({"slug": "acme"})).await;
        assert_eq!(status, StatusCode::CREATED, "reinstall after delete");
    }

    async fn the_events_route_filters_and_checks_its_query() {
        let app = spawn_app().await;
        let a = app.installed("A", "acme").await;
        let b = app.installed("B", "acme").await;
        app.tokens(&a).await;
        let (status, ev) = app
            .admin_get(&format!("/api/0/events/?installation={}", b.uuid))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ev.as_array().unwrap().len(), 1);
        assert_eq!(ev[0]["type"], "installation_created");
        let (_, all) = app.admin_get("/api/0/events/").await;
        assert_eq!(all.as_array().unwrap().len(), 4);
        for bad in [
            "?installation=zzz",
            "?limit=0",
            "?limit=abc",
            "?limit=5000",
            "?bogus=1",
        ] {
            let (status, body) = app.admin_get(&format!("/api/0/events/{bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
    }

    async fn health_and_readiness() {
        let app = spawn_app().await;
        let (status, body) = split(app.http.get(app.url("/healthz")).send().await.unwrap()).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("ok"))
        );
        let (status, body) = split(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("ready"))
        );
    }
}
