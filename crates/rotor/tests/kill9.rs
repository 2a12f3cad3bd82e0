//! SIGKILL under refresh load loses no acknowledged token and locks no client
//! out: eight clients refresh their own token chains as fast as they can;
//! Rotor is killed mid-stream, started again on the same database, and every
//! chain's last acknowledged refresh token must still work (or, if a refresh
//! of it committed without its answer arriving, replay that successor within
//! the grace window) and every acknowledged access token must introspect as
//! what it was. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::{fresh_schema_url, postgres, start, Serve};

const ADMIN: &str = "kill9-admin-token-0123456789abcdef0123";
const CHAINS: usize = 8;

async fn post(
    http: &reqwest::Client,
    url: String,
    body: Value,
    bearer: Option<&str>,
) -> Option<(u16, Value)> {
    let mut req = http.post(url).json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let res = req.send().await.ok()?;
    let status = res.status().as_u16();
    Some((status, res.json().await.ok()?))
}

/// One chain: its installation route, credentials, and the last pair the
/// server acknowledged (with every acknowledged access token).
#[derive(Clone)]
struct Chain {
    url: String,
    client_id: String,
    secret: String,
    last_refresh: String,
    acknowledged: Vec<String>,
}

async fn kill9_under_refresh_load(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node = start(Serve::new(database_url, dir.path(), ADMIN));
    let (_, app) = post(
        &http,
        format!("{}/api/0/sentry-apps/", node.base),
        json!({"name": "Kill", "scopes": ["project:read"]}),
        Some(ADMIN),
    )
    .await
    .unwrap();
    let mut chains = Vec::new();
    for n in 0..CHAINS {
        let (_, inst) = post(
            &http,
            format!(
                "{}/api/0/organizations/org-{n}/sentry-app-installations/",
                node.base
            ),
            json!({"slug": "kill"}),
            Some(ADMIN),
        )
        .await
        .unwrap();
        let path = format!(
            "/api/0/sentry-app-installations/{}/authorizations/",
            inst["uuid"].as_str().unwrap()
        );
        let (status, t) = post(&http, format!("{}{path}", node.base), json!({"grant_type": "authorization_code",
            "client_id": app["clientId"], "client_secret": app["clientSecret"], "code": inst["code"]}), None).await.unwrap();
        assert_eq!(status, 201);
        chains.push(Arc::new(Mutex::new(Chain {
            url: path,
            client_id: app["clientId"].as_str().unwrap().to_owned(),
            secret: app["clientSecret"].as_str().unwrap().to_owned(),
            last_refresh: t["refreshToken"].as_str().unwrap().to_owned(),
            acknowledged: vec![t["token"].as_str().unwrap().to_owned()],
        })));
    }

    // Refresh every chain in a loop until the server dies under it.
    let base = node.base.clone();
    let mut workers = Vec::new();
    for c in &chains {
        let (c, base, http) = (Arc::clone(c), base.clone(), http.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let (url, body) = {
                    let c = c.lock().unwrap();
                    (
                        format!("{base}{}", c.url),
                        json!({"grant_type": "refresh_token", "client_id": c.client_id,
                        "client_secret": c.secret, "refresh_token": c.last_refresh}),
                    )
                };
                match post(&http, url, body, None).await {
                    Some((201, t)) => {
                        let mut c = c.lock().unwrap();
                        c.last_refresh = t["refreshToken"].as_str().unwrap().to_owned();
                        c.acknowledged.push(t["token"].as_str().unwrap().to_owned());
                    }
                    Some((status, body)) => {
                        panic!("refresh refused before the kill: {status} {body}")
                    }
                    None => return, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(node); // SIGKILL
    for w in workers {
        w.await.unwrap();
    }
    let refreshes: usize = chains
        .iter()
        .map(|c| c.lock().unwrap().acknowledged.len() - 1)
        .sum();
    assert!(
        refreshes > 50,
        "too little load before the kill: {refreshes} refreshes"
    );

    let node = start(Serve::new(database_url, dir.path(), ADMIN));
    for c in &chains {
        let c = c.lock().unwrap().clone();
        // The last acknowledged refresh token still trades (or replays the
        // successor a lost answer had committed).
        let (status, t) = post(
            &http,
            format!("{}{}", node.base, c.url),
            json!({"grant_type": "refresh_token",
            "client_id": c.client_id, "client_secret": c.secret, "refresh_token": c.last_refresh}),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 201, "a client is locked out after the kill: {t}");
        // Every acknowledged access token is known: retired ones inactive,
        // and the last acknowledged one was active until that refresh.
        for (i, token) in c.acknowledged.iter().enumerate() {
            let res = http
                .post(format!("{}/oauth/introspect", node.base))
                .bearer_auth(ADMIN)
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            let v: Value = res.json().await.unwrap();
            assert_eq!(
                v["active"], false,
                "token {i} of a refreshed chain must be retired: {v}"
            );
        }
        let res = http
            .post(format!("{}/oauth/introspect", node.base))
            .bearer_auth(ADMIN)
            .form(&[("token", t["token"].as_str().unwrap())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.json::<Value>().await.unwrap()["active"], true);
    }
    eprintln!("{refreshes} refreshes acknowledged before SIGKILL; every chain intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill9_under_refresh_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    kill9_under_refresh_load(&format!("sqlite://{}/k.db", dir.path().display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill9_under_refresh_load_loses_nothing() {
    let pg = postgres();
    kill9_under_refresh_load(&fresh_schema_url(&pg).await).await;
}
