//! A webhook receiver for tests: a real HTTP server on 127.0.0.1:0 that
//! records every request and answers from a script (a status, or hanging
//! until the client gives up), then 200. Signatures are checked here with
//! the `hmac` crate directly — never with Rotor's own signing code.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Never answers (until the sender's timeout closes the connection).
    Hang,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }

    /// Whether `Sentry-Hook-Signature` is the lowercase hex HMAC-SHA256 of
    /// the exact body bytes under `secret`.
    pub fn signed_with(&self, secret: &str) -> bool {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("hmac key");
        mac.update(&self.body);
        hex::encode(mac.finalize().into_bytes()) == self.header("sentry-hook-signature")
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    got: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
}

async fn hook(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let reply = {
        let mut i = inner.lock().unwrap();
        i.got.push(Received { headers, body });
        i.script.pop_front().unwrap_or(Reply::Status(200))
    };
    match reply {
        Reply::Status(s) => StatusCode::from_u16(s).unwrap(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK
        }
    }
}

impl Receiver {
    /// Starts a receiver whose first answers follow `script`.
    pub async fn start(script: &[Reply]) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner {
            script: script.iter().copied().collect(),
            got: Vec::new(),
        }));
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            port,
            inner,
        }
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().got.clone()
    }

    /// Waits (at most 15 s) until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} webhook(s), got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Polls `check` (at most 15 s) until it yields a value.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
