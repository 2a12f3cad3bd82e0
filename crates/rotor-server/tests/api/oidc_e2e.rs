//! End to end against a real third-party OAuth server: node-oidc-provider
//! (`tests/oidc/server.js`, installed by `scripts/test.sh` with `npm ci`).
//! Rotor's `oauth2` kind refreshes a real refresh token; the access token it
//! hands out is accepted by that server's introspection, and the rotated
//! refresh token Rotor stored is the one that works next.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc")
}

async fn introspect(base: &str, creds: &Value, token: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/token/introspection"))
        .basic_auth(
            creds["clientId"].as_str().unwrap(),
            creds["clientSecret"].as_str(),
        )
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn rotor_refreshes_a_real_refresh_token_at_node_oidc_provider() {
    let dir = oidc_dir();
    // Never a silent pass: a bare `cargo nextest run` leaves this case out
    // (reported as skipped, .config/nextest.toml); run, it needs the server.
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "tests/oidc/node_modules is missing: scripts/test.sh runs npm ci (needs Node.js)"
    );
    let mut child = Command::new("node")
        .arg(dir.join("server.js"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node is on PATH");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    // Keep reading: a closed pipe would end the server at its next log line.
    std::thread::spawn(move || for _ in lines {});
    let _node = Node(child);
    let creds: Value = serde_json::from_str(&line).unwrap();
    let base = format!("http://127.0.0.1:{}", creds["port"]);

    let app = spawn_app().await;
    let (status, p) = app
        .admin_post(
            "/api/0/upstream/providers/",
            json!({"key": "oidc", "kind": "oauth2", "config": {
                "tokenUrl": format!("{base}/token"), "clientId": creds["clientId"],
                "clientSecret": creds["clientSecret"], "authMethod": "client_secret_basic"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let (status, ident) = app
        .admin_post(
            "/api/0/upstream/identities/",
            json!({"provider": "oidc", "externalId": "user-1", "scopes": ["openid", "offline_access"],
                   "refreshToken": creds["refreshToken"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ident}");
    let id = ident["id"].as_str().unwrap();

    let (status, t1) = app
        .admin_post(
            &format!("/api/0/upstream/identities/{id}/token/"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{t1}");
    let at1 = t1["accessToken"].as_str().unwrap();
    let info = introspect(&base, &creds, at1).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["sub"], "user-1");

    // The provider rotated the refresh token; the stored new one must work.
    let (status, t2) = app
        .admin_post(
            &format!("/api/0/upstream/identities/{id}/refresh/"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{t2}");
    let at2 = t2["accessToken"].as_str().unwrap();
    assert_ne!(at1, at2);
    assert_eq!(introspect(&base, &creds, at2).await["active"], true);
    let (_, shown) = app
        .admin_get(&format!("/api/0/upstream/identities/{id}/"))
        .await;
    assert_eq!(
        (shown["status"].as_str(), shown["failureCount"].as_i64()),
        (Some("active"), Some(0))
    );
}
