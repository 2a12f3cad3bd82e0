//! Hardening: every error is JSON (also refusals before a handler runs),
//! readiness fails while the database refuses writes and recovers, and the
//! janitor bounds the events table.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};

http_tests! {
    async fn refusals_before_a_handler_are_json_too() {
        let app = spawn_app().await;
        for path in [
            "/api/0/sentry-app-installations/%FF%FE/",
            "/api/0/sentry-apps/%C3%28/",
            "/api/0/upstream/identities/%80/token/",
        ] {
            let res = app.http.get(app.url(path)).bearer_auth(ADMIN).send().await.unwrap();
            let status = res.status();
            assert!(status.is_client_error(), "{path}: {status}");
            let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(ct.starts_with("application/json"), "{path}: {status} {ct}");
            let body: Value = res.json().await.unwrap();
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{path}: {body}");
        }
        // An oversized request target and oversized headers, refused before
        // routing, are JSON too.
        let long = format!("/api/0/sentry-apps/{}/", "a".repeat(9000));
        let res = app.http.get(app.url(&long)).bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::URI_TOO_LONG);
        assert!(res.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("8192"));
        let res = app.http.get(app.url("/healthz")).header("x-big", "b".repeat(20_000)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(res.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("16384"));
        // A malformed query on an operator route.
        let res = app.http.get(app.url("/api/0/events/?limit=1&limit=2")).bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    }

    async fn the_janitor_keeps_events_for_their_retention_only() {
        let app = spawn_app().await;
        let i = app.installed("Aging", "acme").await;
        app.tokens(&i).await;
        let count = |v: &Value| v.as_array().unwrap().len();
        let (_, before) = app.admin_get(&format!("/api/0/events/?installation={}", i.uuid)).await;
        assert!(count(&before) >= 3, "{before}");
        app.advance(Duration::days(89));
        assert_eq!(app.service.purge(1000, 10).await.unwrap().events, 0);
        app.advance(Duration::days(2));
        let purged = app.service.purge(2, 10).await.unwrap();
        assert_eq!(purged.events as usize, count(&before), "in batches of 2, all of them");
        let (_, after) = app.admin_get(&format!("/api/0/events/?installation={}", i.uuid)).await;
        assert_eq!(count(&after), 0);
    }

    async fn failed_client_authentication_is_throttled_per_client_and_never_slows_others() {
        let app = spawn_app().await;
        let a = app.installed("Target", "acme").await;
        let b = app.installed("Bystander", "acme").await;
        let wrong = |i: &Installed| json!({"client_id": i.client_id, "client_secret": "rtr_cs_wrong",
            "grant_type": "authorization_code", "code": i.code});
        for n in 0..10 {
            let (status, _) = app.authorize(&a.uuid, wrong(&a)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {n}");
        }
        // Over the limit: refused before the secret is even checked, the right one too.
        let res = app.http.post(app.url(&format!("/api/0/sentry-app-installations/{}/authorizations/", a.uuid)))
            .json(&json!({"client_id": a.client_id, "client_secret": a.client_secret,
                "grant_type": "authorization_code", "code": a.code}))
            .send().await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let body: Value = res.json().await.unwrap();
        assert!(body["detail"].as_str().unwrap().contains("Too many"), "{body}");
        // The same client at the RFC 6749 endpoint: 429 in its shape.
        let (status, headers, body) = app.form("/oauth/token", Some((&a.client_id, "rtr_cs_wrong")),
            &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(headers.contains_key("retry-after"));
        // Another client from the same address is not slowed.
        assert_eq!(app.exchange(&b).await.0, StatusCode::CREATED);
        // After the window the right secret works at once, and nothing was spent meanwhile.
        app.advance(Duration::seconds(61));
        assert_eq!(app.exchange(&a).await.0, StatusCode::CREATED);
    }

    async fn failed_admin_authentication_is_throttled_per_ip() {
        let app = spawn_with(fresh().await, |c| c.throttle.per_ip = 5).await;
        for _ in 0..5 {
            let res = app.http.get(app.url("/api/0/sentry-apps/")).bearer_auth("wrong").send().await.unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        let res = app.http.get(app.url("/api/0/sentry-apps/")).bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(res.headers().contains_key("retry-after"));
        app.advance(Duration::seconds(61));
        let (status, _) = app.admin_get("/api/0/sentry-apps/").await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn every_answer_carries_a_request_id() {
        let app = spawn_app().await;
        let res = app.http.get(app.url("/healthz")).header("x-request-id", "trace-me-42").send().await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "trace-me-42");
        // A new one when the caller sent none, also on errors.
        let mut seen = std::collections::HashSet::new();
        for path in ["/healthz", "/nope", "/api/0/sentry-apps/"] {
            let res = app.http.get(app.url(path)).send().await.unwrap();
            let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path}: {id}");
            assert!(seen.insert(id));
        }
    }

    async fn retention_zero_keeps_events_forever() {
        let app = spawn_with(fresh().await, |c| c.events_retention = None).await;
        let i = app.installed("Forever", "acme").await;
        app.tokens(&i).await;
        app.advance(Duration::days(3650));
        assert_eq!(app.service.purge(1000, 10).await.unwrap().events, 0);
        let (_, ev) = app.admin_get(&format!("/api/0/events/?installation={}", i.uuid)).await;
        assert!(!ev.as_array().unwrap().is_empty());
    }
}

/// While another process holds SQLite's write lock, nothing can be written:
/// `/readyz` says 503 (within its 2-second deadline), and 200 again as soon
/// as the lock is gone. `/healthz` stays 200 throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_writes_fail_and_recovers() {
    let app = spawn_app().await;
    let ready = |app: &TestApp| {
        let req = app.http.get(app.url("/readyz")).send();
        async move { req.await.unwrap().status() }
    };
    assert_eq!(ready(&app).await, StatusCode::OK);
    let path = app.db_path();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = hold_write_lock(&path);
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        drop(conn);
    });
    locked_rx.recv().unwrap();
    let started = std::time::Instant::now();
    assert_eq!(ready(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    let (status, body) = split(app.http.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    // The writer finishes the probe it was waiting on, then answers at once.
    let mut ok = false;
    for _ in 0..100 {
        if ready(&app).await == StatusCode::OK {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "/readyz did not recover");
}

/// Opens the database from another process (Python's sqlite3) and holds an
/// exclusive write transaction until the holder is dropped.
fn hold_write_lock(path: &std::path::Path) -> LockHolder {
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], isolation_level=None); \
             c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()",
        ])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    LockHolder(child)
}

/// The process holding the lock; ends (releasing it) when dropped.
struct LockHolder(std::process::Child);

impl Drop for LockHolder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}
