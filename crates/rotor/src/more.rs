//! `rotor upstream …` and `rotor keys …`: the upstream API and key rotation
//! on the command line, working on the database directly.

use anyhow::Context;
use clap::Subcommand;
use rotor_core::{Secret, ServerKey};
use rotor_server::http::wire;
use rotor_server::service::upstream::NewIdentity;
use rotor_server::Service;

use crate::print;
use serde_json::{json, Value};

#[derive(Subcommand, Debug)]
pub enum UpstreamCommand {
    /// Upstream providers.
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Upstream identities.
    #[command(subcommand)]
    Identities(IdentitiesCommand),
}

#[derive(Subcommand, Debug)]
pub enum ProvidersCommand {
    /// Add a provider: `--config` is the JSON of API.md (secrets included).
    Add {
        /// Unique key.
        #[arg(long)]
        key: String,
        /// oauth2, azure-devops, entra, github-app, app-store-connect, slack, google, atlassian.
        #[arg(long)]
        kind: String,
        /// Configuration JSON, or @FILE to read it from a file.
        #[arg(long)]
        config: String,
    },
    /// List providers (without secrets).
    List,
}

#[derive(Subcommand, Debug)]
pub enum IdentitiesCommand {
    /// Add an identity at a provider.
    Add {
        /// Provider key.
        #[arg(long)]
        provider: String,
        /// Account id at the provider.
        #[arg(long)]
        external_id: String,
        /// A granted scope (repeat for more).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Refresh token (read from ROTOR_UPSTREAM_REFRESH_TOKEN if unset).
        #[arg(long, env = "ROTOR_UPSTREAM_REFRESH_TOKEN", hide_env_values = true)]
        refresh_token: Option<String>,
        /// GitHub App installation id.
        #[arg(long)]
        installation_id: Option<String>,
    },
    /// List identities (never a secret).
    List,
    /// Print a token valid for at least --min-valid-seconds (refreshing first if needed).
    Token {
        /// Identity id.
        id: String,
        /// Seconds the token must still be valid.
        #[arg(long, default_value_t = 60)]
        min_valid_seconds: i64,
    },
    /// Refresh now and print the new token.
    Refresh {
        /// Identity id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Print a new random server key (standard base64 of 32 bytes).
    Generate,
    /// Re-seal every secret at rest under the primary key
    /// (ROTOR_SECRET_KEY), opening old ones with ROTOR_SECRET_KEYS_OLD.
    /// Exits non-zero when anything was skipped.
    Rotate,
    /// Show which server key sealed how many stored values.
    Check,
}

pub async fn upstream(svc: &Service, cmd: UpstreamCommand) -> anyhow::Result<()> {
    match cmd {
        UpstreamCommand::Providers(ProvidersCommand::Add { key, kind, config }) => {
            let text = match config.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
                }
                None => config,
            };
            let config: Value = serde_json::from_str(&text).context("--config is not JSON")?;
            let p = svc.create_provider(&key, &kind, &config).await?;
            print(&wire::provider(&p));
        }
        UpstreamCommand::Providers(ProvidersCommand::List) => {
            let list = svc.list_providers().await?;
            print(&json!(list.iter().map(wire::provider).collect::<Vec<_>>()));
        }
        UpstreamCommand::Identities(IdentitiesCommand::Add {
            provider,
            external_id,
            scopes,
            refresh_token,
            installation_id,
        }) => {
            let i = svc
                .create_identity(NewIdentity {
                    provider,
                    external_id,
                    scopes,
                    access_token: None,
                    refresh_token: refresh_token.map(Secret::new),
                    expires_at: None,
                    installation_id,
                })
                .await?;
            print(&wire::identity(&i));
        }
        UpstreamCommand::Identities(IdentitiesCommand::List) => {
            let list = svc.list_identities(10_000).await?;
            print(&json!(list.iter().map(wire::identity).collect::<Vec<_>>()));
        }
        UpstreamCommand::Identities(IdentitiesCommand::Token {
            id,
            min_valid_seconds,
        }) => {
            let t = svc
                .upstream_token(
                    &id,
                    chrono::Duration::seconds(min_valid_seconds.max(0)),
                    false,
                )
                .await?;
            print(&wire::upstream_token(&t));
        }
        UpstreamCommand::Identities(IdentitiesCommand::Refresh { id }) => {
            let t = svc
                .upstream_token(&id, chrono::Duration::zero(), true)
                .await?;
            print(&wire::upstream_token(&t));
        }
    }
    Ok(())
}

pub async fn keys(svc: Option<&Service>, cmd: KeysCommand) -> anyhow::Result<()> {
    match (cmd, svc) {
        (KeysCommand::Generate, _) => println!("{}", ServerKey::generate().to_base64()),
        (KeysCommand::Rotate, Some(svc)) => {
            let r = svc.reseal_all().await?;
            print(
                &json!({"keyId": svc.keyring.primary().id(), "apps": r.apps, "providers": r.providers,
                          "identities": r.identities, "skipped": r.skipped}),
            );
            if r.skipped > 0 {
                anyhow::bail!(
                    "{} value(s) were skipped (changed while rotating, or sealed under a key not in \
                     ROTOR_SECRET_KEY / ROTOR_SECRET_KEYS_OLD): run `rotor keys rotate` again, \
                     and keep the old key until `rotor keys check` shows nothing under it",
                    r.skipped
                );
            }
        }
        (KeysCommand::Check, Some(svc)) => {
            let sealed = svc.store.sealed_key_ids().await?;
            let primary = svc.keyring.primary().id().to_owned();
            let keys: Vec<Value> = sealed
                .iter()
                .map(|(id, n)| json!({"keyId": id, "values": n, "primary": *id == primary}))
                .collect();
            print(&json!({"primaryKeyId": primary, "keys": keys}));
        }
        (KeysCommand::Rotate | KeysCommand::Check, None) => anyhow::bail!("no database"),
    }
    Ok(())
}
