//! Refresh that never locks a client out: grace replay, reuse detection under
//! both policies, lifetimes, the janitor, and revocation racing rotation.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use crate::common::*;
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap().to_owned()
}

async fn setup(app: &TestApp, settings: Value) -> (Installed, Value) {
    let a = app.create_app("Acme CI", settings).await;
    let i = app.install_app(&a, "acme").await;
    let t = app.tokens(&i).await;
    (i, t)
}

http_tests! {
    async fn a_replay_within_the_window_returns_the_identical_pair() {
        let app = spawn_app().await;
        let (i, t1) = setup(&app, json!({})).await;
        let (status, t2) = app.refresh(&i, &s(&t1, "refreshToken")).await;
        assert_eq!(status, StatusCode::CREATED);
        app.advance(Duration::seconds(59));
        let (status, replay) = app.refresh(&i, &s(&t1, "refreshToken")).await;
        assert_eq!(status, StatusCode::CREATED, "{replay}");
        assert_eq!(replay, t2, "byte-identical answer: same tokens, id, expiry");
        // Both answers are the same live pair.
        assert_eq!(
            app.verify(&i.uuid, &s(&t2, "token")).await.0,
            StatusCode::OK
        );
        let (_, ev) = app.admin_get("/api/0/events/?type=refresh_replayed").await;
        assert_eq!(ev.as_array().unwrap().len(), 1);
        assert_eq!(ev[0]["ip"], "127.0.0.1");
        // And the successor moves on normally.
        assert_eq!(
            app.refresh(&i, &s(&t2, "refreshToken")).await.0,
            StatusCode::CREATED
        );
    }

    async fn after_the_window_reuse_revokes_the_family() {
        let app = spawn_app().await;
        let (i, t1) = setup(&app, json!({})).await;
        let (_, t2) = app.refresh(&i, &s(&t1, "refreshToken")).await;
        app.advance(Duration::seconds(60));
        let (status, body) = app.refresh(&i, &s(&t1, "refreshToken")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["detail"], "Refresh token was already used");
        // The successor dies with the family.
        assert_eq!(
            app.verify(&i.uuid, &s(&t2, "token")).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, body) = app.refresh(&i, &s(&t2, "refreshToken")).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (
                StatusCode::UNAUTHORIZED,
                Some("Refresh token has been revoked")
            )
        );
        assert_eq!(
            app.introspect(&s(&t2, "token")).await,
            json!({"active": false})
        );
        let (_, ev) = app
            .admin_get(&format!(
                "/api/0/events/?installation={}&type=refresh_token_reused",
                i.uuid
            ))
            .await;
        assert_eq!(ev.as_array().unwrap().len(), 1);
        assert_eq!(ev[0]["ip"], "127.0.0.1");
    }

    async fn reuse_after_the_successor_was_used_is_theft_even_in_the_window() {
        let app = spawn_app().await;
        let (i, t1) = setup(&app, json!({})).await;
        let (_, t2) = app.refresh(&i, &s(&t1, "refreshToken")).await;
        let (_, t3) = app.refresh(&i, &s(&t2, "refreshToken")).await;
        let (status, _) = app.refresh(&i, &s(&t1, "refreshToken")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            app.verify(&i.uuid, &s(&t3, "token")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    async fn the_reject_policy_refuses_only_the_request() {
        let app = spawn_app().await;
        let (i, t1) = setup(&app, json!({"reusePolicy": "reject"})).await;
        let (_, t2) = app.refresh(&i, &s(&t1, "refreshToken")).await;
        app.advance(Duration::minutes(5));
        let (status, body) = app.refresh(&i, &s(&t1, "refreshToken")).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (
                StatusCode::UNAUTHORIZED,
                Some("Refresh token was already used")
            )
        );
        assert_eq!(
            app.verify(&i.uuid, &s(&t2, "token")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            app.refresh(&i, &s(&t2, "refreshToken")).await.0,
            StatusCode::CREATED
        );
        let (_, ev) = app
            .admin_get("/api/0/events/?type=refresh_token_reused")
            .await;
        assert_eq!(ev.as_array().unwrap().len(), 1);
    }

    async fn a_zero_window_turns_replay_off() {
        let app = spawn_app().await;
        let (i, t1) = setup(&app, json!({"refreshGraceSeconds": 0})).await;
        let (_, t2) = app.refresh(&i, &s(&t1, "refreshToken")).await;
        let (status, _) = app.refresh(&i, &s(&t1, "refreshToken")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            app.verify(&i.uuid, &s(&t2, "token")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    async fn a_hundred_parallel_refreshes_in_the_window_all_get_the_same_pair() {
        let app = Arc::new(spawn_app().await);
        let (i, t1) = setup(&app, json!({})).await;
        let i = Arc::new(i);
        let rt = s(&t1, "refreshToken");
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (app, i, rt) = (app.clone(), i.clone(), rt.clone());
                tokio::spawn(async move { app.refresh(&i, &rt).await })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            let (status, body) = t.await.unwrap();
            assert_eq!(status, StatusCode::CREATED, "{body}");
            answers.push(body);
        }
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "every caller got the identical pair"
        );
        let (_, ev) = app
            .admin_get(&format!(
                "/api/0/events/?installation={}&type=token_exchanged",
                i.uuid
            ))
            .await;
        assert_eq!(
            ev.as_array().unwrap().len(),
            2,
            "one authorization and exactly one refresh"
        );
        assert_eq!(
            app.verify(&i.uuid, &s(&answers[0], "token")).await.0,
            StatusCode::OK
        );
    }

    async fn refresh_tokens_expire_when_idle_and_families_end() {
        let app = spawn_app().await;
        let (i, t1) = setup(&app, json!({})).await;
        // Used within 30 days: fine, for as long as the family lives.
        let mut current = t1;
        let mut days = 0;
        loop {
            app.advance(Duration::days(29));
            days += 29;
            let (status, body) = app.refresh(&i, &s(&current, "refreshToken")).await;
            if days < 365 {
                assert_eq!(status, StatusCode::CREATED, "day {days}: {body}");
                current = body;
            } else {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "day {days}");
                assert_eq!(body["detail"], "Refresh token has expired");
                break;
            }
        }
        // Idle for 30 days: expired.
        let j = app.install_app(&i.app, "globex").await;
        let t = app.tokens(&j).await;
        app.advance(Duration::days(30));
        let (status, body) = app.refresh(&j, &s(&t, "refreshToken")).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("Refresh token has expired"))
        );
    }

    async fn the_janitor_deletes_in_bounded_batches_and_keeps_what_reuse_detection_needs() {
        let app = spawn_app().await;
        let a = app.create_app("Acme", json!({})).await;
        for n in 0..5 {
            let i = app.install_app(&a, &format!("idle-{n}")).await;
            app.tokens(&i).await; // a pair that will expire from idleness
        }
        for n in 0..2 {
            app.install_app(&a, &format!("unused-{n}")).await; // a code never exchanged
        }
        app.advance(Duration::days(31));
        let i = app.install_app(&a, "fresh").await;
        let t1 = app.tokens(&i).await;
        let (_, t2) = app.refresh(&i, &s(&t1, "refreshToken")).await;

        let first = app.service.purge(2, 1).await.unwrap();
        assert_eq!(
            (first.tokens, first.grants),
            (2, 2),
            "one batch of two: {first:?}"
        );
        let rest = app.service.purge(2, 100).await.unwrap();
        assert_eq!(first.tokens + rest.tokens, 5, "the five idle-expired pairs");
        assert_eq!(
            first.grants + rest.grants,
            2,
            "the two codes past their 10 minutes"
        );
        assert_eq!(
            first.families + rest.families,
            0,
            "a family is kept until its absolute end"
        );
        assert_eq!(
            app.service.purge(2, 100).await.unwrap().total(),
            0,
            "nothing else is expired"
        );

        // The retired first pair of the fresh chain was kept: reuse is still detected.
        app.advance(Duration::minutes(2));
        let (status, body) = app.refresh(&i, &s(&t1, "refreshToken")).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (
                StatusCode::UNAUTHORIZED,
                Some("Refresh token was already used")
            )
        );
        assert_eq!(app.introspect(&s(&t2, "token")).await["active"], false);

        // A year on every family has ended: the five idle ones and the
        // fresh one go, with the fresh chain's two pairs.
        app.advance(Duration::days(366));
        let later = app.service.purge(2, 100).await.unwrap();
        assert_eq!((later.tokens, later.families), (2, 6), "{later:?}");
    }

    async fn revocation_is_linearizable_with_rotation() {
        let app = Arc::new(spawn_app().await);
        let a = app.create_app("Acme", json!({})).await;
        for round in 0..15 {
            let i = Arc::new(app.install_app(&a, &format!("org-{round}")).await);
            let t = app.tokens(&i).await;
            let rt = s(&t, "refreshToken");
            let refreshers: Vec<_> = (0..4)
                .map(|_| {
                    let (app, i, rt) = (app.clone(), i.clone(), rt.clone());
                    tokio::spawn(async move { app.refresh(&i, &rt).await })
                })
                .collect();
            let (status, _, _) = app
                .form(
                    "/oauth/revoke",
                    Some((&i.client_id, &i.client_secret)),
                    &[("token", &rt)],
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            // Revocation answered: from now on nothing of the family works, even
            // a successor handed out by a refresh that raced it.
            for r in refreshers {
                let (status, body) = r.await.unwrap();
                if status == StatusCode::CREATED {
                    assert_eq!(
                        app.introspect(&s(&body, "token")).await["active"],
                        false,
                        "round {round}"
                    );
                    assert_eq!(
                        app.verify(&i.uuid, &s(&body, "token")).await.0,
                        StatusCode::UNAUTHORIZED
                    );
                }
            }
            assert_eq!(app.introspect(&s(&t, "token")).await["active"], false);
        }
    }
}
