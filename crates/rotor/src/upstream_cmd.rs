//! `rotor upstream …`: the upstream providers and identities API on the
//! command line, working on the database directly.

use anyhow::Context;
use clap::Subcommand;
use rotor_core::Secret;
use rotor_server::http::wire;
use rotor_server::service::upstream::{IdentityPatch, NewIdentity, Refresh};
use rotor_server::Service;

use crate::print;
use serde_json::Value;

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
    /// Add a provider: `--provider-config` is the JSON of API.md (secrets included).
    Add {
        /// Unique key.
        #[arg(long)]
        key: String,
        /// oauth2, azure-devops, entra, github-app, app-store-connect, slack, google, atlassian.
        #[arg(long)]
        kind: String,
        /// The provider's configuration JSON, or @FILE to read it from a
        /// file (`--config` names Rotor's own configuration file).
        #[arg(long = "provider-config")]
        provider_config: String,
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
        #[arg(long = "scope", id = "scope")]
        scopes: Vec<String>,
        /// Refresh token (read from ROTOR_UPSTREAM_REFRESH_TOKEN if unset).
        #[arg(long, env = "ROTOR_UPSTREAM_REFRESH_TOKEN", hide_env_values = true)]
        refresh_token: Option<String>,
        /// GitHub App installation id.
        #[arg(long)]
        installation_id: Option<String>,
    },
    /// List identities (never a secret).
    List {
        /// Only those with this status: active or invalid.
        #[arg(long)]
        status: Option<String>,
        /// Only those at this provider (its key).
        #[arg(long)]
        provider: Option<String>,
        /// Most to print (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Where to start: the cursor the previous page printed.
        #[arg(long)]
        cursor: Option<uuid::Uuid>,
    },
    /// Re-authorize an identity in place with new tokens (same id; an
    /// invalid one becomes active and the platform is told).
    Patch {
        /// Identity id.
        id: uuid::Uuid,
        /// New access token (or ROTOR_UPSTREAM_ACCESS_TOKEN).
        #[arg(long, env = "ROTOR_UPSTREAM_ACCESS_TOKEN", hide_env_values = true)]
        access_token: Option<String>,
        /// New refresh token (or ROTOR_UPSTREAM_REFRESH_TOKEN).
        #[arg(long, env = "ROTOR_UPSTREAM_REFRESH_TOKEN", hide_env_values = true)]
        refresh_token: Option<String>,
        /// When the new access token expires (RFC 3339).
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        /// The granted scopes, replacing the old (repeat for more).
        #[arg(long = "scope", id = "scope")]
        scopes: Option<Vec<String>>,
    },
    /// Delete an identity and its stored tokens.
    Delete {
        /// Identity id.
        id: uuid::Uuid,
    },
    /// Print a token valid for at least --min-valid-seconds (refreshing first if needed).
    Token {
        /// Identity id.
        id: uuid::Uuid,
        /// Seconds the token must still be valid.
        #[arg(long, default_value_t = 60)]
        min_valid_seconds: i64,
    },
    /// Refresh now and print the new token.
    Refresh {
        /// Identity id.
        id: uuid::Uuid,
    },
}

pub async fn run(svc: &Service, cmd: UpstreamCommand) -> anyhow::Result<()> {
    match cmd {
        UpstreamCommand::Providers(ProvidersCommand::Add {
            key,
            kind,
            provider_config: config,
        }) => {
            let text = match config.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
                }
                None => config,
            };
            let config: Value =
                serde_json::from_str(&text).context("--provider-config is not JSON")?;
            let p = svc.create_provider(&key, &kind, &config).await?;
            print(&wire::Provider::from(&p));
        }
        UpstreamCommand::Providers(ProvidersCommand::List) => {
            let list = svc.list_providers().await?;
            print(&list.iter().map(wire::Provider::from).collect::<Vec<_>>());
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
            print(&wire::Identity::from(&i));
        }
        UpstreamCommand::Identities(IdentitiesCommand::List {
            status,
            provider,
            limit,
            cursor,
        }) => {
            crate::check_limit(limit)?;
            let status = status
                .map(|s| {
                    rotor_core::IdentityStatus::parse(&s)
                        .ok_or_else(|| anyhow::anyhow!("--status must be active or invalid"))
                })
                .transpose()?;
            let list = svc
                .identities_page(&rotor_core::IdentityFilter {
                    status,
                    provider,
                    after: cursor,
                    limit,
                })
                .await?;
            if list.len() == limit as usize {
                if let Some(last) = list.last() {
                    eprintln!("more: --cursor {}", last.id);
                }
            }
            print(&list.iter().map(wire::Identity::from).collect::<Vec<_>>());
        }
        UpstreamCommand::Identities(IdentitiesCommand::Patch {
            id,
            access_token,
            refresh_token,
            expires_at,
            scopes,
        }) => {
            let i = svc
                .reauthorize_identity(
                    id,
                    IdentityPatch {
                        access_token: access_token.map(Secret::new),
                        refresh_token: refresh_token.map(Secret::new),
                        expires_at,
                        scopes,
                    },
                )
                .await?;
            print(&wire::Identity::from(&i));
        }
        UpstreamCommand::Identities(IdentitiesCommand::Delete { id }) => {
            svc.delete_identity(id).await?;
            eprintln!("identity {id} deleted");
        }
        UpstreamCommand::Identities(IdentitiesCommand::Token {
            id,
            min_valid_seconds,
        }) => {
            let t = svc
                .upstream_token(
                    id,
                    chrono::Duration::seconds(min_valid_seconds.max(0)),
                    Refresh::IfDue,
                )
                .await?;
            print(&wire::UpstreamToken::from(&t));
        }
        UpstreamCommand::Identities(IdentitiesCommand::Refresh { id }) => {
            let t = svc
                .upstream_token(id, chrono::Duration::zero(), Refresh::Now)
                .await?;
            print(&wire::UpstreamToken::from(&t));
        }
    }
    Ok(())
}
