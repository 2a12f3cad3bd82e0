//! `rotor`: the Rotor command. `serve` runs the HTTP server; `migrate` brings
//! a database schema up to date; `apps` and `installs` are the admin API on
//! the command line, working on the database directly.
#![forbid(unsafe_code)]

mod demo;
mod keys_cmd;
mod observability;
mod output;
mod settings;
mod upstream_cmd;

use std::sync::Arc;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use rotor_core::{ReusePolicy, Secret};
use rotor_server::http::wire;
use rotor_server::service::NewApp;
use rotor_server::startup::{self, Config};
use settings::Settings;

#[derive(Parser, Debug)]
#[command(
    name = "rotor",
    version,
    about = "Rotor: a token service for integration platforms"
)]
struct Cli {
    /// A TOML file with settings (keys as in docs/CONFIGURATION.md); flags
    /// and ROTOR_* environment variables override it.
    #[arg(long, env = "ROTOR_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    /// How admin commands print answers: a table, or the API's JSON.
    #[arg(long, value_enum, default_value = "table", global = true)]
    output: output::Output,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
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
    Upstream(upstream_cmd::UpstreamCommand),
    /// Server keys: generate one, re-seal secrets under the current one.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// The configuration in effect.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Events and audit records, newest first.
    Events {
        /// Only this installation's (uuid).
        #[arg(long)]
        installation: Option<String>,
        /// Only this upstream identity's (id).
        #[arg(long)]
        identity: Option<String>,
        /// Only this type, e.g. refresh_token_reused.
        #[arg(long = "type", value_parser = parse_event_kind)]
        kind: Option<rotor_core::EventKind>,
        /// Most to print (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only events older than this id (the last one printed).
        #[arg(long)]
        before: Option<i64>,
    },
    /// Issued tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Print the HTTP API's OpenAPI 3.1 document (as served at
    /// /api/openapi.json and kept in docs/openapi.json).
    Openapi,
    /// Copy the live SQLite database to FILE (one consistent snapshot, while
    /// Rotor serves). PostgreSQL: use pg_dump (the README says how).
    Backup {
        /// Where to write the copy; must not exist.
        file: std::path::PathBuf,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Seed a demo app and installation and print curl commands to try them.
    #[arg(long)]
    demo: bool,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the settings in effect and where each came from (file,
    /// environment, flag or default); secrets are redacted.
    Show,
}

#[derive(Subcommand, Debug)]
enum AppsCommand {
    /// Create an app and print it with its client secret (shown only here).
    Create {
        /// Human name; the slug is derived from it.
        #[arg(long)]
        name: String,
        /// A scope, e.g. project:read (repeat for more).
        #[arg(long = "scope", id = "scope")]
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
    /// Show one app (without its secret).
    Show {
        /// App slug.
        slug: String,
    },
    /// Change an app's settings (only those given).
    Update {
        /// App slug.
        slug: String,
        /// New name (the slug stays).
        #[arg(long)]
        name: Option<String>,
        /// The new scopes, replacing the old (repeat for more).
        #[arg(long = "scope", id = "scope")]
        scopes: Option<Vec<String>>,
        /// New webhook URL ("" clears it).
        #[arg(long)]
        webhook_url: Option<String>,
        /// New redirect URL ("" clears it).
        #[arg(long)]
        redirect_url: Option<String>,
        /// Require installations to be confirmed by the app.
        #[arg(long)]
        verify_install: Option<bool>,
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
    /// Replace an app's client secret and print the new one (shown only here).
    RotateSecret {
        /// App slug.
        slug: String,
    },
    /// Delete an app; refused while it is installed unless --force, which
    /// uninstalls it everywhere first.
    Delete {
        /// App slug.
        slug: String,
        /// Uninstall it from every organization first.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum TokensCommand {
    /// Revoke the family of an access or refresh token: every pair
    /// descended from the same grant stops working at once.
    Revoke {
        /// The token (read from ROTOR_REVOKE_TOKEN when not given, to keep
        /// it out of the shell history).
        #[arg(env = "ROTOR_REVOKE_TOKEN", hide_env_values = true)]
        token: String,
    },
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
    /// List live installations, of one organization or one app.
    List {
        /// Only this organization's.
        #[arg(long)]
        org: Option<String>,
        /// Only this app's (slug).
        #[arg(long)]
        app: Option<String>,
        /// Most to print.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Where to start: the cursor the previous page printed.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one installation.
    Show {
        /// Installation uuid.
        uuid: String,
    },
}

/// `--type`: one of the event kinds.
fn parse_event_kind(s: &str) -> Result<rotor_core::EventKind, String> {
    rotor_core::EventKind::parse(s).ok_or_else(|| {
        format!(
            "not an event type; one of {}",
            rotor_core::EventKind::names()
        )
    })
}

/// Prints a JSON answer for the operator.
pub(crate) fn print<T: serde::Serialize>(v: &T) {
    output::print(v);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    let resolved = settings::resolve(&cli.settings, &matches, cli.config.as_deref())?;
    output::set(cli.output);
    // Flushes exported spans when main returns.
    let _traces = observability::init(resolved.settings.log_format)?;
    let settings = &resolved.settings;
    let config = || settings.to_config();
    match cli.command {
        Command::Serve(ref args) => serve(settings, args).await,
        Command::Backup { ref file } => backup(&config()?, file),
        Command::Openapi => {
            print!("{}", rotor_server::http::openapi::document_json());
            Ok(())
        }
        Command::Events {
            installation,
            identity,
            kind,
            limit,
            before,
        } => {
            check_limit(limit)?;
            let installation_id = installation
                .map(|i| parse_uuid("--installation", &i))
                .transpose()?;
            let state = startup::build_default(&config()?).await?;
            let events = state
                .service
                .events(rotor_core::EventFilter {
                    installation_id,
                    identity_id: identity,
                    kind,
                    limit,
                    before,
                })
                .await?;
            print(&events.iter().map(wire::Event::from).collect::<Vec<_>>());
            Ok(())
        }
        Command::Tokens(TokensCommand::Revoke { token }) => {
            let state = startup::build_default(&config()?).await?;
            let revoked = state.service.revoke_as_operator(token.trim()).await?;
            if !revoked {
                anyhow::bail!("no issued token matches: nothing was revoked");
            }
            eprintln!(
                "the token's family is revoked: every pair descended from its grant stops working"
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Show) => {
            config()?;
            show_config(&resolved);
            Ok(())
        }
        Command::Migrate => {
            let cfg = Config {
                create_database: true,
                ..config()?
            };
            startup::open_store(&cfg).await?;
            eprintln!(
                "migrations are up to date ({})",
                startup::describe_database(&settings.database_url)
            );
            Ok(())
        }
        Command::Apps(cmd) => {
            let state = startup::build_default(&config()?).await?;
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
                    let reuse_policy = reuse_policy_arg(reuse_policy)?;
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
                    print(&wire::CreatedApp {
                        app: (&created.app).into(),
                        client_secret: created.client_secret.expose().into(),
                    });
                }
                AppsCommand::List => {
                    let apps = svc.list_apps().await?;
                    print(&apps.iter().map(wire::App::from).collect::<Vec<_>>());
                }
                AppsCommand::Show { slug } => print(&wire::App::from(&svc.app(&slug).await?)),
                AppsCommand::Update {
                    slug,
                    name,
                    scopes,
                    webhook_url,
                    redirect_url,
                    verify_install,
                    access_token_ttl_seconds,
                    refresh_grace_seconds,
                    reuse_policy,
                } => {
                    let clearable =
                        |v: Option<String>| v.map(|u| Some(u).filter(|u| !u.is_empty()));
                    let app = svc
                        .update_app(
                            &slug,
                            rotor_server::service::AppPatch {
                                name,
                                scopes,
                                webhook_url: clearable(webhook_url),
                                redirect_url: clearable(redirect_url),
                                verify_install,
                                access_token_ttl_seconds,
                                refresh_grace_seconds,
                                reuse_policy: reuse_policy_arg(reuse_policy)?,
                            },
                        )
                        .await?;
                    print(&wire::App::from(&app));
                }
                AppsCommand::RotateSecret { slug } => {
                    let secret = svc.rotate_secret(&slug).await?;
                    print(&wire::ClientSecret {
                        client_secret: secret.expose().into(),
                    });
                }
                AppsCommand::Delete { slug, force } => {
                    let live = if force {
                        rotor_server::service::WhileInstalled::Uninstall
                    } else {
                        rotor_server::service::WhileInstalled::Refuse
                    };
                    let uninstalled = svc.delete_app(&slug, live).await?;
                    eprintln!("app {slug} deleted ({uninstalled} installation(s) uninstalled)");
                }
            }
            Ok(())
        }
        Command::Upstream(cmd) => {
            let state = startup::build_default(&config()?).await?;
            upstream_cmd::run(&state.service, cmd).await
        }
        Command::Keys(cmd) => keys_cmd::run(&config()?, cmd).await,
        Command::Installs(cmd) => {
            let state = startup::build_default(&config()?).await?;
            let svc = &state.service;
            match cmd {
                InstallsCommand::Create { org, app } => {
                    let created = svc.create_installation(&org, &app, None).await?;
                    print(&wire::CreatedInstallation {
                        installation: (&created.installation).into(),
                        code: created.code.expose().into(),
                        redirect_to: created.redirect_to,
                    });
                }
                InstallsCommand::Delete { uuid } => {
                    let id = parse_uuid("installation", &uuid)?;
                    svc.delete_installation(id, None).await?;
                    eprintln!("installation {uuid} deleted");
                }
                InstallsCommand::Show { uuid } => {
                    let id = parse_uuid("installation", &uuid)?;
                    print(&wire::Installation::from(&svc.installation(id).await?));
                }
                InstallsCommand::List {
                    org,
                    app,
                    limit,
                    cursor,
                } => {
                    check_limit(limit)?;
                    let app_id = match app {
                        Some(slug) => Some(svc.app(&slug).await?.id),
                        None => None,
                    };
                    let before = cursor
                        .map(|c| {
                            rotor_core::InstallationFilter::parse_cursor(&c).ok_or_else(|| {
                                anyhow::anyhow!(
                                    "--cursor {c:?} is not a cursor this command printed"
                                )
                            })
                        })
                        .transpose()?;
                    let list = svc
                        .list_installations(rotor_core::InstallationFilter {
                            app_id,
                            org_slug: org,
                            before,
                            limit,
                        })
                        .await?;
                    if list.len() == limit as usize {
                        if let Some(last) = list.last() {
                            eprintln!(
                                "more: --cursor {}",
                                rotor_core::InstallationFilter::cursor_after(last)
                            );
                        }
                    }
                    print(
                        &list
                            .iter()
                            .map(wire::Installation::from)
                            .collect::<Vec<_>>(),
                    );
                }
            }
            Ok(())
        }
    }
}

async fn serve(settings: &Settings, args: &ServeArgs) -> anyhow::Result<()> {
    let mut cfg = Config {
        create_database: true,
        ..settings.to_config()?
    };
    if args.demo && cfg.admin_token.is_none() {
        cfg.admin_token = Some(Secret::new(
            rotor_core::Token::generate(rotor_core::TokenKind::ClientSecret)
                .expose()
                .replacen("rtr_cs_", "rtr_admin_", 1),
        ));
    }
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
    let management = settings::management_listen(settings)?;
    let metrics = rotor_server::telemetry::Metrics::install()?;
    let state = startup::build_default(&cfg).await?;
    let mut background = startup::Background::new();
    background.metrics_upkeep(metrics.clone());
    background.janitor(
        state.service.clone(),
        std::time::Duration::from_secs(settings.janitor_interval_seconds),
    );
    background.upstream_refresher(state.service.clone(), std::time::Duration::from_secs(30));
    background.webhook_worker(state.service.clone())?;
    // One signal stops both listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        startup::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let management_task = match management {
        Some(at) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("binding the management listener {at}"))?;
            tracing::info!(addr = %listener.local_addr()?, "management listening (/metrics, /healthz, /readyz)");
            let router = rotor_server::telemetry::management_router(state.clone(), metrics);
            let stop = stopped(stop_rx.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "the management listener failed");
                }
            }))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %startup::describe_database(&settings.database_url), admin_api = cfg.admin_token.is_some(), "rotor listening");
    if args.demo {
        demo::seed_and_print(
            &state.service,
            addr,
            cfg.admin_token.as_ref().map(Secret::expose),
        )
        .await?;
    }
    let state = Arc::new(state);
    startup::serve_with(
        listener,
        (*state).clone(),
        cfg.connections,
        stopped(stop_rx),
    )
    .await?;
    if let Some(task) = management_task {
        let _ = task.await;
    }
    // Requests are done (or cut at the drain deadline): stop the jobs
    // (a webhook attempt in flight ends within its timeout), then commit
    // what the store has queued and close it.
    background.stop().await;
    state.service.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// `--reuse-policy`, checked.
fn reuse_policy_arg(p: Option<String>) -> anyhow::Result<Option<ReusePolicy>> {
    p.map(|p| ReusePolicy::parse(&p).context("--reuse-policy must be revoke_family or reject"))
        .transpose()
}

/// `--limit` of a list command: 1 to 1000, as the API's.
pub(crate) fn check_limit(limit: u32) -> anyhow::Result<()> {
    if !(1..=1000).contains(&limit) {
        anyhow::bail!("--limit must be 1 to 1000");
    }
    Ok(())
}

/// A uuid argument, or an error that names it.
fn parse_uuid(what: &str, raw: &str) -> anyhow::Result<uuid::Uuid> {
    uuid::Uuid::parse_str(raw.trim()).map_err(|_| {
        anyhow::anyhow!("{what} {raw:?} is not a UUID (e.g. 0aa70f87-b765-47ba-a4eb-d2c624d97171)")
    })
}

/// `rotor backup FILE`.
fn backup(cfg: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    let Some(url) = startup::sqlite_url(&cfg.database_url) else {
        anyhow::bail!(
            "rotor backup copies a SQLite database; for PostgreSQL use \
             `pg_dump --format=custom --file=rotor.dump <database URL>` (README: Backup and restore)"
        );
    };
    let started = std::time::Instant::now();
    let pages = rotor_store_sqlite::backup(&url, file)
        .with_context(|| format!("backing up {}", startup::describe_database(&url)))?;
    eprintln!(
        "backed up {} to {} ({pages} pages, {:.1} s)",
        startup::describe_database(&url),
        file.display(),
        started.elapsed().as_secs_f64()
    );
    match startup::key_file(cfg) {
        Some(key) => eprintln!(
            "the backup is sealed under the server key in {}: back that file up too, kept apart \
             from the database backup; without it the backup's secrets cannot be opened",
            key.display()
        ),
        None => eprintln!(
            "the backup is sealed under ROTOR_SECRET_KEY (and ROTOR_SECRET_KEYS_OLD): keep those \
             keys, apart from the backup; without them its secrets cannot be opened"
        ),
    }
    Ok(())
}

/// `rotor config show`: one line per setting, TOML that could be a file,
/// with where the value came from.
fn show_config(resolved: &settings::Resolved) {
    let values = resolved.settings.display_values();
    for key in Settings::keys() {
        let origin = &resolved.origins[&key];
        match &values[&key] {
            Some(v) => println!("{key} = {v}  # {origin}"),
            None => println!("# {key} is unset  # {origin}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subcommand argument with the id of a setting would be read as that
    /// setting (`apps create --scope x` once set the scope vocabulary).
    #[test]
    fn no_subcommand_argument_shadows_a_setting() {
        fn walk(cmd: &clap::Command, keys: &[String], path: &str) {
            for a in cmd.get_arguments().filter(|a| !a.is_global_set()) {
                let id = a.get_id().as_str();
                assert!(
                    !keys.iter().any(|k| k == id) || path.is_empty(),
                    "`{path}` has an argument `{id}` that shadows the setting of that name"
                );
            }
            for sub in cmd.get_subcommands() {
                walk(sub, keys, &format!("{path} {}", sub.get_name()));
            }
        }
        let mut keys = Settings::keys();
        keys.push("config".into());
        walk(&Cli::command(), &keys, "");
    }
}
