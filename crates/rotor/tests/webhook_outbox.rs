//! The webhook outbox across processes: a `rotor serve` killed with SIGKILL
//! while a delivery is in flight loses nothing (the next process sends it,
//! with the same Request-ID), on SQLite and on PostgreSQL; and two nodes on
//! one PostgreSQL send every delivery exactly once, an installation's
//! `created` before its `deleted`.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use support::{fresh_schema_url, postgres, start, Node, Serve};

/// A node that may send webhooks to loopback, with 1-second attempts.
fn start_node(database_url: &str, dir: &std::path::Path) -> Node {
    start(Serve {
        env: &[
            ("ROTOR_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8"),
            ("ROTOR_WEBHOOK_TIMEOUT_SECONDS", "1"),
        ],
        ..Serve::new(database_url, dir, ADMIN)
    })
}

const ADMIN: &str = "outbox-admin";

/// (Request-ID, body) of every request, and how to answer the next ones.
#[derive(Default)]
struct Log {
    got: Vec<(String, Value)>,
    hang_first: usize,
}

async fn hook(State(log): State<Arc<Mutex<Log>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let hang = {
        let mut l = log.lock().unwrap();
        let id = headers["request-id"].to_str().unwrap().to_owned();
        l.got.push((id, serde_json::from_slice(&body).unwrap()));
        if l.hang_first > 0 {
            l.hang_first -= 1;
            true
        } else {
            false
        }
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    // A little work per request, so deliveries on two nodes overlap.
    tokio::time::sleep(Duration::from_millis(20)).await;
    StatusCode::NO_CONTENT
}

async fn receiver(hang_first: usize) -> (String, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(Log {
        got: Vec::new(),
        hang_first,
    }));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(Arc::clone(&log));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, log)
}

/// What only these tests need of a node.
trait Outbox {
    async fn delete(&self, path: &str);
    async fn deliveries(&self, slug: &str) -> Vec<Value>;
}

impl Outbox for Node {
    async fn delete(&self, path: &str) {
        let res = reqwest::Client::new()
            .delete(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 204, "{path}");
    }

    async fn deliveries(&self, slug: &str) -> Vec<Value> {
        reqwest::Client::new()
            .get(format!(
                "{}/api/0/sentry-apps/{slug}/webhook-requests/?limit=1000",
                self.base
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

/// Polls (at most `secs`) until `check` holds.
async fn until(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills the node while the receiver holds the `installation.created`
/// attempt open, starts another on the same database, and expects the same
/// delivery (same Request-ID, same code) to arrive and be logged delivered.
async fn sigkill_mid_delivery_loses_nothing(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (url, log) = receiver(1).await;
    let node = start_node(database_url, dir.path());
    node.admin_post_ok(
        "/api/0/sentry-apps/",
        json!({"name": "Killed", "scopes": ["project:read"], "webhookUrl": url}),
    )
    .await;
    let inst = node
        .admin_post_ok(
            "/api/0/organizations/acme/sentry-app-installations/",
            json!({"slug": "killed"}),
        )
        .await;
    until("the first attempt", 15, || {
        !log.lock().unwrap().got.is_empty()
    })
    .await;
    drop(node); // SIGKILL: the attempt is in flight, its lease held by the dead process

    let node = start_node(database_url, dir.path());
    until("the delivery after the restart", 30, || {
        log.lock().unwrap().got.len() >= 2
    })
    .await;
    let got = log.lock().unwrap().got.clone();
    assert_eq!(got[0].0, got[1].0, "the same delivery, the same Request-ID");
    assert_eq!(got[1].1["data"]["installation"]["code"], inst["code"]);
    let mut delivered = false;
    for _ in 0..100 {
        let d = node.deliveries("killed").await;
        if d.len() == 1 && d[0]["status"] == "delivered" {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "{:?}", node.deliveries("killed").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigkill_mid_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rotor.db").display());
    sigkill_mid_delivery_loses_nothing(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_mid_delivery_loses_nothing() {
    let pg = postgres();
    sigkill_mid_delivery_loses_nothing(&fresh_schema_url(&pg).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_nodes_send_each_delivery_once_and_in_order() {
    let pg = postgres();
    let url = fresh_schema_url(&pg).await;
    let dir = tempfile::tempdir().unwrap();
    let (hook_url, log) = receiver(0).await;
    let nodes = [start_node(&url, dir.path()), start_node(&url, dir.path())];
    for name in ["One", "Two"] {
        nodes[0]
            .admin_post_ok(
                "/api/0/sentry-apps/",
                json!({"name": name, "scopes": ["project:read"], "webhookUrl": hook_url}),
            )
            .await;
    }
    let mut installs = Vec::new();
    for n in 0..20 {
        let slug = if n % 2 == 0 { "one" } else { "two" };
        let inst = nodes[n % 2]
            .admin_post_ok(
                &format!("/api/0/organizations/org-{n}/sentry-app-installations/"),
                json!({"slug": slug}),
            )
            .await;
        installs.push(inst["uuid"].as_str().unwrap().to_owned());
    }
    // Uninstall half at once, from the other node: their `deleted` may be
    // queued while their `created` is still in flight.
    for (n, uuid) in installs.iter().enumerate().filter(|(n, _)| n % 2 == 0) {
        nodes[(n + 1) % 2]
            .delete(&format!("/api/0/sentry-app-installations/{uuid}/"))
            .await;
    }
    let expected = installs.len() + installs.len() / 2;
    until("every delivery", 60, || {
        log.lock().unwrap().got.len() >= expected
    })
    .await;
    // A moment more: anything sent twice would arrive now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = log.lock().unwrap().got.clone();
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for (id, _) in &got {
        *per_id.entry(id.as_str()).or_default() += 1;
    }
    assert_eq!(
        got.len(),
        expected,
        "each delivery exactly once: {per_id:?}"
    );
    assert!(per_id.values().all(|n| *n == 1));
    let mut seen: HashMap<String, VecDeque<String>> = HashMap::new();
    for (_, body) in &got {
        let uuid = body["installation"]["uuid"].as_str().unwrap().to_owned();
        seen.entry(uuid)
            .or_default()
            .push_back(body["action"].as_str().unwrap().to_owned());
    }
    for (n, uuid) in installs.iter().enumerate() {
        let actions: Vec<String> = seen[uuid].iter().cloned().collect();
        let want: Vec<&str> = if n % 2 == 0 {
            vec!["created", "deleted"]
        } else {
            vec!["created"]
        };
        assert_eq!(actions, want, "installation {uuid}");
    }
}
