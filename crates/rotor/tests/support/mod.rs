//! What the tests of the `rotor` binary share: a `rotor serve` process on an
//! ephemeral port (killed when dropped, its log readable), and a fresh
//! PostgreSQL schema per test.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The server key every test node shares.
pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A running `rotor serve`; SIGKILLed when dropped.
pub struct Node {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The operator token it was started with.
    pub admin_token: String,
    /// `http://127.0.0.1:PORT` of its management listener (`/metrics`).
    pub management: String,
    /// Its log lines after the listening one.
    log: mpsc::Receiver<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start a node.
pub struct Serve<'a> {
    pub database_url: &'a str,
    pub dir: &'a Path,
    pub admin_token: &'a str,
    /// More `serve` flags.
    pub args: &'a [&'a str],
    /// More environment variables.
    pub env: &'a [(&'a str, &'a str)],
    /// `ulimit -n` for the process, if any.
    pub open_files: Option<u32>,
}

impl<'a> Serve<'a> {
    /// A node on `database_url`, working in `dir`, with no extra settings.
    pub fn new(database_url: &'a str, dir: &'a Path, admin_token: &'a str) -> Self {
        Self {
            database_url,
            dir,
            admin_token,
            args: &[],
            env: &[],
            open_files: None,
        }
    }
}

/// Starts `rotor serve` on 127.0.0.1:0 and reads the port from its log.
pub fn start(s: Serve<'_>) -> Node {
    let bin = env!("CARGO_BIN_EXE_rotor");
    let mut cmd = match s.open_files {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        s.database_url,
    ])
    .args(s.args)
    .current_dir(s.dir)
    .env("ROTOR_SECRET_KEY", KEY)
    .env("ROTOR_ADMIN_TOKEN", s.admin_token)
    .env("RUST_LOG", "info")
    // Every node its own management port (the default, 9000, is one per host).
    .env("ROTOR_MANAGEMENT_LISTEN", "127.0.0.1:0")
    .envs(s.env.iter().copied())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut management = String::new();
    let addr = loop {
        let line = lines
            .next()
            .expect("rotor exited before listening")
            .unwrap();
        if let Some(rest) = line
            .split("management listening (/metrics, /healthz, /readyz) addr=")
            .nth(1)
        {
            management = format!("http://{}", rest.split_whitespace().next().unwrap());
        }
        if let Some(rest) = line.split("rotor listening addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining the log so the node never blocks on a full pipe.
    let (tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Node {
        child,
        base: format!("http://{addr}"),
        addr,
        admin_token: s.admin_token.to_owned(),
        management,
        log,
    }
}

impl Node {
    /// POSTs JSON to this node's admin API; answers the status and the JSON
    /// body (`null` when there is none).
    pub async fn admin_post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Creates an app named `name` with the `project:read` scope; answers
    /// its JSON (with `slug`, `clientId`, `clientSecret`).
    pub async fn create_app(&self, name: &str) -> serde_json::Value {
        self.admin_post_ok(
            "/api/0/sentry-apps/",
            serde_json::json!({"name": name, "scopes": ["project:read"]}),
        )
        .await
    }

    /// Installs `app` into `org` and exchanges its grant code; answers the
    /// installation's authorizations URL and the first token pair.
    pub async fn install_and_exchange(
        &self,
        app: &serde_json::Value,
        org: &str,
    ) -> (String, serde_json::Value) {
        let inst = self
            .admin_post_ok(
                &format!("/api/0/organizations/{org}/sentry-app-installations/"),
                serde_json::json!({"slug": app["slug"]}),
            )
            .await;
        let url = format!(
            "{}/api/0/sentry-app-installations/{}/authorizations/",
            self.base,
            inst["uuid"].as_str().unwrap()
        );
        let res = reqwest::Client::new()
            .post(&url)
            .json(&serde_json::json!({"grant_type": "authorization_code",
                "client_id": app["clientId"], "client_secret": app["clientSecret"],
                "code": inst["code"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "the code exchange");
        (url, res.json().await.unwrap())
    }

    /// [`Node::admin_post`] that must succeed; answers the body.
    pub async fn admin_post_ok(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, out) = self.admin_post(path, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {out}");
        out
    }

    /// Waits (at most 15 s) for a log line containing `text`.
    pub fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(_) => {}
                Err(_) => panic!("rotor never logged {text:?}"),
            }
        }
    }
}

/// `ROTOR_TEST_POSTGRES_URL`. A PostgreSQL case run without it fails: it
/// is never counted as passed. (`.config/nextest.toml` leaves PostgreSQL
/// cases out by default, so a bare `cargo nextest run` reports them as
/// skipped.)
pub fn postgres() -> String {
    std::env::var("ROTOR_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("ROTOR_TEST_POSTGRES_URL is not set: PostgreSQL cases are left out by the default test filter (reported as skipped); scripts/test.sh sets the URL and runs them")
}

/// A URL for a fresh schema of its own on the PostgreSQL at `url`.
pub async fn fresh_schema_url(url: &str) -> String {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}
