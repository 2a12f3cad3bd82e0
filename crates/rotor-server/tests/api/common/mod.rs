//! `spawn_app()`: the real server on 127.0.0.1:0 over its own SQLite file, a
//! manual clock, and helpers that drive the admin API and the app routes.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Duration;
use reqwest::StatusCode;
use rotor_core::{ManualClock, Secret, ServerKey};
use rotor_server::startup::{self, Config};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod receiver;

pub const ADMIN: &str = "test-admin-token";

/// Which store backend a test's server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    /// Set by [`http_tests!`] around each test body.
    pub static BACKEND: Backend;
}

/// The PostgreSQL URL for tests, if configured.
/// Why a PostgreSQL case run without a URL fails.
pub const NO_POSTGRES: &str = "ROTOR_TEST_POSTGRES_URL is not set: PostgreSQL cases are left out by the default test filter (reported as skipped); scripts/test.sh sets the URL and runs them";

pub fn postgres_url() -> Option<String> {
    std::env::var("ROTOR_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Expands each `async fn name() { … }` into `sqlite::name` and
/// `postgres::name` tests (the latter pass with a note when
/// `ROTOR_TEST_POSTGRES_URL` is unset; CI sets it).
#[macro_export]
macro_rules! http_tests {
    ($(async fn $name:ident() $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    $crate::common::BACKEND.scope($crate::common::Backend::Sqlite, async $body).await
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    assert!($crate::common::postgres_url().is_some(), "{}", $crate::common::NO_POSTGRES);
                    $crate::common::BACKEND.scope($crate::common::Backend::Postgres, async $body).await
                }
            )*
        }
    };
}

/// What a stopped server leaves behind, to start it again on the same data.
pub struct Restart {
    pub dir: Arc<tempfile::TempDir>,
    pub key: String,
    pub clock: Arc<ManualClock>,
    pub database_url: String,
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    /// The running server's use cases, for driving the janitor.
    pub service: rotor_server::Service,
    pub clock: Arc<ManualClock>,
    pub dir: Arc<tempfile::TempDir>,
    pub key: String,
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    background: Option<startup::Background>,
}

pub struct Installed {
    pub app: Value,
    pub client_id: String,
    pub client_secret: String,
    pub uuid: String,
    pub code: String,
}

impl TestApp {
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("rotor.db")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) -> Restart {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
        if let Some(b) = self.background.take() {
            b.stop().await;
        }
        Restart {
            dir: self.dir.clone(),
            key: self.key.clone(),
            clock: self.clock.clone(),
            database_url: self.database_url.clone(),
        }
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(self.url(path))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .expect("request");
        split(res).await
    }

    pub async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        let res = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("request");
        split(res).await
    }

    pub async fn admin_patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .patch(self.url(path))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .expect("request");
        split(res).await
    }

    pub async fn admin_delete(&self, path: &str) -> StatusCode {
        self.http
            .delete(self.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("request")
            .status()
    }

    /// Creates an app named `name` with `extra` settings merged in.
    pub async fn create_app(&self, name: &str, extra: Value) -> Value {
        let mut body = json!({ "name": name, "scopes": ["project:read", "event:write"] });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, app) = self.admin_post("/api/0/sentry-apps/", body).await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        app
    }

    pub async fn install_app(&self, app: &Value, org: &str) -> Installed {
        let slug = app["slug"].as_str().expect("slug");
        let (status, inst) = self
            .admin_post(
                &format!("/api/0/organizations/{org}/sentry-app-installations/"),
                json!({ "slug": slug }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{inst}");
        Installed {
            app: app.clone(),
            client_id: app["clientId"].as_str().expect("clientId").to_owned(),
            client_secret: app["clientSecret"]
                .as_str()
                .expect("clientSecret")
                .to_owned(),
            uuid: inst["uuid"].as_str().expect("uuid").to_owned(),
            code: inst["code"].as_str().expect("code").to_owned(),
        }
    }

    /// A new app installed into `org`.
    pub async fn installed(&self, name: &str, org: &str) -> Installed {
        let app = self.create_app(name, json!({})).await;
        self.install_app(&app, org).await
    }

    pub async fn authorize(&self, uuid: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(self.url(&format!(
                "/api/0/sentry-app-installations/{uuid}/authorizations/"
            )))
            .json(&body)
            .send()
            .await
            .expect("request");
        split(res).await
    }

    pub async fn exchange(&self, i: &Installed) -> (StatusCode, Value) {
        self.authorize(
            &i.uuid,
            json!({
                "client_id": i.client_id, "client_secret": i.client_secret,
                "grant_type": "authorization_code", "code": i.code,
            }),
        )
        .await
    }

    /// Exchanges the code and asserts it worked.
    pub async fn tokens(&self, i: &Installed) -> Value {
        let (status, body) = self.exchange(i).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn refresh(&self, i: &Installed, refresh_token: &str) -> (StatusCode, Value) {
        self.authorize(
            &i.uuid,
            json!({
                "client_id": i.client_id, "client_secret": i.client_secret,
                "grant_type": "refresh_token", "refresh_token": refresh_token,
            }),
        )
        .await
    }

    /// `PUT /api/0/sentry-app-installations/{uuid}/` with a bearer token.
    pub async fn verify(&self, uuid: &str, bearer: &str) -> (StatusCode, Value) {
        let res = self
            .http
            .put(self.url(&format!("/api/0/sentry-app-installations/{uuid}/")))
            .bearer_auth(bearer)
            .json(&json!({ "status": "installed" }))
            .send()
            .await
            .expect("request");
        split(res).await
    }
}

pub async fn split(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.expect("body");
    if text.is_empty() {
        return (status, Value::Null);
    }
    assert!(
        ct.starts_with("application/json"),
        "non-JSON answer {status} {ct}: {text}"
    );
    (status, serde_json::from_str(&text).expect("JSON body"))
}

/// A database URL for a fresh PostgreSQL schema of its own.
pub async fn fresh_postgres_url() -> String {
    let url = postgres_url().expect("ROTOR_TEST_POSTGRES_URL");
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to ROTOR_TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create schema");
    admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// A server on a fresh database (of the test's backend) with the admin token set.
pub async fn spawn_app() -> TestApp {
    spawn_on(fresh().await).await
}

/// A fresh database of the test's backend, a new server key and a manual
/// clock: what [`spawn_with`] needs for a server with its own settings.
pub async fn fresh() -> Restart {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let database_url = match BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite) {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("rotor.db").display()),
        Backend::Postgres => fresh_postgres_url().await,
    };
    Restart {
        dir,
        key: ServerKey::generate().to_base64(),
        clock: Arc::new(ManualClock::new(chrono::SubsecRound::trunc_subsecs(
            chrono::Utc::now(),
            6,
        ))),
        database_url,
    }
}

/// A server on the data a stopped one left.
pub async fn spawn_on(r: Restart) -> TestApp {
    spawn_with(r, |_| {}).await
}

/// A server on `r`'s data with its configuration adjusted by `tweak`.
pub async fn spawn_with(r: Restart, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let Restart {
        dir,
        key,
        clock,
        database_url,
    } = r;
    let mut config = Config {
        admin_token: Some(Secret::new(ADMIN)),
        secret_key: Some(Secret::new(key.clone())),
        ..Config::new(database_url.clone())
    };
    // Test receivers listen on loopback; the worker looks often.
    config.webhooks.policy =
        rotor_server::webhooks::AddressPolicy::parse("127.0.0.0/8").expect("policy");
    config.webhooks.poll = std::time::Duration::from_millis(50);
    config.webhooks.timeout = std::time::Duration::from_secs(2);
    tweak(&mut config);
    let state = startup::build(&config, clock.clone()).await.expect("build");
    let service = state.service.clone();
    let mut background = startup::Background::new();
    background
        .webhook_worker(service.clone())
        .expect("webhook worker");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        startup::serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    TestApp {
        base,
        http: reqwest::Client::new(),
        service,
        clock,
        dir,
        key,
        database_url,
        stop: Some(tx),
        task: Some(task),
        background: Some(background),
    }
}

/// An HS256 JWT signed with `secret` with these claims.
pub fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

impl TestApp {
    /// Seconds since the epoch on the test clock.
    pub fn epoch(&self) -> i64 {
        rotor_core::Clock::now(&*self.clock).timestamp()
    }

    /// POST a form to an `/oauth/` route, with optional Basic credentials.
    pub async fn form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        fields: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.post(self.url(path)).form(fields);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let res = req.send().await.expect("request");
        let headers = res.headers().clone();
        let (status, body) = split(res).await;
        (status, headers, body)
    }

    /// Introspects `token` as the operator.
    pub async fn introspect(&self, token: &str) -> Value {
        let res = self
            .http
            .post(self.url("/oauth/introspect"))
            .bearer_auth(ADMIN)
            .form(&[("token", token)])
            .send()
            .await
            .expect("request");
        split(res).await.1
    }
}
