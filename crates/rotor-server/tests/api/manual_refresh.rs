//! Manual refresh on the Sentry route: `grant_type: client_secret_jwt` with a
//! Bearer HS256 JWT signed with the client secret.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn manual(app: &TestApp, uuid: &str, jwt: Option<&str>) -> (StatusCode, Value) {
    let mut req = app
        .http
        .post(app.url(&format!(
            "/api/0/sentry-app-installations/{uuid}/authorizations/"
        )))
        .json(&json!({"grant_type": "client_secret_jwt"}));
    if let Some(j) = jwt {
        req = req.bearer_auth(j);
    }
    split(req.send().await.unwrap()).await
}

fn claims(app: &TestApp, i: &Installed, jti: &str) -> Value {
    json!({"iss": i.client_id, "exp": app.epoch() + 240, "iat": app.epoch(), "jti": jti})
}

http_tests! {
    async fn a_client_secret_jwt_replaces_the_installations_tokens() {
        let app = spawn_app().await;
        let i = app.installed("Acme", "acme").await;
        let old = app.tokens(&i).await;
        let jwt = hs256(&i.client_secret, &claims(&app, &i, "one"));
        let (status, t) = manual(&app, &i.uuid, Some(&jwt)).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        assert!(t["token"].as_str().unwrap().starts_with("rtr_at_"));
        assert_eq!(t["scopes"], json!(["event:write", "project:read"]));
        assert_eq!(
            app.verify(&i.uuid, t["token"].as_str().unwrap()).await.0,
            StatusCode::OK
        );
        // The old pair is retired.
        assert_eq!(
            app.verify(&i.uuid, old["token"].as_str().unwrap()).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&i, old["refreshToken"].as_str().unwrap())
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        // The new refresh token works.
        assert_eq!(
            app.refresh(&i, t["refreshToken"].as_str().unwrap()).await.0,
            StatusCode::CREATED
        );
        let (_, ev) = app
            .admin_get(&format!(
                "/api/0/events/?installation={}&type=token_exchanged&limit=2",
                i.uuid
            ))
            .await;
        assert_eq!(ev[1]["exchangeType"], "manual_refresh");
    }

    async fn a_jti_is_used_once_even_across_restarts() {
        let app = spawn_app().await;
        let i = app.installed("Acme", "acme").await;
        let jwt = hs256(&i.client_secret, &claims(&app, &i, "once"));
        assert_eq!(
            manual(&app, &i.uuid, Some(&jwt)).await.0,
            StatusCode::CREATED
        );
        let (status, body) = manual(&app, &i.uuid, Some(&jwt)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body["detail"].as_str().unwrap().contains("jti"), "{body}");
        let r = app.stop().await;
        let app = spawn_on(r).await;
        assert_eq!(
            manual(&app, &i.uuid, Some(&jwt)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    async fn bad_jwts_are_refused_and_change_nothing() {
        let app = spawn_app().await;
        let i = app.installed("Acme", "acme").await;
        let other = app.installed("Other", "acme").await;
        let old = app.tokens(&i).await;
        let now = app.epoch();
        let hs512 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
            &claims(&app, &i, "a"),
            &jsonwebtoken::EncodingKey::from_secret(i.client_secret.as_bytes()),
        )
        .unwrap();
        let cases: Vec<(&str, Option<String>)> = vec![
            ("no bearer", None),
            ("garbage", Some("not.a.jwt".into())),
            (
                "wrong secret",
                Some(hs256("rtr_cs_wrong", &claims(&app, &i, "b"))),
            ),
            ("HS512", Some(hs512)),
            (
                "expired",
                Some(hs256(
                    &i.client_secret,
                    &json!({"iss": i.client_id, "exp": now - 60, "jti": "c"}),
                )),
            ),
            (
                "too far ahead",
                Some(hs256(
                    &i.client_secret,
                    &json!({"iss": i.client_id, "exp": now + 3600, "jti": "d"}),
                )),
            ),
            (
                "no exp",
                Some(hs256(
                    &i.client_secret,
                    &json!({"iss": i.client_id, "jti": "e"}),
                )),
            ),
            (
                "no jti",
                Some(hs256(
                    &i.client_secret,
                    &json!({"iss": i.client_id, "exp": now + 60}),
                )),
            ),
            (
                "unknown iss",
                Some(hs256(
                    &i.client_secret,
                    &json!({"iss": "nobody", "exp": now + 60, "jti": "f"}),
                )),
            ),
            (
                "other app's installation",
                Some(hs256(&other.client_secret, &claims(&app, &other, "g"))),
            ),
            (
                "alg none",
                Some(format!("eyJhbGciOiJub25lIn0.{}.", "eyJpc3MiOiJ4In0")),
            ),
        ];
        for (what, jwt) in cases {
            let (status, body) = manual(&app, &i.uuid, jwt.as_deref()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
            assert!(body["detail"].is_string(), "{what}");
        }
        assert_eq!(
            app.verify(&i.uuid, old["token"].as_str().unwrap()).await.0,
            StatusCode::OK
        );
    }
}
