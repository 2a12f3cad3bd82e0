//! PostgreSQL going away under load: Rotor answers 503 with a clear error
//! while it is gone, `/readyz` says so, it recovers by itself, and no token
//! acknowledged with a 2xx is lost or doubled. The database is cut by a TCP
//! proxy between Rotor and PostgreSQL, so other tests sharing the server are
//! not disturbed. Runs when `ROTOR_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::*;
use reqwest::StatusCode;
use rotor_core::{ManualClock, ServerKey};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy that can drop every connection and refuse new ones.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the database is "gone"
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { port, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn get(http: &reqwest::Client, url: String) -> (StatusCode, Value) {
    split(http.get(url).send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotor_survives_postgres_going_away() {
    assert!(postgres_url().is_some(), "{}", crate::common::NO_POSTGRES);
    let direct = fresh_postgres_url().await;
    let host_port = direct
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_owned();
    let proxy = Proxy::start(host_port.clone()).await;
    let via_proxy = direct.replacen(&host_port, &format!("127.0.0.1:{}", proxy.port), 1);

    let app = spawn_with(
        Restart {
            dir: Arc::new(tempfile::tempdir().unwrap()),
            key: ServerKey::generate().to_base64(),
            clock: Arc::new(ManualClock::starting_now()),
            database_url: via_proxy,
        },
        |c| c.pg_acquire_timeout = std::time::Duration::from_millis(500),
    )
    .await;
    let base = app.base.clone();

    let i = app.installed("Acme", "acme").await;
    let mut current = app.tokens(&i).await;
    let mut acknowledged = 1;
    for _ in 0..20 {
        let (status, next) = app
            .refresh(&i, current["refreshToken"].as_str().unwrap())
            .await;
        assert_eq!(status, StatusCode::CREATED);
        current = next;
        acknowledged += 1;
    }

    proxy.cut();
    // While the database is gone: 503 with a clear JSON error, never a hang or a 500.
    let (status, body) = app
        .refresh(&i, current["refreshToken"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("unavailable"));
    let (status, _) = get(&app.http, format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = get(&app.http, format!("{base}/healthz")).await;
    assert_eq!(status, StatusCode::OK, "the process itself is up");

    proxy.restore();
    let mut ready = false;
    for _ in 0..100 {
        if get(&app.http, format!("{base}/readyz")).await.0 == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "recovers by itself");

    // The last acknowledged pair is intact and moves on; retrying the refresh
    // that failed during the outage gives one successor, never two.
    let rt = current["refreshToken"].as_str().unwrap().to_owned();
    let (status, a) = app.refresh(&i, &rt).await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let (status, b) = app.refresh(&i, &rt).await;
    assert_eq!(
        (status, &a),
        (StatusCode::CREATED, &b),
        "a retry is the same pair"
    );
    assert_eq!(
        app.verify(&i.uuid, a["token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    let (_, ev) = app
        .admin_get(&format!(
            "/api/0/events/?installation={}&type=token_exchanged&limit=1000",
            i.uuid
        ))
        .await;
    assert_eq!(
        ev.as_array().unwrap().len(),
        acknowledged + 1,
        "every acknowledged exchange is there, once"
    );
}
