//! The metrics, read by their real consumer: a Prometheus server (Debian's
//! `prometheus`, installed by scripts/test.sh) scrapes a running `rotor
//! serve` on its management listener, and its query API must answer the
//! exchange counters with the values this test caused. A format Prometheus
//! cannot parse, a wrong name or label, or a counter that miscounts fails.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{start, Serve};

const ADMIN: &str = "prometheus-test-admin-token-0123456789";

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Asks Prometheus for `query`; answers each series' labels and value.
async fn query(http: &reqwest::Client, prom: &str, q: &str) -> Vec<(Value, f64)> {
    let res: Value = http
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["status"], "success", "{res}");
    res["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"].clone(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_exchange_counters() {
    let bin = which("prometheus").expect(
        "the Prometheus server is not installed: scripts/test.sh installs Debian's `prometheus`",
    );
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/rotor.db", dir.path().display());
    let node = start(Serve::new(&db, dir.path(), ADMIN));
    assert!(
        node.management.starts_with("http://"),
        "no management listener"
    );
    let http = reqwest::Client::new();

    // Two grant exchanges, three refreshes, one replay, one bad secret.
    let app = node.create_app("Scraped").await;
    node.install_and_exchange(&app, "a").await;
    let (url, first) = node.install_and_exchange(&app, "b").await;
    let uuid = url.split('/').rev().nth(2).unwrap().to_owned();
    let mut refresh = first["refreshToken"].as_str().unwrap().to_owned();
    let mut previous = String::new();
    for _ in 0..3 {
        let t: Value = http
            .post(&url)
            .json(
                &json!({"grant_type": "refresh_token", "client_id": app["clientId"],
                "client_secret": app["clientSecret"], "refresh_token": refresh}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        previous = std::mem::replace(&mut refresh, t["refreshToken"].as_str().unwrap().to_owned());
    }
    // The last refresh presented again within the grace window: a replay.
    let res = http
        .post(&url)
        .json(
            &json!({"grant_type": "refresh_token", "client_id": app["clientId"],
            "client_secret": app["clientSecret"], "refresh_token": previous}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = http
        .post(&url)
        .json(
            &json!({"grant_type": "refresh_token", "client_id": app["clientId"],
            "client_secret": "wrong", "refresh_token": refresh}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Prometheus, scraping the management listener every second.
    let target = node.management.trim_start_matches("http://").to_owned();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rotor\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prom = Killed(
        Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prom = format!("http://127.0.0.1:{port}");

    let deadline = Instant::now() + Duration::from_secs(60);
    let exchanges = loop {
        let up = if let Ok(r) = http.get(format!("{prom}/-/ready")).send().await {
            r.status().is_success()
        } else {
            false
        };
        if up {
            let up = query(&http, &prom, "up{job=\"rotor\"}").await;
            if up.first().is_some_and(|(_, v)| *v == 1.0) {
                let found = query(&http, &prom, "rotor_token_exchanges_total").await;
                if !found.is_empty() {
                    break found;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape Rotor within 60 s (a failed scrape means a format it cannot parse)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let value = |grant: &str, outcome: &str| {
        exchanges
            .iter()
            .find(|(m, _)| m["grant"] == grant && m["outcome"] == outcome)
            .map(|(_, v)| *v)
    };
    assert_eq!(
        value("authorization_code", "issued"),
        Some(2.0),
        "{exchanges:?}"
    );
    assert_eq!(value("refresh_token", "issued"), Some(3.0), "{exchanges:?}");
    assert_eq!(
        value("refresh_token", "replayed"),
        Some(1.0),
        "{exchanges:?}"
    );
    assert_eq!(
        value("refresh_token", "invalid_client"),
        Some(1.0),
        "{exchanges:?}"
    );

    // Requests are labelled by route template, never by the raw path.
    let routes = query(&http, &prom, "rotor_http_requests_total").await;
    assert!(
        routes.iter().any(|(m, v)| m["route"]
            == "/api/0/sentry-app-installations/{uuid}/authorizations/"
            && m["status"] == "201"
            && *v == 6.0),
        "{routes:?}"
    );
    assert!(!routes
        .iter()
        .any(|(m, _)| m["route"].as_str().unwrap().contains(&uuid)));
    // The histogram and the process metrics parse as such.
    let p99 = query(
        &http,
        &prom,
        "histogram_quantile(0.99, sum by (le) (rotor_http_request_duration_seconds_bucket))",
    )
    .await;
    assert!(p99.first().is_some_and(|(_, v)| *v > 0.0), "{p99:?}");
    let rss = query(&http, &prom, "process_resident_memory_bytes{job=\"rotor\"}").await;
    assert!(rss.first().is_some_and(|(_, v)| *v > 1e6), "{rss:?}");
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
