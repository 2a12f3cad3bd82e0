//! `rotor-bench`: drives a running Rotor over HTTP at fixed concurrency and
//! prints requests/s, p50/p99 latency and errors for one scenario.
//!
//! Scenarios:
//! * `floor`: `GET /healthz` — the same binary, router and middleware with no
//!   work; every other figure is also printed as a ratio of it.
//! * `refresh`: the Sentry-compatible refresh route; each connection owns one
//!   installation and follows its chain, so every request carries a different
//!   refresh token (the one the previous answer returned).
//! * `oauth-refresh`: the same through `POST /oauth/token` (form, Basic auth).
//! * `introspect`: `POST /oauth/introspect` as the operator, live access tokens.
//! * `upstream-token`: `POST /api/0/upstream/identities/{id}/token/` for
//!   identities whose stored token is fresh (decrypt and answer, no provider).
//!
//! A run with any non-2xx answer is reported as invalid.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
struct Args {
    /// Base URL of the Rotor under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// Admin token of that Rotor.
    #[arg(long, env = "ROTOR_ADMIN_TOKEN")]
    admin_token: String,
    /// What to load.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Concurrent connections (each with its own installation).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of measured load (after a 2-second warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// `realistic-refresh`: installations to spread the load over (each
    /// request refreshes a random one).
    #[arg(long, default_value_t = 100_000)]
    installations: usize,
    /// Seed only, and write the chains (one tab-separated line each) here.
    #[arg(long)]
    save_chains: Option<std::path::PathBuf>,
    /// Load chains written by --save-chains instead of seeding.
    #[arg(long)]
    load_chains: Option<std::path::PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Floor,
    Refresh,
    /// Every request refreshes a different, randomly chosen installation.
    RealisticRefresh,
    OauthRefresh,
    Introspect,
    UpstreamToken,
}

/// One connection's installation and current pair.
#[derive(Default)]
struct Chain {
    uuid: String,
    client_id: String,
    client_secret: String,
    access: String,
    refresh: String,
}

/// `n` installations of one app, seeded by `a.connections` tasks at once.
async fn seed_many(http: &reqwest::Client, a: &Arc<Args>, n: usize) -> anyhow::Result<Vec<Chain>> {
    let app = new_app(http, a, n).await?;
    let workers = a.connections.clamp(1, 64);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (http, a, app) = (http.clone(), a.clone(), app.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (w..n).step_by(workers) {
                out.push(install(&http, &a, &app, i).await?);
            }
            anyhow::Ok(out)
        }));
    }
    let mut chains = Vec::with_capacity(n);
    for t in tasks {
        chains.extend(t.await??);
    }
    Ok(chains)
}

/// A new app: (slug, client id, client secret).
async fn new_app(
    http: &reqwest::Client,
    a: &Args,
    n: usize,
) -> anyhow::Result<(String, String, String)> {
    let app: Value = http
        .post(format!("{}/api/0/sentry-apps/", a.base))
        .bearer_auth(&a.admin_token)
        .json(&json!({"name": format!("bench {}", std::process::id() as u64 * 1000 + n as u64 + rand_suffix()),
                      "scopes": ["project:read"]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        app["slug"].as_str().context("slug")?.to_owned(),
        app["clientId"].as_str().context("clientId")?.to_owned(),
        app["clientSecret"].as_str().context("secret")?.to_owned(),
    ))
}

/// Installs the app into `org-{i}` and exchanges the code.
async fn install(
    http: &reqwest::Client,
    a: &Args,
    (slug, client_id, client_secret): &(String, String, String),
    i: usize,
) -> anyhow::Result<Chain> {
    let inst: Value = http
        .post(format!(
            "{}/api/0/organizations/org-{i}/sentry-app-installations/",
            a.base
        ))
        .bearer_auth(&a.admin_token)
        .json(&json!({ "slug": slug }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let uuid = inst["uuid"].as_str().context("uuid")?.to_owned();
    let t: Value = http
        .post(format!(
            "{}/api/0/sentry-app-installations/{uuid}/authorizations/",
            a.base
        ))
        .json(
            &json!({"grant_type": "authorization_code", "client_id": client_id,
                      "client_secret": client_secret, "code": inst["code"]}),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(Chain {
        uuid,
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
        access: t["token"].as_str().context("token")?.to_owned(),
        refresh: t["refreshToken"]
            .as_str()
            .context("refreshToken")?
            .to_owned(),
    })
}

fn save(chains: &[Chain], path: &std::path::Path) -> anyhow::Result<()> {
    let text: String = chains
        .iter()
        .map(|c| {
            format!(
                "{}\t{}\t{}\t{}\t{}\n",
                c.uuid, c.client_id, c.client_secret, c.access, c.refresh
            )
        })
        .collect();
    std::fs::write(path, text).context("writing the chains")
}

fn load(path: &std::path::Path) -> anyhow::Result<Vec<Chain>> {
    std::fs::read_to_string(path)
        .context("reading the chains")?
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            anyhow::ensure!(f.len() == 5, "a chains line has 5 fields");
            Ok(Chain {
                uuid: f[0].into(),
                client_id: f[1].into(),
                client_secret: f[2].into(),
                access: f[3].into(),
                refresh: f[4].into(),
            })
        })
        .collect()
}

/// One installation per connection, of one new app.
async fn seed(http: &reqwest::Client, a: &Args, n: usize) -> anyhow::Result<Vec<Chain>> {
    let app = new_app(http, a, n).await?;
    let mut chains = Vec::with_capacity(n);
    for i in 0..n {
        chains.push(install(http, a, &app, i).await?);
    }
    Ok(chains)
}

/// One upstream identity per connection, each with a stored token valid for a
/// day (the provider is never called).
async fn seed_upstream(http: &reqwest::Client, a: &Args, n: usize) -> anyhow::Result<Vec<Chain>> {
    let key = format!("bench-{}", rand_suffix());
    http.post(format!("{}/api/0/upstream/providers/", a.base))
        .bearer_auth(&a.admin_token)
        .json(&json!({"key": key, "kind": "google", "config": {"clientId": "c", "clientSecret": "s"}}))
        .send()
        .await?
        .error_for_status()?;
    let expires = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let mut chains = Vec::with_capacity(n);
    for i in 0..n {
        let ident: Value = http
            .post(format!("{}/api/0/upstream/identities/", a.base))
            .bearer_auth(&a.admin_token)
            .json(&json!({"provider": key, "externalId": format!("user-{i}"),
                          "accessToken": format!("upstream-token-{i}"), "refreshToken": "r",
                          "expiresAt": expires}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        chains.push(Chain {
            uuid: ident["id"].as_str().context("id")?.to_owned(),
            ..Chain::default()
        });
    }
    Ok(chains)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

/// Reads a refresh answer: on 2xx the chain moves on to the new refresh
/// token in `field`; answers whether it was 2xx.
async fn follow(res: reqwest::Response, field: &str, refresh: &mut String) -> anyhow::Result<bool> {
    if !res.status().is_success() {
        let _ = res.bytes().await?;
        return Ok(false);
    }
    let t: Value = res.json().await?;
    *refresh = t[field]
        .as_str()
        .context("no refresh token in the answer")?
        .to_owned();
    Ok(true)
}

/// Sends one request of the scenario; answers whether it was 2xx.
async fn one(http: &reqwest::Client, a: &Args, c: &mut Chain) -> anyhow::Result<bool> {
    let res = match a.scenario {
        Scenario::Floor => http.get(format!("{}/healthz", a.base)).send().await?,
        Scenario::Refresh | Scenario::RealisticRefresh => {
            let res = http
                .post(format!(
                    "{}/api/0/sentry-app-installations/{}/authorizations/",
                    a.base, c.uuid
                ))
                .json(
                    &json!({"grant_type": "refresh_token", "client_id": c.client_id,
                              "client_secret": c.client_secret, "refresh_token": c.refresh}),
                )
                .send()
                .await?;
            return follow(res, "refreshToken", &mut c.refresh).await;
        }
        Scenario::OauthRefresh => {
            let res = http
                .post(format!("{}/oauth/token", a.base))
                .basic_auth(&c.client_id, Some(&c.client_secret))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", c.refresh.as_str()),
                ])
                .send()
                .await?;
            return follow(res, "refresh_token", &mut c.refresh).await;
        }
        Scenario::UpstreamToken => {
            let res = http
                .post(format!(
                    "{}/api/0/upstream/identities/{}/token/",
                    a.base, c.uuid
                ))
                .bearer_auth(&a.admin_token)
                .send()
                .await?;
            let ok = res.status().is_success();
            let v: Value = res.json().await?;
            return Ok(ok && v["accessToken"].is_string());
        }
        Scenario::Introspect => {
            let res = http
                .post(format!("{}/oauth/introspect", a.base))
                .bearer_auth(&a.admin_token)
                .form(&[("token", c.access.as_str())])
                .send()
                .await?;
            let ok = res.status().is_success();
            let v: Value = res.json().await?;
            return Ok(ok && v["active"] == true);
        }
    };
    let ok = res.status().is_success();
    let _ = res.bytes().await?;
    Ok(ok)
}

/// Per-minute latency histograms and counts of one task.
struct Minutes {
    hist: Vec<Histogram<u64>>,
    ok: Vec<u64>,
    errors: Vec<u64>,
}

impl Minutes {
    fn new(seconds: u64) -> Self {
        let n = seconds.div_ceil(60).max(1) as usize;
        Self {
            hist: (0..n)
                .map(|_| Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"))
                .collect(),
            ok: vec![0; n],
            errors: vec![0; n],
        }
    }

    fn record(&mut self, minute: usize, micros: u64, good: bool) {
        let m = minute.min(self.hist.len() - 1);
        let _ = self.hist[m].record(micros);
        if good {
            self.ok[m] += 1;
        } else {
            self.errors[m] += 1;
        }
    }

    fn add(&mut self, other: Minutes) -> anyhow::Result<()> {
        for (i, h) in other.hist.into_iter().enumerate() {
            self.hist[i].add(h)?;
            self.ok[i] += other.ok[i];
            self.errors[i] += other.errors[i];
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(10))
        .build()?;
    let chains = if let Some(path) = &args.load_chains {
        load(path)?
    } else if args.scenario == Scenario::UpstreamToken {
        seed_upstream(&http, &args, args.connections).await?
    } else if args.scenario == Scenario::Floor {
        (0..args.connections).map(|_| Chain::default()).collect()
    } else if args.scenario == Scenario::RealisticRefresh {
        seed_many(&http, &args, args.installations).await?
    } else {
        seed(&http, &args, args.connections).await?
    };
    if let Some(path) = &args.save_chains {
        save(&chains, path)?;
        eprintln!("seeded {} chains into {}", chains.len(), path.display());
        return Ok(());
    }
    let warmup = Duration::from_secs(2);
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop = measure_from + Duration::from_secs(args.seconds);
    // Realistic: every connection takes a random chain per request (one not
    // in use by another connection); otherwise each keeps its own.
    let shared: Arc<Vec<tokio::sync::Mutex<Chain>>> =
        Arc::new(chains.into_iter().map(tokio::sync::Mutex::new).collect());
    let per_connection = args.scenario != Scenario::RealisticRefresh;
    let mut tasks = Vec::new();
    for conn in 0..args.connections.min(if per_connection {
        shared.len()
    } else {
        usize::MAX
    }) {
        let (http, args, shared) = (http.clone(), args.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let mut minutes = Minutes::new(args.seconds);
            let mut rng = (conn as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ rand_suffix();
            loop {
                let t0 = Instant::now();
                if t0 >= stop {
                    break;
                }
                let mut chain = if per_connection {
                    shared[conn].lock().await
                } else {
                    loop {
                        // xorshift: cheap, and enough to spread requests.
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        if let Ok(c) = shared[(rng % shared.len() as u64) as usize].try_lock() {
                            break c;
                        }
                    }
                };
                let good = matches!(one(&http, &args, &mut chain).await, Ok(true));
                drop(chain);
                if t0 >= measure_from {
                    let minute = ((t0 - measure_from).as_secs() / 60) as usize;
                    minutes.record(minute, t0.elapsed().as_micros() as u64, good);
                }
            }
            minutes
        }));
    }
    let mut all = Minutes::new(args.seconds);
    for t in tasks {
        all.add(t.await?)?;
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for h in &all.hist {
        hist.add(h)?;
    }
    let (ok, errors): (u64, u64) = (all.ok.iter().sum(), all.errors.iter().sum());
    let secs = args.seconds as f64;
    let minute = |i: usize| {
        let span = (args.seconds - 60 * i as u64).min(60) as f64;
        json!({
            "rps": ((all.ok[i] + all.errors[i]) as f64 / span).round(),
            "p99_ms": all.hist[i].value_at_quantile(0.99) as f64 / 1000.0,
        })
    };
    let last = all.hist.len() - 1;
    let line = json!({
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "connections": args.connections,
        "seconds": args.seconds,
        "requests": ok + errors,
        "errors": errors,
        "rps": ((ok + errors) as f64 / secs).round(),
        "p50_ms": hist.value_at_quantile(0.50) as f64 / 1000.0,
        "p99_ms": hist.value_at_quantile(0.99) as f64 / 1000.0,
        "first_minute": minute(0),
        "last_minute": minute(last),
    });
    println!("{line}");
    if errors > 0 {
        bail!("{errors} requests were not 2xx: this run does not count");
    }
    Ok(())
}
