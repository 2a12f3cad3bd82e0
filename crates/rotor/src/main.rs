//! `rotor`: the Rotor command. `serve` runs the HTTP server; `migrate` brings
//! a database schema up to date; `apps` and `installs` are the admin API on
//! the command line, working on the database directly.
#![forbid(unsafe_code)]

mod demo;
mod more;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use rotor_core::{ReusePolicy, Secret};
use rotor_server::http::wire;
use rotor_server::service::NewApp;
use rotor_server::startup::{self, Config, Durability};
use rotor_server::webhooks::AddressPolicy;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "rotor",
    version,
    about = "Rotor: a token service for integration platforms"
)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    platform: PlatformArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct DbArgs {
    /// Database URL: sqlite://PATH (a bare path is a SQLite file too) or
    /// postgres://USER@HOST:PORT/DB (needs ROTOR_SECRET_KEY).
    #[arg(
        long,
        env = "ROTOR_DATABASE_URL",
        default_value = "sqlite://rotor.db",
        global = true
    )]
    database_url: String,
    /// SQLite durability: `normal` (WAL, a commit survives a Rotor crash) or
    /// `full` (fsync on every commit, survives power loss too).
    #[arg(
        long,
        value_enum,
        env = "ROTOR_SQLITE_SYNCHRONOUS",
        default_value = "normal",
        global = true
    )]
    synchronous: Sync,
    /// PostgreSQL: most connections this node opens.
    #[arg(
        long,
        env = "ROTOR_PG_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pg_max_connections: u32,
    /// PostgreSQL: milliseconds a request waits for a connection before it is answered 503.
    #[arg(
        long,
        env = "ROTOR_PG_ACQUIRE_TIMEOUT_MS",
        default_value_t = 3000,
        global = true
    )]
    pg_acquire_timeout_ms: u64,
}

/// Settings every command that changes data needs: which scopes exist, and
/// how webhooks the change queues are addressed, sent and retried.
#[derive(Args, Debug, Clone)]
struct PlatformArgs {
    /// The platform's scopes, comma-separated (default: Sentry's scope names).
    #[arg(long = "scopes", env = "ROTOR_SCOPES", global = true)]
    scope_vocabulary: Option<String>,
    /// Internal networks webhooks may be sent to, as comma-separated CIDRs
    /// (loopback, private, link-local, multicast … are refused otherwise).
    #[arg(
        long,
        env = "ROTOR_WEBHOOK_ALLOWED_NETWORKS",
        default_value = "",
        global = true
    )]
    webhook_allowed_networks: String,
    /// Seconds one webhook attempt may take (1 to 60).
    #[arg(
        long,
        env = "ROTOR_WEBHOOK_TIMEOUT_SECONDS",
        default_value_t = 5,
        global = true
    )]
    webhook_timeout_seconds: u64,
    /// Seconds before the first webhook retry (doubling after each failure, with jitter).
    #[arg(
        long,
        env = "ROTOR_WEBHOOK_RETRY_FIRST_SECONDS",
        default_value_t = 10,
        global = true
    )]
    webhook_retry_first_seconds: u64,
    /// Most seconds between two webhook attempts.
    #[arg(
        long,
        env = "ROTOR_WEBHOOK_RETRY_MAX_SECONDS",
        default_value_t = 3600,
        global = true
    )]
    webhook_retry_max_seconds: u64,
    /// Seconds after which a failing webhook is given up (`failed`).
    #[arg(
        long,
        env = "ROTOR_WEBHOOK_GIVE_UP_SECONDS",
        default_value_t = 86_400,
        global = true
    )]
    webhook_give_up_seconds: u64,
    /// Days delivered and failed webhooks stay in the delivery log.
    #[arg(
        long,
        env = "ROTOR_WEBHOOK_RETENTION_DAYS",
        default_value_t = 30,
        global = true
    )]
    webhook_retention_days: u64,
    /// Where identity webhooks (needs re-authorization, re-authorized) go.
    #[arg(long, env = "ROTOR_PLATFORM_WEBHOOK_URL", global = true)]
    platform_webhook_url: Option<String>,
    /// The secret that signs them (HMAC-SHA256).
    #[arg(
        long,
        env = "ROTOR_PLATFORM_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    platform_webhook_secret: Option<String>,
}

impl PlatformArgs {
    /// Checks the values and builds the settings, naming the bad one.
    fn apply(&self, cfg: &mut Config) -> anyhow::Result<()> {
        use anyhow::bail;
        if let Some(list) = &self.scope_vocabulary {
            cfg.scopes = rotor_core::ScopeVocabulary::parse(list)
                .map_err(|e| anyhow::anyhow!("--scopes / ROTOR_SCOPES: {e}"))?;
        }
        let w = &mut cfg.webhooks;
        w.policy = AddressPolicy::parse(&self.webhook_allowed_networks).map_err(|e| {
            anyhow::anyhow!("--webhook-allowed-networks / ROTOR_WEBHOOK_ALLOWED_NETWORKS: {e}")
        })?;
        if !(1..=60).contains(&self.webhook_timeout_seconds) {
            bail!("--webhook-timeout-seconds / ROTOR_WEBHOOK_TIMEOUT_SECONDS must be 1 to 60");
        }
        w.timeout = std::time::Duration::from_secs(self.webhook_timeout_seconds);
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
            bail!("--webhook-retention-days / ROTOR_WEBHOOK_RETENTION_DAYS must be 1 to 3650");
        }
        w.retention = chrono::Duration::days(self.webhook_retention_days as i64);
        let url = self.platform_webhook_url.clone().filter(|u| !u.is_empty());
        let secret = self
            .platform_webhook_secret
            .clone()
            .filter(|s| !s.is_empty());
        if let Some(u) = &url {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {}
                _ => bail!("--platform-webhook-url / ROTOR_PLATFORM_WEBHOOK_URL must be an absolute http(s) URL"),
            }
            if secret.is_none() {
                bail!("ROTOR_PLATFORM_WEBHOOK_URL is set without ROTOR_PLATFORM_WEBHOOK_SECRET: identity webhooks must be signed");
            }
        }
        w.platform_url = url;
        w.platform_secret = secret.map(Secret::new);
        Ok(())
    }
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Sync {
    Normal,
    Full,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP server (runs pending migrations first).
    Serve(ServeArgs),
    /// Run pending database migrations and exit.
    Migrate,
    /// Manage apps.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Manage installations.
    #[command(subcommand)]
    Installs(InstallsCommand),
    /// Upstream providers and identities.
    #[command(subcommand)]
    Upstream(more::UpstreamCommand),
    /// Server keys: generate one, re-seal secrets under the current one.
    #[command(subcommand)]
    Keys(more::KeysCommand),
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ROTOR_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Operator token for the admin API (without one the admin API is closed).
    #[arg(long, env = "ROTOR_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Seed a demo app and installation and print curl commands to try them.
    #[arg(long)]
    demo: bool,
    /// Public base URL of this server (the OAuth issuer); default: from the Host header.
    #[arg(long, env = "ROTOR_PUBLIC_URL")]
    public_url: Option<String>,
    /// Days a refresh token may go unused before it expires.
    #[arg(long, env = "ROTOR_REFRESH_IDLE_DAYS", default_value_t = 30)]
    refresh_idle_days: i64,
    /// Days a token family lives from its grant exchange, however often refreshed.
    #[arg(long, env = "ROTOR_FAMILY_LIFETIME_DAYS", default_value_t = 365)]
    family_lifetime_days: i64,
    /// Seconds a client has to send a request's headers (also how long an
    /// idle keep-alive connection is kept).
    #[arg(long, env = "ROTOR_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10)]
    header_read_timeout_seconds: u64,
    /// Seconds a client has to send a request body.
    #[arg(long, env = "ROTOR_BODY_READ_TIMEOUT_SECONDS", default_value_t = 10)]
    body_read_timeout_seconds: u64,
    /// Seconds one request may take in all; past it the answer is 503.
    #[arg(long, env = "ROTOR_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    request_timeout_seconds: u64,
    /// Largest request head (request line and headers) in bytes.
    #[arg(long, env = "ROTOR_MAX_HEADER_BYTES", default_value_t = 16_384)]
    max_header_bytes: usize,
    /// Most open connections (0: the open-files limit, raised to its hard
    /// maximum at start, less 128 kept free). Past it the oldest idle
    /// connection is closed.
    #[arg(long, env = "ROTOR_MAX_CONNECTIONS", default_value_t = 0)]
    max_connections: usize,
    /// Seconds requests in flight may take to finish after SIGTERM.
    #[arg(long, env = "ROTOR_DRAIN_SECONDS", default_value_t = 10)]
    drain_seconds: u64,
    /// Failed client authentications per client id per window before 429.
    #[arg(long, env = "ROTOR_AUTH_FAILURES_PER_CLIENT", default_value_t = 10)]
    auth_failures_per_client: u32,
    /// Failed authentications (client or admin) per IP per window before 429.
    #[arg(long, env = "ROTOR_AUTH_FAILURES_PER_IP", default_value_t = 50)]
    auth_failures_per_ip: u32,
    /// The failed-authentication window in seconds.
    #[arg(long, env = "ROTOR_AUTH_FAILURE_WINDOW_SECONDS", default_value_t = 60)]
    auth_failure_window_seconds: u64,
    /// Days events and audit records are kept (0 keeps them forever).
    #[arg(long, env = "ROTOR_EVENTS_RETENTION_DAYS", default_value_t = 90)]
    events_retention_days: u64,
    /// Seconds between janitor passes that delete expired rows.
    #[arg(long, env = "ROTOR_JANITOR_INTERVAL_SECONDS", default_value_t = 60)]
    janitor_interval_seconds: u64,
}

#[derive(Subcommand, Debug)]
enum AppsCommand {
    /// Create an app and print it with its client secret (shown only here).
    Create {
        /// Human name; the slug is derived from it.
        #[arg(long)]
        name: String,
        /// A scope, e.g. project:read (repeat for more).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Installation webhook URL.
        #[arg(long)]
        webhook_url: Option<String>,
        /// Where the platform's UI sends a user after installing.
        #[arg(long)]
        redirect_url: Option<String>,
        /// Require installations to be confirmed by the app.
        #[arg(long)]
        verify_install: bool,
        /// Access-token lifetime in seconds.
        #[arg(long)]
        access_token_ttl_seconds: Option<i64>,
        /// Grace window for refresh replay in seconds.
        #[arg(long)]
        refresh_grace_seconds: Option<i64>,
        /// revoke_family or reject.
        #[arg(long)]
        reuse_policy: Option<String>,
    },
    /// List apps (without secrets).
    List,
}

#[derive(Subcommand, Debug)]
enum InstallsCommand {
    /// Install an app into an organization and print the grant code.
    Create {
        /// Organization slug.
        #[arg(long)]
        org: String,
        /// App slug.
        #[arg(long)]
        app: String,
    },
    /// Delete an installation; its tokens stop working at once.
    Delete {
        /// Installation uuid.
        uuid: String,
    },
}

fn config(
    db: &DbArgs,
    platform: &PlatformArgs,
    admin_token: Option<String>,
) -> anyhow::Result<Config> {
    let env_secret = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret::new)
    };
    let mut cfg = Config {
        admin_token: admin_token.filter(|t| !t.is_empty()).map(Secret::new),
        secret_key: env_secret("ROTOR_SECRET_KEY"),
        old_secret_keys: env_secret("ROTOR_SECRET_KEYS_OLD"),
        durability: match db.synchronous {
            Sync::Normal => Durability::Normal,
            Sync::Full => Durability::Full,
        },
        pg_max_connections: db.pg_max_connections,
        pg_acquire_timeout: std::time::Duration::from_millis(db.pg_acquire_timeout_ms),
        // Only `serve` and `migrate` create a database.
        create_database: false,
        ..Config::new(db.database_url.clone())
    };
    platform.apply(&mut cfg)?;
    Ok(cfg)
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("ROTOR_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

/// Prints a JSON answer for the operator.
pub(crate) fn print(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(ref args) => serve(&cli, args).await,
        Command::Migrate => {
            let cfg = Config {
                create_database: true,
                ..config(&cli.db, &cli.platform, None)?
            };
            startup::open_store(&cfg).await?;
            eprintln!(
                "migrations are up to date ({})",
                startup::describe_database(&cli.db.database_url)
            );
            Ok(())
        }
        Command::Apps(cmd) => {
            let state = startup::build_default(&config(&cli.db, &cli.platform, None)?).await?;
            let svc = &state.service;
            match cmd {
                AppsCommand::Create {
                    name,
                    scopes,
                    webhook_url,
                    redirect_url,
                    verify_install,
                    access_token_ttl_seconds,
                    refresh_grace_seconds,
                    reuse_policy,
                } => {
                    let reuse_policy = reuse_policy
                        .map(|p| {
                            ReusePolicy::parse(&p)
                                .context("--reuse-policy must be revoke_family or reject")
                        })
                        .transpose()?;
                    let created = svc
                        .create_app(NewApp {
                            name,
                            scopes,
                            webhook_url,
                            redirect_url,
                            verify_install,
                            access_token_ttl_seconds,
                            refresh_grace_seconds,
                            reuse_policy,
                        })
                        .await?;
                    let mut out = wire::app(&created.app);
                    out["clientSecret"] = json!(created.client_secret.expose());
                    print(&out);
                }
                AppsCommand::List => {
                    let apps = svc.list_apps().await?;
                    print(&json!(apps.iter().map(wire::app).collect::<Vec<_>>()));
                }
            }
            Ok(())
        }
        Command::Upstream(cmd) => {
            let state = startup::build_default(&config(&cli.db, &cli.platform, None)?).await?;
            more::upstream(&state.service, cmd).await
        }
        Command::Keys(more::KeysCommand::Generate) => {
            more::keys(None, more::KeysCommand::Generate).await
        }
        Command::Keys(cmd) => {
            let state = startup::build_default(&config(&cli.db, &cli.platform, None)?).await?;
            more::keys(Some(&state.service), cmd).await
        }
        Command::Installs(cmd) => {
            let state = startup::build_default(&config(&cli.db, &cli.platform, None)?).await?;
            let svc = &state.service;
            match cmd {
                InstallsCommand::Create { org, app } => {
                    let created = svc.create_installation(&org, &app, None).await?;
                    let mut out = wire::installation(&created.installation);
                    out["code"] = json!(created.code.expose());
                    if let Some(to) = created.redirect_to {
                        out["redirectTo"] = json!(to);
                    }
                    print(&out);
                }
                InstallsCommand::Delete { uuid } => {
                    svc.delete_installation(&uuid, None).await?;
                    eprintln!("installation {uuid} deleted");
                }
            }
            Ok(())
        }
    }
}

async fn serve(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let db = &cli.db;
    let mut admin_token = args.admin_token.clone();
    if args.demo && admin_token.as_deref().is_none_or(str::is_empty) {
        admin_token = Some(
            rotor_core::Token::generate(rotor_core::TokenKind::ClientSecret)
                .expose()
                .replacen("rtr_cs_", "rtr_admin_", 1),
        );
    }
    if args.refresh_idle_days < 1
        || args.family_lifetime_days < args.refresh_idle_days
        || args.family_lifetime_days > 36_500
    {
        anyhow::bail!("need 1 <= --refresh-idle-days <= --family-lifetime-days <= 36500");
    }
    if args.events_retention_days > 36_500 {
        anyhow::bail!("--events-retention-days / ROTOR_EVENTS_RETENTION_DAYS must be 0 (keep forever) to 36500");
    }
    let secs = |name: &str, v: u64, max: u64| -> anyhow::Result<std::time::Duration> {
        if !(1..=max).contains(&v) {
            anyhow::bail!("{name} must be 1 to {max} seconds");
        }
        Ok(std::time::Duration::from_secs(v))
    };
    if !(1024..=1024 * 1024).contains(&args.max_header_bytes) {
        anyhow::bail!("--max-header-bytes / ROTOR_MAX_HEADER_BYTES must be 1024 to 1048576");
    }
    if args.auth_failures_per_client < 1 || args.auth_failures_per_ip < 1 {
        anyhow::bail!("--auth-failures-per-client and --auth-failures-per-ip must be at least 1");
    }
    let cfg = Config {
        throttle: rotor_server::service::ThrottleSettings {
            per_client: args.auth_failures_per_client,
            per_ip: args.auth_failures_per_ip,
            window: chrono::Duration::seconds(
                secs(
                    "--auth-failure-window-seconds",
                    args.auth_failure_window_seconds,
                    86_400,
                )?
                .as_secs() as i64,
            ),
        },
        deadlines: rotor_server::http::Deadlines {
            body_read: secs(
                "--body-read-timeout-seconds",
                args.body_read_timeout_seconds,
                3600,
            )?,
            request: secs(
                "--request-timeout-seconds",
                args.request_timeout_seconds,
                3600,
            )?,
        },
        connections: rotor_server::connections::ConnectionLimits {
            header_read_timeout: secs(
                "--header-read-timeout-seconds",
                args.header_read_timeout_seconds,
                3600,
            )?,
            max_header_bytes: args.max_header_bytes,
            max_connections: (args.max_connections > 0).then_some(args.max_connections),
            drain_deadline: secs("--drain-seconds", args.drain_seconds, 3600)?,
        },
        events_retention: (args.events_retention_days > 0)
            .then(|| chrono::Duration::days(args.events_retention_days as i64)),
        public_url: args.public_url.clone(),
        lifetimes: rotor_core::Lifetimes {
            refresh_idle: chrono::Duration::days(args.refresh_idle_days),
            family_absolute: chrono::Duration::days(args.family_lifetime_days),
        },
        create_database: true,
        ..config(db, &cli.platform, admin_token.clone())?
    };
    if cfg
        .admin_token
        .as_ref()
        .is_some_and(|t| t.expose().len() < 32)
    {
        tracing::warn!(
            "the admin token is shorter than 32 characters: anyone who can reach the admin API \
             can guess it; use `rotor keys generate` for one"
        );
    }
    let state = startup::build_default(&cfg).await?;
    let mut background = startup::Background::new();
    background.janitor(
        state.service.clone(),
        std::time::Duration::from_secs(args.janitor_interval_seconds.max(1)),
    );
    background.upstream_refresher(state.service.clone(), std::time::Duration::from_secs(30));
    background.webhook_worker(state.service.clone())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %startup::describe_database(&db.database_url), admin_api = cfg.admin_token.is_some(), "rotor listening");
    if args.demo {
        demo::seed_and_print(&state.service, addr, admin_token.as_deref()).await?;
    }
    let state = Arc::new(state);
    startup::serve_with(
        listener,
        (*state).clone(),
        cfg.connections,
        startup::shutdown_signal(),
    )
    .await?;
    // Requests are done (or cut at the drain deadline): stop the jobs
    // (a webhook attempt in flight ends within its timeout), then commit
    // what the store has queued and close it.
    background.stop().await;
    state.service.store.close().await;
    tracing::info!("stopped");
    Ok(())
}
