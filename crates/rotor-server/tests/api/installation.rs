//! Installation verification with the installation's bearer token, the
//! verifyInstall setting, restarts, and what the database file holds.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_database_holds_no_usable_credential() {
    let app = spawn_app().await;
    let i = app.installed("Acme", "acme").await;
    let unused = app.install_app(&i.app, "globex").await;
    let t = app.tokens(&i).await;
    let (_, t2) = app.refresh(&i, t["refreshToken"].as_str().unwrap()).await;
    let db = app.db_path();
    let r = app.stop().await;
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", db.display())) {
            bytes.extend(b);
        }
    }
    assert!(bytes.len() > 1000);
    let hay = String::from_utf8_lossy(&bytes);
    let secrets = [
        i.client_secret.as_str(),
        unused.code.as_str(),
        t["token"].as_str().unwrap(),
        t["refreshToken"].as_str().unwrap(),
        t2["token"].as_str().unwrap(),
        t2["refreshToken"].as_str().unwrap(),
    ];
    for s in secrets {
        // Neither the whole token nor its random body appears anywhere.
        assert!(
            !hay.contains(&s[7..40]),
            "plaintext secret found in the database"
        );
    }
    drop(r);
}

http_tests! {
    async fn verify_install_keeps_an_installation_pending_until_confirmed() {
        let app = spawn_app().await;
        let a = app
            .create_app("Strict", json!({"verifyInstall": true}))
            .await;
        let i = app.install_app(&a, "acme").await;
        let t = app.tokens(&i).await;
        let path = format!("/api/0/sentry-app-installations/{}/", i.uuid);
        assert_eq!(app.admin_get(&path).await.1["status"], "pending");
        let (status, body) = app.verify(&i.uuid, t["token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "installed");
        assert_eq!(body["uuid"], i.uuid.as_str());
        assert_eq!(body["app"]["slug"], "strict");
        assert_eq!(body["organization"]["slug"], "acme");
        assert_eq!(app.admin_get(&path).await.1["status"], "installed");
    }

    async fn without_verify_install_the_code_exchange_installs() {
        let app = spawn_app().await;
        let i = app.installed("Lenient", "acme").await;
        let path = format!("/api/0/sentry-app-installations/{}/", i.uuid);
        assert_eq!(app.admin_get(&path).await.1["status"], "pending");
        app.tokens(&i).await;
        assert_eq!(app.admin_get(&path).await.1["status"], "installed");
    }

    async fn only_a_live_token_of_that_installation_verifies_it() {
        let app = spawn_app().await;
        let i = app.installed("Acme", "acme").await;
        let j = app.install_app(&i.app, "globex").await;
        let t = app.tokens(&i).await;
        let tj = app.tokens(&j).await;
        let token = t["token"].as_str().unwrap();

        let url = app.url(&format!("/api/0/sentry-app-installations/{}/", i.uuid));
        let (status, _) = split(
            app.http
                .put(&url)
                .json(&json!({"status": "installed"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "no token");
        assert_eq!(
            app.verify(&i.uuid, "rtr_at_nonsense").await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.verify(&i.uuid, t["refreshToken"].as_str().unwrap())
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.verify(&i.uuid, tj["token"].as_str().unwrap()).await.0,
            StatusCode::FORBIDDEN
        );
        let (status, body) = split(
            app.http
                .put(&url)
                .bearer_auth(token)
                .json(&json!({"status": "pending"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = split(
            app.http
                .put(&url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        assert_eq!(app.verify(&i.uuid, token).await.0, StatusCode::OK);
        app.advance(Duration::hours(8));
        assert_eq!(
            app.verify(&i.uuid, token).await.0,
            StatusCode::UNAUTHORIZED,
            "expired"
        );
    }

    async fn everything_survives_a_restart() {
        let app = spawn_app().await;
        let i = app.installed("Acme", "acme").await;
        let spare = app.install_app(&i.app, "globex").await;
        let t = app.tokens(&i).await;
        let r = app.stop().await;

        let app = spawn_on(r).await;
        let (status, list) = app.admin_get("/api/0/sentry-apps/").await;
        assert_eq!(
            (status, list.as_array().unwrap().len()),
            (StatusCode::OK, 1)
        );
        let (status, t2) = app.refresh(&i, t["refreshToken"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::CREATED, "{t2}");
        assert_eq!(
            app.verify(&i.uuid, t2["token"].as_str().unwrap()).await.0,
            StatusCode::OK
        );
        app.tokens(&spare).await;
        let (_, events) = app.admin_get("/api/0/events/?type=token_exchanged").await;
        assert_eq!(events.as_array().unwrap().len(), 3);
    }
}
