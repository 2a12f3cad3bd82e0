//! A `rotor serve` limited to 1,024 descriptors stays up for real requests
//! while 1,100 idle connections and 200 slowloris connections are open, and
//! closes the slow ones itself; SIGTERM with a stalled client and a hung
//! upstream provider exits 0 within the drain deadline plus a second.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{start, Node, Serve};

/// `rotor serve` under `ulimit -n 1024`, with `args`.
fn start_limited(dir: &std::path::Path, args: &[&str]) -> Node {
    let url = format!("sqlite://{}/rotor.db", dir.display());
    start(Serve {
        args,
        open_files: Some(1024),
        ..Serve::new(&url, dir, ADMIN)
    })
}

const ADMIN: &str = "limits-admin-token-0123456789abcdef";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slowloris_floods_do_not_lock_out_real_requests() {
    // This test process needs about 1,400 descriptors of its own.
    rlimit::increase_nofile_limit(4096).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Header time 8 s: long enough that the flood is all open before the
    // first idle connection times out, so the connection limit is what
    // protects the real requests.
    let node = start_limited(dir.path(), &["--header-read-timeout-seconds", "8"]);

    let app = node
        .admin_post_ok(
            "/api/0/sentry-apps/",
            json!({"name": "Flood", "scopes": ["project:read"]}),
        )
        .await;
    let inst = node
        .admin_post_ok(
            "/api/0/organizations/acme/sentry-app-installations/",
            json!({"slug": "flood"}),
        )
        .await;
    let path = format!(
        "{}/api/0/sentry-app-installations/{}/authorizations/",
        node.base,
        inst["uuid"].as_str().unwrap()
    );
    let creds = json!({"client_id": app["clientId"], "client_secret": app["clientSecret"]});
    let mut body = creds.clone();
    body["grant_type"] = json!("authorization_code");
    body["code"] = inst["code"].clone();
    let tokens: Value = reqwest::Client::new()
        .post(&path)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // 1,100 connections that send nothing, 200 that send half a request head.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        idle.push(TcpStream::connect(&node.addr).unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(&node.addr).unwrap();
        s.write_all(b"POST /api/0/sentry-apps/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        slow.push(s);
    }

    // The server has met its limit (896 under 1,024 descriptors) and shed.
    node.wait_for_log("connection limit reached");
    let started = Instant::now();
    let health = client()
        .get(format!("{}/healthz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let mut refresh = creds.clone();
    refresh["grant_type"] = json!("refresh_token");
    refresh["refresh_token"] = tokens["refreshToken"].clone();
    let res = client().post(&path).json(&refresh).send().await.unwrap();
    assert_eq!(res.status(), 201);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );

    // The slowloris connections are closed by the server once their header
    // time is up (8 s here), or earlier if shed.
    let deadline = Instant::now() + Duration::from_secs(15);
    for s in &mut slow {
        s.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,    // closed by the server
                Ok(_) => continue, // an error answer before the close
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("a slowloris connection is still open: {e}"),
            }
        }
    }
    assert!(
        Instant::now() < deadline,
        "slow connections were not closed"
    );
    // Still serving.
    let health = client()
        .get(format!("{}/healthz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stalled_client_and_a_hung_provider_exits_within_the_drain_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_limited(dir.path(), &["--drain-seconds", "2"]);
    // A provider that accepts connections and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_addr = hung.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut keep = Vec::new();
        for s in hung.incoming() {
            keep.push(s);
        }
    });
    node.admin_post_ok("/api/0/upstream/providers/", json!({"key": "hung", "kind": "oauth2",
        "config": {"tokenUrl": format!("http://{hung_addr}/token"), "clientId": "c", "clientSecret": "s"}})).await;
    let ident = node
        .admin_post_ok(
            "/api/0/upstream/identities/",
            json!({"provider": "hung", "externalId": "u", "refreshToken": "rt"}),
        )
        .await;
    let token_url = format!(
        "{}/api/0/upstream/identities/{}/token/",
        node.base,
        ident["id"].as_str().unwrap()
    );
    let waiting = tokio::spawn(async move {
        reqwest::Client::new()
            .post(token_url)
            .bearer_auth(ADMIN)
            .send()
            .await
    });
    // A client stalled halfway through its headers.
    let mut stalled = TcpStream::connect(&node.addr).unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let pid = node.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(s) = node.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "rotor did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(3),
        "exit took {took:?} (drain deadline 2 s)"
    );
    // The waiting caller got an answer or a closed connection, not a hang.
    let _ = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .unwrap();
    drop(stalled);
}
