//! One configuration: every setting of `rotor` has a default, a flag
//! (`--webhook-timeout-seconds`), an environment variable
//! (`ROTOR_WEBHOOK_TIMEOUT_SECONDS`) and a key in the TOML file named by
//! `--config` / `ROTOR_CONFIG` (`webhook_timeout_seconds`): the three names
//! are the same name. Precedence: flag > environment > file > default.
//!
//! The layering is figment's; this module adds what figment leaves to its
//! user: which layer each value came from (for `rotor config show`), an
//! unknown key named as such, and the checks that turn [`Settings`] into the
//! server's typed [`Config`], each error naming the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Parser, ValueEnum};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use rotor_core::Secret;
use rotor_server::startup::{Config, Durability};
use rotor_server::webhooks::AddressPolicy;
use serde::{Deserialize, Deserializer, Serialize};

/// The prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "ROTOR_";

/// A setting that is a secret: `Debug` and `rotor config show` print
/// `[redacted]`. It serializes as its value only so that figment can layer
/// it; nothing else serializes a `Settings`.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Redacted {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl Serialize for Redacted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Redacted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Lenient::deserialize(d).map(|l| Self(l.0))
    }
}

impl Redacted {
    /// The value as a [`Secret`], `None` when empty.
    fn secret(this: &Option<Self>) -> Option<Secret> {
        this.as_ref()
            .filter(|r| !r.0.is_empty())
            .map(|r| Secret::new(r.0.clone()))
    }
}

/// A string setting. figment reads `ROTOR_ADMIN_TOKEN=12345` as a number and
/// `ROTOR_PUBLIC_URL=true` as a bool; a string setting takes either as text.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_u64<E>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
}

/// A string read by [`lenient_string`], for `Option` settings.
struct Lenient(String);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient_string(d).map(Self)
    }
}

/// An optional string setting, read as leniently.
fn lenient_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Lenient>::deserialize(d)?.map(|l| l.0))
}

/// SQLite's `synchronous` level.
#[derive(ValueEnum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Sync {
    /// WAL; a commit survives a crash of Rotor.
    Normal,
    /// fsync on every commit; a commit survives power loss too.
    Full,
}

/// Log line format.
#[derive(ValueEnum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting. The doc comment of a field is its `--help` text; the
/// field name is the file key, the flag (with dashes) and, upper-cased after
/// `ROTOR_`, the environment variable. `docs/CONFIGURATION.md` lists them,
/// and a test checks that list against this struct.
#[derive(Args, Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Database URL: sqlite://PATH (a bare path is a SQLite file too) or
    /// postgres://USER@HOST:PORT/DB (needs a secret_key).
    #[arg(long, default_value = "sqlite://rotor.db", global = true)]
    #[serde(deserialize_with = "lenient_string")]
    pub database_url: String,
    /// SQLite durability: normal (WAL, a commit survives a Rotor crash) or
    /// full (fsync on every commit, survives power loss too).
    #[arg(
        long,
        value_enum,
        default_value = "normal",
        global = true,
        alias = "synchronous"
    )]
    pub sqlite_synchronous: Sync,
    /// PostgreSQL: most connections this node opens.
    #[arg(long, default_value_t = 16, global = true)]
    pub pg_max_connections: u32,
    /// PostgreSQL: milliseconds a request waits for a connection before 503.
    #[arg(long, default_value_t = 3000, global = true)]
    pub pg_acquire_timeout_ms: u64,
    /// The server key: 32 bytes, standard base64 (`rotor keys generate`).
    /// Unset: a key file <database>.key beside a SQLite file.
    #[arg(long, global = true)]
    pub secret_key: Option<Redacted>,
    /// Older server keys still needed to open stored values, comma-separated.
    #[arg(long, global = true)]
    pub secret_keys_old: Option<Redacted>,
    /// Address the API listens on.
    #[arg(long, default_value = "127.0.0.1:8080", global = true)]
    pub listen: SocketAddr,
    /// Address of the management listener (/metrics, /healthz, /readyz), or
    /// `off`.
    #[arg(long, default_value = "127.0.0.1:9000", global = true)]
    #[serde(deserialize_with = "lenient_string")]
    pub management_listen: String,
    /// Operator token for the admin API (unset: the admin API is closed).
    #[arg(long, global = true)]
    pub admin_token: Option<Redacted>,
    /// Public base URL of this server (the OAuth issuer); unset: from the
    /// Host header.
    #[arg(long, global = true)]
    #[serde(default, deserialize_with = "lenient_opt")]
    pub public_url: Option<String>,
    /// Proxies (comma-separated CIDRs) whose X-Forwarded-For / Forwarded
    /// header names the client; from any other peer the socket address is
    /// the client.
    #[arg(long, default_value = "", global = true)]
    #[serde(deserialize_with = "lenient_string")]
    pub trusted_proxies: String,
    /// Days a refresh token may go unused before it expires.
    #[arg(long, default_value_t = 30, global = true)]
    pub refresh_idle_days: i64,
    /// Days a token family lives from its grant exchange, however often
    /// refreshed.
    #[arg(long, default_value_t = 365, global = true)]
    pub family_lifetime_days: i64,
    /// The platform's scopes, comma-separated (unset: Sentry's scope names).
    #[arg(long, global = true)]
    #[serde(default, deserialize_with = "lenient_opt")]
    pub scopes: Option<String>,
    /// Seconds a client has to send a request's headers (also how long an
    /// idle keep-alive connection is kept).
    #[arg(long, default_value_t = 10, global = true)]
    pub header_read_timeout_seconds: u64,
    /// Seconds a client has to send a request body.
    #[arg(long, default_value_t = 10, global = true)]
    pub body_read_timeout_seconds: u64,
    /// Seconds one request may take in all; past it the answer is 503.
    #[arg(long, default_value_t = 30, global = true)]
    pub request_timeout_seconds: u64,
    /// Largest request head (request line and headers) in bytes.
    #[arg(long, default_value_t = 16_384, global = true)]
    pub max_header_bytes: usize,
    /// Most open connections (0: the open-files limit, raised to its hard
    /// maximum at start, less 128). Past it the oldest idle connection is
    /// closed.
    #[arg(long, default_value_t = 0, global = true)]
    pub max_connections: usize,
    /// Seconds requests in flight may take to finish after SIGTERM.
    #[arg(long, default_value_t = 10, global = true)]
    pub drain_seconds: u64,
    /// Failed client authentications per client id per window before 429.
    #[arg(long, default_value_t = 10, global = true)]
    pub auth_failures_per_client: u32,
    /// Failed authentications (client or admin) per IP per window before 429.
    #[arg(long, default_value_t = 50, global = true)]
    pub auth_failures_per_ip: u32,
    /// The failed-authentication window in seconds.
    #[arg(long, default_value_t = 60, global = true)]
    pub auth_failure_window_seconds: u64,
    /// Seconds one request to an upstream provider may take.
    #[arg(long, default_value_t = 20, global = true)]
    pub upstream_timeout_seconds: u64,
    /// Internal networks webhooks may be sent to, as comma-separated CIDRs
    /// (loopback, private, link-local, multicast … are refused otherwise).
    #[arg(long, default_value = "", global = true)]
    #[serde(deserialize_with = "lenient_string")]
    pub webhook_allowed_networks: String,
    /// Seconds one webhook attempt may take (1 to 60).
    #[arg(long, default_value_t = 5, global = true)]
    pub webhook_timeout_seconds: u64,
    /// Seconds before the first webhook retry (doubling after each failure,
    /// with jitter).
    #[arg(long, default_value_t = 10, global = true)]
    pub webhook_retry_first_seconds: u64,
    /// Most seconds between two webhook attempts.
    #[arg(long, default_value_t = 3600, global = true)]
    pub webhook_retry_max_seconds: u64,
    /// Seconds after which a failing webhook is given up (`failed`).
    #[arg(long, default_value_t = 86_400, global = true)]
    pub webhook_give_up_seconds: u64,
    /// Days delivered and failed webhooks stay in the delivery log.
    #[arg(long, default_value_t = 30, global = true)]
    pub webhook_retention_days: u64,
    /// Where identity webhooks (needs re-authorization, re-authorized) go.
    #[arg(long, global = true)]
    #[serde(default, deserialize_with = "lenient_opt")]
    pub platform_webhook_url: Option<String>,
    /// The secret that signs identity webhooks (HMAC-SHA256).
    #[arg(long, global = true)]
    pub platform_webhook_secret: Option<Redacted>,
    /// Days events and audit records are kept (0 keeps them forever).
    #[arg(long, default_value_t = 90, global = true)]
    pub events_retention_days: u64,
    /// Seconds between janitor passes that delete expired rows.
    #[arg(long, default_value_t = 60, global = true)]
    pub janitor_interval_seconds: u64,
    /// Log format: text or json. The filter is the standard RUST_LOG.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

/// Parses nothing but the settings, for their defaults.
#[derive(Parser, Debug)]
struct DefaultsOnly {
    #[command(flatten)]
    settings: Settings,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// The environment variable.
    Env(String),
    /// The command-line flag.
    Flag(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Env(v) => write!(f, "environment {v}"),
            Origin::Flag(v) => write!(f, "flag {v}"),
        }
    }
}

/// The settings in effect and where each came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The values.
    pub settings: Settings,
    /// Each key's origin.
    pub origins: BTreeMap<String, Origin>,
}

/// The names of a setting: file key, flag, environment variable.
pub fn flag_of(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// The environment variable of a setting.
pub fn env_of(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_uppercase())
}

/// The keys that are secrets.
pub const SECRET_KEYS: &[&str] = &[
    "secret_key",
    "secret_keys_old",
    "admin_token",
    "platform_webhook_secret",
];

impl Settings {
    /// The built-in defaults.
    pub fn defaults() -> Self {
        DefaultsOnly::parse_from(["rotor"]).settings
    }

    /// Every key, in declaration order.
    pub fn keys() -> Vec<String> {
        use clap::CommandFactory;
        DefaultsOnly::command()
            .get_arguments()
            .map(|a| a.get_id().as_str().to_owned())
            .filter(|id| id != "help")
            .collect()
    }

    /// Each key's value as `rotor config show` prints it: TOML, secrets
    /// redacted, `None` for an unset optional setting.
    pub fn display_values(&self) -> BTreeMap<String, Option<String>> {
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut out = BTreeMap::new();
        for key in Self::keys() {
            let shown = match value.get(&key) {
                None | Some(serde_json::Value::Null) => None,
                Some(_) if SECRET_KEYS.contains(&key.as_str()) => Some("\"[redacted]\"".to_owned()),
                Some(serde_json::Value::String(s)) => Some(format!("{s:?}")),
                Some(v) => Some(v.to_string()),
            };
            out.insert(key, shown);
        }
        out
    }
}

/// Layers defaults, the file, the environment and the flags given on the
/// command line (`matches` says which were given; `parsed` holds their values).
pub fn resolve(
    parsed: &Settings,
    matches: &ArgMatches,
    file: Option<&Path>,
) -> anyhow::Result<Resolved> {
    let keys = Settings::keys();
    let mut origins: BTreeMap<String, Origin> =
        keys.iter().map(|k| (k.clone(), Origin::Default)).collect();
    let mut figment = Figment::from(Serialized::defaults(Settings::defaults()));
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        for key in table.keys() {
            if !keys.contains(key) {
                bail!(
                    "unknown setting `{key}` in {} (docs/CONFIGURATION.md lists every setting)",
                    path.display()
                );
            }
            origins.insert(key.clone(), Origin::File(path.to_owned()));
        }
        figment = figment.merge(Toml::string(&text));
    }
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    for key in &keys {
        if std::env::var_os(env_of(key)).is_some() {
            origins.insert(key.clone(), Origin::Env(env_of(key)));
        }
    }
    figment = figment.merge(Env::prefixed(ENV_PREFIX).only(&key_refs));
    let given = serde_json::to_value(parsed).context("reading the command line")?;
    let mut flags = serde_json::Map::new();
    for key in &keys {
        if matches.value_source(key) == Some(ValueSource::CommandLine) {
            if let Some(v) = given.get(key) {
                flags.insert(key.clone(), v.clone());
            }
            origins.insert(key.clone(), Origin::Flag(flag_of(key)));
        }
    }
    figment = figment.merge(Serialized::defaults(serde_json::Value::Object(flags)));
    let settings: Settings = figment.extract().map_err(|e| {
        let key = e.path.join(".");
        let from = origins
            .get(&key)
            .map(ToString::to_string)
            .unwrap_or_else(|| "the configuration".into());
        anyhow!("setting `{key}` ({from}): {}", e.kind)
    })?;
    Ok(Resolved { settings, origins })
}

/// An error about one setting, naming all its names.
fn bad(key: &str, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{} / {} / `{key}`: {msg}", flag_of(key), env_of(key))
}

fn seconds(key: &str, v: u64, max: u64) -> anyhow::Result<std::time::Duration> {
    if !(1..=max).contains(&v) {
        return Err(bad(key, format!("must be 1 to {max} seconds")));
    }
    Ok(std::time::Duration::from_secs(v))
}

/// The management listener's address, `None` when `off`.
pub fn management_listen(s: &Settings) -> anyhow::Result<Option<SocketAddr>> {
    match s.management_listen.trim() {
        "off" | "" => Ok(None),
        a => a.parse().map(Some).map_err(|_| {
            bad(
                "management_listen",
                "must be an address such as 127.0.0.1:9000, or off",
            )
        }),
    }
}

impl Settings {
    /// Checks every value and builds the server's configuration. Commands
    /// other than `serve` and `migrate` never create a database.
    pub fn to_config(&self) -> anyhow::Result<Config> {
        let mut cfg = Config {
            admin_token: Redacted::secret(&self.admin_token),
            secret_key: Redacted::secret(&self.secret_key),
            old_secret_keys: Redacted::secret(&self.secret_keys_old),
            durability: match self.sqlite_synchronous {
                Sync::Normal => Durability::Normal,
                Sync::Full => Durability::Full,
            },
            pg_max_connections: self.pg_max_connections,
            pg_acquire_timeout: std::time::Duration::from_millis(self.pg_acquire_timeout_ms),
            create_database: false,
            public_url: self.public_url.clone().filter(|u| !u.is_empty()),
            ..Config::new(self.database_url.clone())
        };
        if self.pg_max_connections < 1 {
            return Err(bad("pg_max_connections", "must be at least 1"));
        }
        if let Some(u) = &cfg.public_url {
            if !url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https")) {
                return Err(bad("public_url", "must be an absolute http(s) URL"));
            }
        }
        if let Some(list) = &self.scopes {
            cfg.scopes = rotor_core::ScopeVocabulary::parse(list).map_err(|e| bad("scopes", e))?;
        }
        cfg.trusted_proxies =
            rotor_server::http::client_ip::TrustedProxies::parse(&self.trusted_proxies)
                .map_err(|e| bad("trusted_proxies", e))?;
        cfg.upstream_timeout = seconds(
            "upstream_timeout_seconds",
            self.upstream_timeout_seconds,
            600,
        )?;
        self.webhooks(&mut cfg)?;
        if self.refresh_idle_days < 1
            || self.family_lifetime_days < self.refresh_idle_days
            || self.family_lifetime_days > 36_500
        {
            bail!("need 1 <= --refresh-idle-days <= --family-lifetime-days <= 36500");
        }
        cfg.lifetimes = rotor_core::Lifetimes {
            refresh_idle: chrono::Duration::days(self.refresh_idle_days),
            family_absolute: chrono::Duration::days(self.family_lifetime_days),
        };
        if self.events_retention_days > 36_500 {
            return Err(bad(
                "events_retention_days",
                "must be 0 (keep forever) to 36500",
            ));
        }
        cfg.events_retention = (self.events_retention_days > 0)
            .then(|| chrono::Duration::days(self.events_retention_days as i64));
        if !(1024..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err(bad("max_header_bytes", "must be 1024 to 1048576"));
        }
        if self.auth_failures_per_client < 1 {
            return Err(bad("auth_failures_per_client", "must be at least 1"));
        }
        if self.auth_failures_per_ip < 1 {
            return Err(bad("auth_failures_per_ip", "must be at least 1"));
        }
        cfg.throttle = rotor_server::service::ThrottleSettings {
            per_client: self.auth_failures_per_client,
            per_ip: self.auth_failures_per_ip,
            window: chrono::Duration::seconds(
                seconds(
                    "auth_failure_window_seconds",
                    self.auth_failure_window_seconds,
                    86_400,
                )?
                .as_secs() as i64,
            ),
        };
        cfg.deadlines = rotor_server::http::Deadlines {
            body_read: seconds(
                "body_read_timeout_seconds",
                self.body_read_timeout_seconds,
                3600,
            )?,
            request: seconds(
                "request_timeout_seconds",
                self.request_timeout_seconds,
                3600,
            )?,
        };
        cfg.connections = rotor_server::connections::ConnectionLimits {
            header_read_timeout: seconds(
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
                3600,
            )?,
            max_header_bytes: self.max_header_bytes,
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
            drain_deadline: seconds("drain_seconds", self.drain_seconds, 3600)?,
        };
        seconds(
            "janitor_interval_seconds",
            self.janitor_interval_seconds,
            86_400,
        )?;
        management_listen(self)?;
        Ok(cfg)
    }

    fn webhooks(&self, cfg: &mut Config) -> anyhow::Result<()> {
        let w = &mut cfg.webhooks;
        w.policy = AddressPolicy::parse(&self.webhook_allowed_networks)
            .map_err(|e| bad("webhook_allowed_networks", e))?;
        w.timeout = seconds("webhook_timeout_seconds", self.webhook_timeout_seconds, 60)?;
        let (first, max, give_up) = (
            self.webhook_retry_first_seconds,
            self.webhook_retry_max_seconds,
            self.webhook_give_up_seconds,
        );
        if first < 1 || first > max || max > 86_400 || give_up < first || give_up > 30 * 86_400 {
            bail!(
                "webhook retries need 1 <= --webhook-retry-first-seconds <= \
                 --webhook-retry-max-seconds <= 86400 and --webhook-retry-first-seconds <= \
                 --webhook-give-up-seconds <= 2592000 (30 days)"
            );
        }
        let secs = |s: u64| chrono::Duration::seconds(s as i64);
        w.retry = rotor_core::RetryPolicy {
            first: secs(first),
            max: secs(max),
            give_up_after: secs(give_up),
        };
        if !(1..=3650).contains(&self.webhook_retention_days) {
            return Err(bad("webhook_retention_days", "must be 1 to 3650"));
        }
        w.retention = chrono::Duration::days(self.webhook_retention_days as i64);
        let url = self.platform_webhook_url.clone().filter(|u| !u.is_empty());
        let secret = Redacted::secret(&self.platform_webhook_secret);
        if let Some(u) = &url {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {}
                _ => {
                    return Err(bad(
                        "platform_webhook_url",
                        "must be an absolute http(s) URL",
                    ))
                }
            }
            if secret.is_none() {
                return Err(bad(
                    "platform_webhook_secret",
                    "platform_webhook_url is set without it: identity webhooks must be signed",
                ));
            }
        }
        w.platform_url = url;
        w.platform_secret = secret;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `docs/CONFIGURATION.md` has one table row per setting, in the form
    /// ``| `key` | `--flag` | `ROTOR_KEY` | default | what it does |``, and the
    /// default it gives is the code's. A setting added, renamed or given a
    /// new default without the reference fails here.
    #[test]
    fn the_settings_reference_matches_the_code() {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIGURATION.md"),
        )
        .unwrap();
        let mut rows = BTreeMap::new();
        let section = doc.split("\n## Settings\n").nth(1).unwrap();
        let section = section.split("\n## ").next().unwrap();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
            let key = cells[0]
                .trim_start_matches("| ")
                .trim_matches('`')
                .to_owned();
            if key == "config" {
                continue;
            }
            assert_eq!(cells[1], format!("`{}`", flag_of(&key)), "flag of {key}");
            assert_eq!(cells[2], format!("`{}`", env_of(&key)), "env of {key}");
            rows.insert(key, cells[3].to_owned());
        }
        let values = Settings::defaults().display_values();
        let documented: Vec<&String> = rows.keys().collect();
        let coded: Vec<&String> = values.keys().collect();
        assert_eq!(
            documented, coded,
            "settings in docs/CONFIGURATION.md vs the code"
        );
        for (key, shown) in values {
            let want = match shown {
                None => "unset".to_owned(),
                Some(v) if v == "\"\"" => "empty".to_owned(),
                Some(v) => format!("`{}`", v.trim_matches('"')),
            };
            assert_eq!(
                rows[&key], want,
                "default of {key} in docs/CONFIGURATION.md"
            );
        }
    }

    #[test]
    fn every_default_is_valid() {
        Settings::defaults().to_config().unwrap();
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut s = Settings::defaults();
        s.admin_token = Some(Redacted("tok-very-secret".into()));
        assert!(!format!("{s:?}").contains("very-secret"));
        let shown = s.display_values();
        assert_eq!(shown["admin_token"].as_deref(), Some("\"[redacted]\""));
    }
}
