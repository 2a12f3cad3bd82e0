//! Webhooks from the durable outbox: Sentry's installation webhooks signed
//! with the app's client secret, retries with backoff, a hanging receiver,
//! the address policy (SSRF), the delivery log and redelivery, and the
//! platform's identity webhooks. Every signature is checked by the test
//! receiver's own HMAC.
#![allow(clippy::unwrap_used)]

use crate::common::receiver::{eventually, Receiver, Reply};
use crate::common::{spawn_app, spawn_with, TestApp};
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The app's delivery log, optionally by status.
async fn log(app: &TestApp, slug: &str, status: Option<&str>) -> Vec<Value> {
    let q = status.map(|s| format!("?status={s}")).unwrap_or_default();
    let (code, body) = app
        .admin_get(&format!("/api/0/sentry-apps/{slug}/webhook-requests/{q}"))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

/// Waits until the app's newest delivery satisfies `ok`.
async fn newest_until(app: &TestApp, slug: &str, ok: impl Fn(&Value) -> bool) -> Value {
    eventually("the delivery log", || async {
        log(app, slug, None)
            .await
            .into_iter()
            .next()
            .filter(|d| ok(d))
    })
    .await
}

async fn app_with_hook(app: &TestApp, name: &str, url: &str) -> Value {
    app.create_app(name, json!({ "webhookUrl": url })).await
}

http_tests! {
    async fn installation_webhooks_are_sentry_shaped_and_signed_with_the_client_secret() {
        let app = spawn_app().await;
        let rx = Receiver::start(&[]).await;
        let a = app_with_hook(&app, "Hooked", &rx.url).await;
        let secret = a["clientSecret"].as_str().unwrap().to_owned();
        let (status, inst) = app
            .admin_post(
                "/api/0/organizations/acme/sentry-app-installations/",
                json!({"slug": "hooked", "actor": {"id": 42, "name": "Jane Doe"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{inst}");
        let uuid = inst["uuid"].as_str().unwrap().to_owned();

        let got = rx.wait_for(1).await;
        let created = &got[0];
        assert!(created.signed_with(&secret), "signature does not verify");
        assert!(!created.signed_with("rtr_cs_another"), "a wrong key must not verify");
        assert_eq!(created.header("content-type"), "application/json");
        assert_eq!(created.header("sentry-hook-resource"), "installation");
        let ts: i64 = created.header("sentry-hook-timestamp").parse().unwrap();
        assert!((ts - app.epoch()).abs() <= 5, "timestamp {ts} is not this attempt's time");
        let request_id = created.header("request-id").to_owned();
        assert!(uuid::Uuid::parse_str(&request_id).is_ok(), "{request_id}");
        assert_eq!(
            created.json(),
            json!({
                "action": "created",
                "installation": {"uuid": uuid},
                "data": {"installation": {
                    "uuid": uuid, "status": "pending", "code": inst["code"],
                    "app": {"uuid": a["uuid"], "slug": "hooked"},
                    "organization": {"slug": "acme"},
                }},
                "actor": {"type": "user", "id": "42", "name": "Jane Doe"},
            })
        );

        // The code the webhook carried is the one the app exchanges.
        let (status, _) = app
            .authorize(&uuid, json!({"client_id": a["clientId"], "client_secret": secret,
                "grant_type": "authorization_code", "code": created.json()["data"]["installation"]["code"]}))
            .await;
        assert_eq!(status, StatusCode::CREATED);

        assert_eq!(app.admin_delete(&format!("/api/0/sentry-app-installations/{uuid}/")).await, StatusCode::NO_CONTENT);
        let got = rx.wait_for(2).await;
        let deleted = &got[1];
        assert!(deleted.signed_with(&secret));
        let body = deleted.json();
        assert_eq!(body["action"], "deleted");
        assert_eq!(body["data"]["installation"]["uuid"], uuid.as_str());
        assert!(body["data"]["installation"].get("code").is_none(), "{body}");
        assert_eq!(body["actor"]["type"], "application");
        assert_ne!(deleted.header("request-id"), request_id);

        let delivered = newest_until(&app, "hooked", |d| d["status"] == "delivered").await;
        assert_eq!(delivered["eventType"], "installation.deleted");
        let all = log(&app, "hooked", Some("delivered")).await;
        assert_eq!(all.len(), 2);
        assert_eq!(all[1]["id"], request_id.as_str());
        assert_eq!(all[1]["eventType"], "installation.created");
        assert_eq!(all[1]["webhookUrl"], rx.url.as_str());
        assert_eq!(all[1]["attempts"], 1);
        assert_eq!(all[1]["responseCode"], 200);
        assert_eq!(all[1]["organization"]["slug"], "acme");
        assert_eq!(all[1]["installation"]["uuid"], uuid.as_str());
        let (_, ev) = app.admin_get(&format!("/api/0/events/?installation={uuid}&type=webhook_delivered")).await;
        assert_eq!(ev.as_array().unwrap().len(), 2, "{ev}");
        assert!(log(&app, "hooked", Some("pending")).await.is_empty());
    }

    async fn a_failing_receiver_is_retried_with_backoff_under_one_request_id() {
        let app = spawn_app().await;
        let rx = Receiver::start(&[Reply::Status(500), Reply::Status(302)]).await;
        app_with_hook(&app, "Flaky", &rx.url).await;
        app.admin_post("/api/0/organizations/acme/sentry-app-installations/", json!({"slug": "flaky"})).await;

        rx.wait_for(1).await;
        let first = newest_until(&app, "flaky", |d| d["attempts"] == 1).await;
        assert_eq!(first["status"], "pending");
        assert_eq!(first["responseCode"], 500);
        // First retry within about 10 s (5 to 10 with jitter), never at once.
        let next = chrono::DateTime::parse_from_rfc3339(first["nextAttemptAt"].as_str().unwrap()).unwrap();
        let wait = next.timestamp() - app.epoch();
        assert!((4..=10).contains(&wait), "first retry in {wait} s");
        // Nothing is sent again before it is due.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(rx.received().len(), 1);

        app.advance(Duration::seconds(11));
        rx.wait_for(2).await;
        let second = newest_until(&app, "flaky", |d| d["attempts"] == 2).await;
        assert_eq!(second["responseCode"], 302, "a redirect is not followed: {second}");
        let next = chrono::DateTime::parse_from_rfc3339(second["nextAttemptAt"].as_str().unwrap()).unwrap();
        let wait = next.timestamp() - app.epoch();
        assert!((9..=20).contains(&wait), "second retry in {wait} s (doubled)");

        app.advance(Duration::seconds(21));
        let got = rx.wait_for(3).await;
        let done = newest_until(&app, "flaky", |d| d["status"] == "delivered").await;
        assert_eq!(done["attempts"], 3);
        let ids: Vec<&str> = got.iter().map(|r| r.header("request-id")).collect();
        assert!(ids.iter().all(|i| *i == ids[0]), "one Request-ID for every retry: {ids:?}");
    }

    async fn a_delivery_is_given_up_after_the_retry_window() {
        let app = spawn_app().await;
        let rx = Receiver::start(&[Reply::Status(503); 64]).await;
        app_with_hook(&app, "Dead", &rx.url).await;
        let (_, inst) = app.admin_post("/api/0/organizations/acme/sentry-app-installations/", json!({"slug": "dead"})).await;
        let mut n = 0;
        loop {
            n += 1;
            rx.wait_for(n).await;
            let d = newest_until(&app, "dead", |d| d["attempts"] == n).await;
            if d["status"] == "failed" {
                assert!(d["error"].as_str().unwrap().contains("gave up"), "{d}");
                break;
            }
            assert!(n < 40, "never gave up");
            app.advance(Duration::hours(1) + Duration::seconds(1));
        }
        // 24 hours at most an hour apart: a few tens of attempts.
        assert!((20..40).contains(&n), "{n} attempts");
        let uuid = inst["uuid"].as_str().unwrap();
        let (_, ev) = app.admin_get(&format!("/api/0/events/?installation={uuid}&type=webhook_failed")).await;
        assert_eq!(ev.as_array().unwrap().len(), 1, "{ev}");
    }

    async fn a_hanging_receiver_times_out_and_holds_up_no_other_app() {
        // Six slots on this node: without the per-app cap the slow app's
        // deliveries would take them all.
        let app = spawn_with(crate::common::fresh().await, |c| c.webhooks.concurrency = 6).await;
        let slow = Receiver::start(&[Reply::Hang; 16]).await;
        let fine = Receiver::start(&[]).await;
        let s = app_with_hook(&app, "Slow", &slow.url).await;
        app_with_hook(&app, "Fine", &fine.url).await;
        for org in ["o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"] {
            app.install_app(&s, org).await;
        }
        slow.wait_for(4).await;
        let started = std::time::Instant::now();
        app.admin_post("/api/0/organizations/o1/sentry-app-installations/", json!({"slug": "fine"})).await;
        fine.wait_for(1).await;
        // Hanging attempts last 2 s (the tests' timeout); waiting behind them would take that.
        assert!(started.elapsed() < std::time::Duration::from_millis(1500),
            "the other app waited {:?} behind a hanging receiver", started.elapsed());
        // The hanging attempts end at the timeout (2 s in tests) and stay pending.
        let d = newest_until(&app, "slow", |d| d["attempts"] == 1).await;
        assert_eq!(d["status"], "pending");
        assert!(d["error"].as_str().unwrap().contains("no answer within") ||
                d["error"].as_str().unwrap().contains("timed out"), "{d}");
        assert_eq!(d["responseCode"], Value::Null);
    }

    async fn internal_addresses_are_refused_after_dns_and_not_retried() {
        // This server keeps the default policy: no internal network is open.
        let app = spawn_with(
            crate::common::fresh().await,
            |c| c.webhooks.policy = rotor_server::webhooks::AddressPolicy::default(),
        )
        .await;
        let rx = Receiver::start(&[]).await;
        let targets = [
            ("Literal", rx.url.clone(), "loopback"),
            ("By Name", format!("http://localhost:{}/hook", rx.port), "loopback"),
            ("Metadata", "http://169.254.169.254/latest/meta-data/".to_owned(), "link-local"),
            ("Six", format!("http://[::1]:{}/hook", rx.port), "loopback"),
            ("Mapped", format!("http://[::ffff:127.0.0.1]:{}/hook", rx.port), "loopback"),
            ("Private", "http://10.0.0.1/hook".to_owned(), "private"),
        ];
        for (name, url, kind) in &targets {
            let a = app_with_hook(&app, name, url).await;
            app.install_app(&a, "acme").await;
            let slug = a["slug"].as_str().unwrap();
            let d = newest_until(&app, slug, |d| d["status"] != "pending").await;
            assert_eq!(d["status"], "failed", "{name}: {d}");
            assert_eq!(d["attempts"], 1, "refusals are not retried: {d}");
            assert!(d["error"].as_str().unwrap().contains(kind), "{name}: {d}");
        }
        assert!(rx.received().is_empty(), "a refused delivery reached the receiver");
        let (_, ev) = app.admin_get("/api/0/events/?type=webhook_failed").await;
        assert_eq!(ev.as_array().unwrap().len(), targets.len());
    }

    async fn redelivery_sends_again_with_the_same_request_id() {
        let app = spawn_app().await;
        let rx = Receiver::start(&[]).await;
        app_with_hook(&app, "Again", &rx.url).await;
        app.admin_post("/api/0/organizations/acme/sentry-app-installations/", json!({"slug": "again"})).await;
        let d = newest_until(&app, "again", |d| d["status"] == "delivered").await;
        let id = d["id"].as_str().unwrap();
        let (status, body) = app
            .admin_post(&format!("/api/0/sentry-apps/again/webhook-requests/{id}/redeliver/"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let got = rx.wait_for(2).await;
        assert_eq!(got[0].header("request-id"), got[1].header("request-id"));
        assert_eq!(got[0].body, got[1].body);
        newest_until(&app, "again", |d| d["attempts"] == 2 && d["status"] == "delivered").await;

        let unknown = uuid::Uuid::new_v4();
        for path in [
            format!("/api/0/sentry-apps/again/webhook-requests/{unknown}/redeliver/"),
            "/api/0/sentry-apps/again/webhook-requests/not-a-uuid/redeliver/".to_owned(),
            format!("/api/0/sentry-apps/nope/webhook-requests/{id}/redeliver/"),
        ] {
            assert_eq!(app.admin_post(&path, json!({})).await.0, StatusCode::NOT_FOUND, "{path}");
        }
        // Another app cannot redeliver this app's webhook.
        app.create_app("Other", json!({})).await;
        let (status, _) = app.admin_post(&format!("/api/0/sentry-apps/other/webhook-requests/{id}/redeliver/"), json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = app.admin_get("/api/0/sentry-apps/again/webhook-requests/?status=lost").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = app.admin_get("/api/0/sentry-apps/again/webhook-requests/?colour=red").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    async fn a_refused_installation_sends_nothing_and_apps_without_url_queue_nothing() {
        let app = spawn_app().await;
        let rx = Receiver::start(&[]).await;
        let a = app_with_hook(&app, "Once", &rx.url).await;
        app.install_app(&a, "acme").await;
        let (status, _) = app
            .admin_post("/api/0/organizations/acme/sentry-app-installations/", json!({"slug": "once"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        rx.wait_for(1).await;
        newest_until(&app, "once", |d| d["status"] == "delivered").await;
        assert_eq!(log(&app, "once", None).await.len(), 1);
        let quiet = app.create_app("Quiet", json!({})).await;
        app.install_app(&quiet, "acme").await;
        assert!(log(&app, "quiet", None).await.is_empty());
        assert_eq!(rx.received().len(), 1);
    }

    async fn the_platform_hears_when_an_identity_needs_reauthorization_and_when_it_is_back() {
        let rx = Receiver::start(&[]).await;
        let url = rx.url.clone();
        let app = spawn_with(
            crate::common::fresh().await,
            move |c| {
                c.webhooks.platform_url = Some(url);
                c.webhooks.platform_secret = Some(rotor_core::Secret::new("platform-secret"));
            },
        )
        .await;
        let server = MockServer::start().await;
        let (status, p) = app.admin_post("/api/0/upstream/providers/", json!({"key": "idp", "kind": "oauth2",
            "config": {"tokenUrl": format!("{}/token", server.uri()), "clientId": "c", "clientSecret": "s"}})).await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
            .up_to_n_times(1)
            .mount(&server).await;
        let (_, ident) = app.admin_post("/api/0/upstream/identities/",
            json!({"provider": "idp", "externalId": "user-7", "refreshToken": "rt-old"})).await;
        let id = ident["id"].as_str().unwrap().to_owned();
        let (status, _) = app.admin_post(&format!("/api/0/upstream/identities/{id}/token/"), json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT);

        let got = rx.wait_for(1).await;
        assert!(got[0].signed_with("platform-secret"));
        assert_eq!(got[0].header("sentry-hook-resource"), "identity");
        let body = got[0].json();
        assert_eq!(body["action"], "invalid");
        assert_eq!(body["data"]["identity"]["id"], id.as_str());
        assert_eq!(body["data"]["identity"]["provider"], "idp");
        assert_eq!(body["data"]["identity"]["externalId"], "user-7");
        assert_eq!(body["data"]["identity"]["status"], "invalid");
        assert!(body["data"]["identity"]["lastError"].as_str().unwrap().contains("invalid_grant"));
        assert!(!String::from_utf8_lossy(&got[0].body).contains("rt-old"));

        // Re-authorization keeps the id, makes it active and usable again.
        Mock::given(method("POST")).and(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "at-new", "token_type": "Bearer", "expires_in": 3600})))
            .mount(&server).await;
        let (status, patched) = app.admin_patch(&format!("/api/0/upstream/identities/{id}/"),
            json!({"refreshToken": "rt-new", "scopes": ["read"]})).await;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["id"], id.as_str());
        assert_eq!(patched["status"], "active");
        assert_eq!(patched["failureCount"], 0);
        assert_eq!(patched["lastError"], Value::Null);
        assert_eq!(patched["scopes"], json!(["read"]));
        let got = rx.wait_for(2).await;
        assert!(got[1].signed_with("platform-secret"));
        assert_eq!(got[1].json()["action"], "reauthorized");
        assert_eq!(got[1].json()["data"]["identity"]["status"], "active");
        let (status, t) = app.admin_post(&format!("/api/0/upstream/identities/{id}/token/"), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        assert_eq!(t["accessToken"], "at-new");
        let sent = server.received_requests().await.unwrap();
        assert!(String::from_utf8_lossy(&sent.last().unwrap().body).contains("refresh_token=rt-new"));

        // Bad re-authorizations change nothing.
        let (status, _) = app.admin_patch(&format!("/api/0/upstream/identities/{id}/"), json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = app.admin_patch(&format!("/api/0/upstream/identities/{id}/"), json!({"refreshToken": 7})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = app.admin_patch(&format!("/api/0/upstream/identities/{}/", uuid::Uuid::new_v4()), json!({"refreshToken": "x"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Re-authorizing an active identity tells the platform nothing new.
        app.admin_patch(&format!("/api/0/upstream/identities/{id}/"), json!({"refreshToken": "rt-3"})).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(rx.received().len(), 2);
    }

    async fn the_janitor_purges_old_finished_deliveries() {
        let app = spawn_app().await;
        let rx = Receiver::start(&[]).await;
        app_with_hook(&app, "Kept", &rx.url).await;
        app.admin_post("/api/0/organizations/acme/sentry-app-installations/", json!({"slug": "kept"})).await;
        newest_until(&app, "kept", |d| d["status"] == "delivered").await;
        app.advance(Duration::days(29));
        assert_eq!(app.service.purge(1000, 10).await.unwrap().webhooks, 0);
        assert_eq!(log(&app, "kept", None).await.len(), 1);
        app.advance(Duration::days(2));
        assert_eq!(app.service.purge(1000, 10).await.unwrap().webhooks, 1);
        assert!(log(&app, "kept", None).await.is_empty());
    }
}

/// The signature checked as Sentry integrations check it, by a receiver in
/// another language: `scripts/webhook_receiver.py` accepts a webhook only if
/// the HMAC of the raw bytes and of `json.dumps(body, separators=(',', ':'))`
/// (what Sentry's example backend hashes) both match — also with non-ASCII
/// text in the body.
#[tokio::test]
async fn a_python_receiver_verifies_the_signature_as_sentry_integrations_do() {
    use std::io::{BufRead, BufReader};
    let app = spawn_app().await;
    let secrets = tempfile::NamedTempFile::new().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/webhook_receiver.py"
    );
    let mut child = KillOnDrop(
        std::process::Command::new("python3")
            .args([script, "--port", "0", "--secret-file"])
            .arg(secrets.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs the receiver"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let port = first["listening"].as_u64().unwrap();

    let a = app_with_hook(&app, "Py", &format!("http://127.0.0.1:{port}/hook")).await;
    std::fs::write(secrets.path(), a["clientSecret"].as_str().unwrap()).unwrap();
    let (status, inst) = app
        .admin_post(
            "/api/0/organizations/acme/sentry-app-installations/",
            json!({"slug": "py", "actor": {"id": "u-1", "name": "Zoë Ångström 😀"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let line = tokio::task::spawn_blocking(move || lines.next().unwrap().unwrap())
        .await
        .unwrap();
    let got: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(got["verified"], true, "{got}");
    assert_eq!(got["resource"], "installation");
    assert_eq!(got["action"], "created");
    assert_eq!(got["body"]["data"]["installation"]["code"], inst["code"]);
    assert_eq!(got["body"]["actor"]["name"], "Zoë Ångström 😀");
    // The receiver prints before it answers: it is stopped (dropped) only
    // once Rotor logged the 200.
    newest_until(&app, "py", |d| {
        d["status"] == "delivered" && d["responseCode"] == 200
    })
    .await;
    drop(child);
}

/// A child process killed and reaped when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
