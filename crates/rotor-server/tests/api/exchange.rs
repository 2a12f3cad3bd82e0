//! The installation authorizations endpoint over real HTTP: code exchange,
//! refresh, every validation branch in the reference order, and the race.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use chrono::Duration;
use reqwest::StatusCode;
use rotor_core::Clock;
use serde_json::json;

fn detail(body: &serde_json::Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

http_tests! {
    async fn a_code_exchange_answers_the_sentry_wire_format() {
        let app = spawn_app().await;
        let i = app.installed("Acme CI", "acme").await;
        let before = app.clock.now();
        let t = app.tokens(&i).await;
        assert!(t["token"].as_str().unwrap().starts_with("rtr_at_"));
        assert!(t["refreshToken"].as_str().unwrap().starts_with("rtr_rt_"));
        assert!(t["id"].is_string());
        assert_eq!(t["scopes"], json!(["event:write", "project:read"]));
        assert_eq!(t["application"], json!(null));
        assert_eq!(t["state"], json!(null));
        let expires: chrono::DateTime<chrono::Utc> = t["expiresAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(expires, before + Duration::hours(8));
        let s = t["expiresAt"].as_str().unwrap();
        assert!(
            s.ends_with('Z') && s.len() == "2026-11-26T18:00:00.000000Z".len(),
            "{s}"
        );
    }

    async fn the_client_must_authenticate() {
        let app = spawn_app().await;
        let i = app.installed("Acme CI", "acme").await;
        for (id, secret) in [
            (i.client_id.as_str(), "rtr_cs_wrong"),
            ("unknown-client", i.client_secret.as_str()),
            (
                i.client_id.as_str(),
                &i.client_secret[..i.client_secret.len() - 1],
            ),
        ] {
            let (status, body) = app
                .authorize(
                    &i.uuid,
                    json!({"client_id": id, "client_secret": secret,
                           "grant_type": "authorization_code", "code": i.code}),
                )
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(detail(&body), "Invalid Client ID / Secret pair");
        }
        // Nothing changed: the code still works.
        app.tokens(&i).await;
    }

    async fn the_installation_must_exist_and_belong_to_the_app() {
        let app = spawn_app().await;
        let a = app.installed("App A", "acme").await;
        let b = app.installed("App B", "acme").await;
        // B's credentials on A's installation.
        let (status, body) = app
            .authorize(
                &a.uuid,
                json!({"client_id": b.client_id, "client_secret": b.client_secret,
                       "grant_type": "authorization_code", "code": a.code}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(detail(&body), "Installation is not for this app");
        for uuid in ["00000000-0000-0000-0000-000000000000", "not-a-uuid"] {
            let (status, body) = app
                .authorize(
                    uuid,
                    json!({"client_id": a.client_id, "client_secret": a.client_secret,
                           "grant_type": "authorization_code", "code": a.code}),
                )
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(detail(&body), "Installation does not exist");
        }
        app.tokens(&a).await;
    }

    async fn a_deleted_installation_refuses_everything() {
        let app = spawn_app().await;
        let i = app.installed("Acme CI", "acme").await;
        let t = app.tokens(&i).await;
        let path = format!("/api/0/sentry-app-installations/{}/", i.uuid);
        assert_eq!(app.admin_delete(&path).await, StatusCode::NO_CONTENT);
        let (status, body) = app.refresh(&i, t["refreshToken"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(detail(&body), "Installation does not exist");
        let (status, _) = app.verify(&i.uuid, t["token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    async fn grant_codes_are_checked_and_single_use() {
        let app = spawn_app().await;
        let a = app.installed("App A", "acme").await;
        let a2 = app.install_app(&a.app, "globex").await;
        let creds = |code: &str| {
            json!({"client_id": a.client_id, "client_secret": a.client_secret,
                   "grant_type": "authorization_code", "code": code})
        };
        let cases = [
            (
                "rtr_gc_malformed",
                "Could not find grant for the given code",
            ),
            ("", "This field is required."),
            (a2.code.as_str(), "Forbidden grant"),
        ];
        for (code, want) in cases {
            let (status, body) = app.authorize(&a.uuid, creds(code)).await;
            if code.is_empty() {
                assert_eq!(status, StatusCode::BAD_REQUEST);
                assert_eq!(body["code"][0], want);
            } else {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{code}");
                assert_eq!(detail(&body), want);
            }
        }
        // A well-formed code nobody issued.
        let unknown = rotor_core::Token::generate(rotor_core::TokenKind::GrantCode);
        let (status, body) = app.authorize(&a.uuid, creds(unknown.expose())).await;
        assert_eq!(
            (status, detail(&body)),
            (
                StatusCode::UNAUTHORIZED,
                "Could not find grant for the given code"
            )
        );

        app.tokens(&a).await;
        let (status, body) = app.exchange(&a).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(detail(&body), "Could not find grant for the given code");
        // The other installation's code was not consumed by the failed attempt.
        app.tokens(&a2).await;
    }

    async fn a_grant_expires_after_ten_minutes() {
        let app = spawn_app().await;
        let i = app.installed("Acme CI", "acme").await;
        let j = app.install_app(&i.app, "globex").await;
        app.advance(Duration::minutes(10) - Duration::seconds(1));
        app.tokens(&j).await;
        app.advance(Duration::seconds(1));
        let (status, body) = app.exchange(&i).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(detail(&body), "Grant has already expired.");
    }

    async fn refresh_retires_the_old_pair_and_issues_a_new_one() {
        let app = spawn_app().await;
        // No grace window and `reject`: the old token is simply spent (the grace
        // window and family revocation have tests of their own).
        let a = app
            .create_app(
                "Acme CI",
                json!({"refreshGraceSeconds": 0, "reusePolicy": "reject"}),
            )
            .await;
        let i = app.install_app(&a, "acme").await;
        let t1 = app.tokens(&i).await;
        app.advance(Duration::hours(1));
        let (status, t2) = app.refresh(&i, t1["refreshToken"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::CREATED, "{t2}");
        assert_ne!(t2["token"], t1["token"]);
        assert_ne!(t2["refreshToken"], t1["refreshToken"]);
        let expires: chrono::DateTime<chrono::Utc> = t2["expiresAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            expires,
            app.clock.now() + Duration::hours(8),
            "fresh expiry"
        );
        // Old access token no longer works, the new one does.
        assert_eq!(
            app.verify(&i.uuid, t1["token"].as_str().unwrap()).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.verify(&i.uuid, t2["token"].as_str().unwrap()).await.0,
            StatusCode::OK
        );
        // The old refresh token is spent.
        let (status, body) = app.refresh(&i, t1["refreshToken"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(detail(&body), "Refresh token was already used");
        // The new one refreshes again.
        let (status, _) = app.refresh(&i, t2["refreshToken"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::CREATED);
    }

    async fn refresh_uses_the_apps_current_scopes_and_ttl() {
        let app = spawn_app().await;
        let i = app.installed("Acme CI", "acme").await;
        let t1 = app.tokens(&i).await;
        let slug = i.app["slug"].as_str().unwrap();
        let (status, _) = app
            .admin_patch(
                &format!("/api/0/sentry-apps/{slug}/"),
                json!({"scopes": ["org:read"], "accessTokenTtlSeconds": 3600}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, t2) = app.refresh(&i, t1["refreshToken"].as_str().unwrap()).await;
        assert_eq!(t2["scopes"], json!(["org:read"]));
        let expires: chrono::DateTime<chrono::Utc> = t2["expiresAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(expires, app.clock.now() + Duration::hours(1));
    }

    async fn a_refresh_token_must_belong_to_the_app_and_installation() {
        let app = spawn_app().await;
        let a = app.installed("App A", "acme").await;
        let b = app.installed("App B", "acme").await;
        let a2 = app.install_app(&a.app, "globex").await;
        let ta = app.tokens(&a).await;
        let tb = app.tokens(&b).await;
        let ta2 = app.tokens(&a2).await;
        // B's refresh token presented by A on A's installation.
        let (status, body) = app.refresh(&a, tb["refreshToken"].as_str().unwrap()).await;
        assert_eq!(
            (status, detail(&body)),
            (
                StatusCode::UNAUTHORIZED,
                "Token does not belong to the application"
            )
        );
        // A's token of another installation.
        let (status, body) = app.refresh(&a, ta2["refreshToken"].as_str().unwrap()).await;
        assert_eq!(
            (status, detail(&body)),
            (
                StatusCode::UNAUTHORIZED,
                "Token does not belong to the installation"
            )
        );
        // Malformed, unknown, and an access token in its place.
        let unknown = rotor_core::Token::generate(rotor_core::TokenKind::Refresh);
        for bad in ["garbage", ta["token"].as_str().unwrap(), unknown.expose()] {
            let (status, body) = app.refresh(&a, bad).await;
            assert_eq!(
                (status, detail(&body)),
                (
                    StatusCode::UNAUTHORIZED,
                    "Given refresh token does not exist"
                )
            );
        }
        // None of that changed anything.
        for (inst, t) in [(&a, &ta), (&b, &tb), (&a2, &ta2)] {
            assert_eq!(
                app.refresh(inst, t["refreshToken"].as_str().unwrap())
                    .await
                    .0,
                StatusCode::CREATED
            );
        }
    }

    async fn fifty_parallel_refreshes_have_exactly_one_winner() {
        let app = std::sync::Arc::new(spawn_app().await);
        // Without a grace window, the store's compare-and-swap admits one.
        let a = app
            .create_app(
                "Acme CI",
                json!({"refreshGraceSeconds": 0, "reusePolicy": "reject"}),
            )
            .await;
        let i = std::sync::Arc::new(app.install_app(&a, "acme").await);
        let t = app.tokens(&i).await;
        let rt = t["refreshToken"].as_str().unwrap().to_owned();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (app, i, rt) = (app.clone(), i.clone(), rt.clone());
                tokio::spawn(async move { app.refresh(&i, &rt).await })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            match status {
                StatusCode::CREATED => winners.push(body),
                StatusCode::UNAUTHORIZED => {
                    assert_eq!(detail(&body), "Refresh token was already used")
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one 201");
        let w = &winners[0];
        assert_eq!(
            app.verify(&i.uuid, w["token"].as_str().unwrap()).await.0,
            StatusCode::OK
        );
        assert_eq!(
            app.refresh(&i, w["refreshToken"].as_str().unwrap()).await.0,
            StatusCode::CREATED
        );
        let (_, events) = app
            .admin_get(&format!(
                "/api/0/events/?installation={}&type=token_exchanged",
                i.uuid
            ))
            .await;
        let kinds: Vec<_> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["exchangeType"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            vec!["refresh", "refresh", "authorization"],
            "one event per exchange that happened"
        );
    }

    async fn exchanges_record_events_and_audit_records_with_the_ip() {
        let app = spawn_app().await;
        let i = app.installed("Acme CI", "acme").await;
        let t = app.tokens(&i).await;
        app.refresh(&i, t["refreshToken"].as_str().unwrap()).await;
        let (status, events) = app
            .admin_get(&format!("/api/0/events/?installation={}", i.uuid))
            .await;
        assert_eq!(status, StatusCode::OK);
        let ev = events.as_array().unwrap();
        let types: Vec<_> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            vec![
                "token_exchange_audit",
                "token_exchanged",
                "token_exchange_audit",
                "token_exchanged",
                "installation_created"
            ]
        );
        assert_eq!(ev[0]["exchangeType"], "refresh");
        assert_eq!(ev[0]["ip"], "127.0.0.1");
        assert_eq!(ev[0]["installation"], i.uuid.as_str());
        assert_eq!(ev[3]["exchangeType"], "authorization");
        let (_, limited) = app
            .admin_get("/api/0/events/?type=token_exchanged&limit=1")
            .await;
        assert_eq!(limited.as_array().unwrap().len(), 1);
        assert_eq!(limited[0]["exchangeType"], "refresh");
    }

    async fn bad_input_gets_clear_errors() {
        let app = spawn_app().await;
        let i = app.installed("Acme CI", "acme").await;
        let url = app.url(&format!(
            "/api/0/sentry-app-installations/{}/authorizations/",
            i.uuid
        ));

        let (status, body) = app
            .authorize(&i.uuid, json!({"grant_type": "refresh_token"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        for f in ["client_id", "client_secret", "refresh_token"] {
            assert_eq!(body[f], json!(["This field is required."]), "{body}");
        }
        let (status, body) = app.authorize(&i.uuid, json!({"client_id": "x"})).await;
        assert_eq!(
            (status, body["grant_type"][0].as_str()),
            (StatusCode::BAD_REQUEST, Some("This field is required."))
        );
        let (status, body) = app
            .authorize(&i.uuid, json!({"grant_type": "password"}))
            .await;
        assert_eq!(
            (status, detail(&body)),
            (StatusCode::FORBIDDEN, "Invalid grant_type")
        );
        let (status, body) = app.authorize(&i.uuid, json!({"grant_type": 7})).await;
        assert_eq!(
            (status, detail(&body)),
            (StatusCode::FORBIDDEN, "Invalid grant_type")
        );
        let (status, body) = app
            .authorize(&i.uuid, json!({"grant_type": "authorization_code", "client_id": 1, "client_secret": [], "code": {}}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

        let send = |ct: &'static str, body: Vec<u8>| {
            let req = app.http.post(&url).header("content-type", ct).body(body);
            async move { split(req.send().await.unwrap()).await }
        };
        let (status, body) = send("application/json", b"{\"grant_type\": ".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(detail(&body).starts_with("Malformed JSON"), "{body}");
        let (status, body) = send("application/json", b"[1,2]".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(detail(&body).contains("object"), "{body}");
        let (status, body) = send("text/plain", b"{}".to_vec()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(detail(&body).contains("application/json"));
        let (status, body) = send("application/json", vec![b' '; 70 * 1024]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(detail(&body).contains("64 KiB"));
        let (status, _) = send("application/json; charset=utf-8", b"\xff\xfe".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // A chunked body with no length header over the limit.
        let stream = futures::stream::iter((0..80).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
        let res = app
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

        let (status, body) = split(
            app.http
                .get(app.url("/no/such/route"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, detail(&body)),
            (StatusCode::NOT_FOUND, "Not found")
        );
        let (status, _) = split(app.http.get(&url).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        // After all that, the code still works.
        app.tokens(&i).await;
    }

    async fn routes_work_without_the_trailing_slash() {
        let app = spawn_app().await;
        let i = app.installed("Acme CI", "acme").await;
        let res = app
            .http
            .post(app.url(&format!(
                "/api/0/sentry-app-installations/{}/authorizations",
                i.uuid
            )))
            .json(
                &json!({"client_id": i.client_id, "client_secret": i.client_secret,
                          "grant_type": "authorization_code", "code": i.code}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
}
