//! `rotor backup` on a live SQLite database under refresh load: every
//! refresh token the server acknowledged before the backup started is in
//! the copy, and a fresh server started on the restored copy (the README's
//! restore steps) serves the chains from where the copy left them.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{start, Serve, KEY};

const ADMIN: &str = "backup-test-admin-token-0123456789abcdef";
const CHAINS: usize = 8;

/// One installation's chain: its route and every refresh token acknowledged,
/// with when the answer arrived.
struct Chain {
    url: String,
    acked: Vec<(Instant, String)>,
}

async fn refresh(http: &reqwest::Client, url: &str, app: &Value, token: &str) -> (u16, Value) {
    let res = http
        .post(url)
        .json(
            &json!({"grant_type": "refresh_token", "client_id": app["clientId"],
            "client_secret": app["clientSecret"], "refresh_token": token}),
        )
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/rotor.db", dir.path().display());
    let node = start(Serve::new(&db, dir.path(), ADMIN));
    let http = reqwest::Client::new();
    let app = node.create_app("Backed").await;
    let mut chains = Vec::new();
    for n in 0..CHAINS {
        let (url, t) = node.install_and_exchange(&app, &format!("org-{n}")).await;
        let first = t["refreshToken"].as_str().unwrap().to_owned();
        chains.push(Arc::new(Mutex::new(Chain {
            url,
            acked: vec![(Instant::now(), first)],
        })));
    }

    // Refresh every chain in a loop.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for c in &chains {
        let (c, http, app, stop) = (Arc::clone(c), http.clone(), app.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (url, last) = {
                    let c = c.lock().unwrap();
                    (c.url.clone(), c.acked.last().unwrap().1.clone())
                };
                let (status, t) = refresh(&http, &url, &app, &last).await;
                assert_eq!(status, 201, "{t}");
                let next = t["refreshToken"].as_str().unwrap().to_owned();
                c.lock().unwrap().acked.push((Instant::now(), next));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    // The backup, by the CLI, while the load runs.
    let backup = dir.path().join("backup.db");
    let began = Instant::now();
    let out = {
        let (db, backup, cwd) = (db.clone(), backup.clone(), dir.path().to_owned());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
                .current_dir(cwd)
                .args(["backup", backup.to_str().unwrap(), "--database-url", &db])
                .env("ROTOR_SECRET_KEY", KEY)
                .env("RUST_LOG", "warn")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let ended = Instant::now();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let during: usize = chains
        .iter()
        .map(|c| {
            c.lock()
                .unwrap()
                .acked
                .iter()
                .filter(|(at, _)| *at >= began && *at <= ended)
                .count()
        })
        .sum();
    let total: usize = chains.iter().map(|c| c.lock().unwrap().acked.len()).sum();
    eprintln!(
        "backup took {:?}; {total} refresh tokens acknowledged, {during} of them while it ran",
        ended - began
    );
    assert!(total > CHAINS * 5, "the load ran: {total}");

    // Every refresh token acknowledged before the backup began is in it.
    let copy = rusqlite::Connection::open(&backup).unwrap();
    let known = |token: &str| -> bool {
        let hash = rotor_core::TokenHash::of(token);
        copy.query_row(
            "SELECT COUNT(*) FROM tokens WHERE refresh_hash = ?1",
            [hash.as_bytes().as_slice()],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    };
    let mut latest = Vec::new();
    for c in &chains {
        let c = c.lock().unwrap();
        for (at, token) in &c.acked {
            if *at < began {
                assert!(
                    known(token),
                    "a refresh token acknowledged before the backup is missing"
                );
            }
        }
        // The chain's newest token in the copy: where a restore resumes.
        let newest = c.acked.iter().rev().find(|(_, t)| known(t)).unwrap();
        latest.push((c.url.clone(), newest.1.clone()));
    }
    drop(copy);

    // Restore (README): a fresh server on a copy of the backup file.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&backup, restored.path().join("rotor.db")).unwrap();
    let db2 = format!("sqlite://{}/rotor.db", restored.path().display());
    let node2 = start(Serve::new(&db2, restored.path(), ADMIN));
    for (url, token) in latest {
        let path = url.split("/api/0/").nth(1).unwrap();
        let (status, t) =
            refresh(&http, &format!("{}/api/0/{path}", node2.base), &app, &token).await;
        assert_eq!(status, 201, "the restored server refreshes the chain: {t}");
    }
}

#[test]
fn a_backup_never_overwrites_and_refuses_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
            .current_dir(dir.path())
            .args(args)
            .env("ROTOR_SECRET_KEY", KEY)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run(&["backup", "copy.db"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Rotor database at"));
    assert!(run(&["migrate"]).status.success());
    std::fs::write(dir.path().join("copy.db"), b"precious").unwrap();
    let out = run(&["backup", "copy.db"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("never overwrites"));
    assert_eq!(
        std::fs::read(dir.path().join("copy.db")).unwrap(),
        b"precious"
    );
    let out = run(&[
        "backup",
        "copy.db",
        "--database-url",
        "postgres://u@localhost/x",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
}
