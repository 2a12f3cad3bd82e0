//! `rotor upstream …` and `rotor keys …`: the upstream API and key rotation
//! on the command line, working on the database directly.

use anyhow::Context;
use clap::Subcommand;
use rotor_core::{Secret, ServerKey};
use rotor_server::http::wire;
use rotor_server::service::upstream::{IdentityPatch, NewIdentity};
use rotor_server::startup::{self, Config};
use rotor_server::{keyfile, Service};

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
    },
    /// Re-authorize an identity in place with new tokens (same id; an
    /// invalid one becomes active and the platform is told).
    Patch {
        /// Identity id.
        id: String,
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
        id: String,
    },
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
    /// With a key file: write a new primary key into it (atomically, the
    /// old one kept) and re-seal every secret at rest under it. With
    /// ROTOR_SECRET_KEY: re-seal under that key, opening old values with
    /// ROTOR_SECRET_KEYS_OLD. Exits non-zero when anything was skipped.
    Rotate,
    /// Show which server key sealed how many stored values.
    Check,
    /// Drop older keys nothing is sealed under any more (from the key file;
    /// with configured keys, say whether ROTOR_SECRET_KEYS_OLD can go).
    Retire,
}

pub async fn upstream(svc: &Service, cmd: UpstreamCommand) -> anyhow::Result<()> {
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
        UpstreamCommand::Identities(IdentitiesCommand::List { status }) => {
            let status = status
                .map(|s| {
                    rotor_core::IdentityStatus::parse(&s)
                        .ok_or_else(|| anyhow::anyhow!("--status must be active or invalid"))
                })
                .transpose()?;
            let mut list = svc.list_identities(100_000).await?;
            list.retain(|i| status.is_none_or(|s| i.status == s));
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
                    &id,
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
            svc.delete_identity(&id).await?;
            eprintln!("identity {id} deleted");
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
            print(&wire::UpstreamToken::from(&t));
        }
        UpstreamCommand::Identities(IdentitiesCommand::Refresh { id }) => {
            let t = svc
                .upstream_token(&id, chrono::Duration::zero(), true)
                .await?;
            print(&wire::UpstreamToken::from(&t));
        }
    }
    Ok(())
}

pub async fn keys(cfg: &Config, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Generate => println!("{}", ServerKey::generate().to_base64()),
        KeysCommand::Rotate => rotate(cfg).await?,
        KeysCommand::Retire => retire(cfg).await?,
        KeysCommand::Check => {
            let state = startup::build_default(cfg).await?;
            let svc = &state.service;
            let sealed = svc.store.sealed_key_ids().await?;
            let primary = svc.keyring.primary().id().to_owned();
            let keys: Vec<Value> = svc
                .keyring
                .all()
                .map(|k| k.id().to_owned())
                .chain(sealed.iter().map(|(id, _)| id.clone()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|id| {
                    let n = sealed.iter().find(|(s, _)| *s == id).map_or(0, |(_, n)| *n);
                    json!({"keyId": id, "values": n, "primary": id == primary,
                           "inKeyring": svc.keyring.all().any(|k| k.id() == id)})
                })
                .collect();
            print(&json!({"primaryKeyId": primary, "keys": keys}));
        }
    }
    Ok(())
}

/// `rotor keys rotate`. With a key file: a new primary key is written into
/// it first (atomically, the old keys kept), then every value is re-sealed
/// under it. With configured keys: re-seals under ROTOR_SECRET_KEY.
async fn rotate(cfg: &Config) -> anyhow::Result<()> {
    let key_file = startup::key_file(cfg);
    if let Some(path) = &key_file {
        // Open the database with the current keys first: this refuses a
        // database whose data the key file cannot open, before touching it.
        let state = startup::build_default(cfg).await?;
        state.service.store.close().await;
        let old = keyfile::read_key_file(path)?;
        let new = ServerKey::generate();
        let mut keys = vec![new];
        keys.extend(old);
        keyfile::write_key_file(path, &keys)?;
        eprintln!(
            "wrote a new primary key {} into {} (older keys kept)",
            keys[0].id(),
            path.display()
        );
    }
    let state = startup::build_default(cfg).await?;
    let svc = &state.service;
    let r = svc.reseal_all().await?;
    let primary = svc.keyring.primary().id().to_owned();
    print(
        &json!({"keyId": primary, "apps": r.apps, "providers": r.providers,
                  "identities": r.identities, "skipped": r.skipped}),
    );
    match &key_file {
        Some(path) => eprintln!(
            "next: restart every `rotor serve` on this database now (a running server does not              have key {primary}, and would fail the exchanges of apps sealed under it); back up              {}; once `rotor keys check` shows no values under an older key (pending webhooks              are delivered under the key they were queued with), run `rotor keys retire`",
            path.display()
        ),
        None => eprintln!(
            "next: every node must have ROTOR_SECRET_KEY = the key {primary} and the old key in              ROTOR_SECRET_KEYS_OLD; restart them; once `rotor keys check` shows no values under              an older key, remove it from ROTOR_SECRET_KEYS_OLD (`rotor keys retire` checks)"
        ),
    }
    if r.skipped > 0 {
        anyhow::bail!(
            "{} value(s) were skipped (changed while rotating, or sealed under a key not in \
             the keyring): run `rotor keys rotate` again, and keep the old key until \
             `rotor keys check` shows nothing under it",
            r.skipped
        );
    }
    Ok(())
}

/// `rotor keys retire`: drops older keys that nothing is sealed under any
/// more; refuses while something still is.
async fn retire(cfg: &Config) -> anyhow::Result<()> {
    let state = startup::build_default(cfg).await?;
    let svc = &state.service;
    let primary = svc.keyring.primary().id().to_owned();
    let still: Vec<String> = svc
        .store
        .sealed_key_ids()
        .await?
        .into_iter()
        .filter(|(id, _)| *id != primary)
        .map(|(id, n)| format!("{id} ({n} value(s))"))
        .collect();
    if !still.is_empty() {
        anyhow::bail!(
            "not retiring: values are still sealed under {}; run `rotor keys rotate` (and let \
             pending webhooks be delivered), then `rotor keys retire` again",
            still.join(", ")
        );
    }
    let retired: Vec<String> = svc
        .keyring
        .all()
        .filter(|k| k.id() != primary)
        .map(|k| k.id().to_owned())
        .collect();
    match startup::key_file(cfg) {
        Some(path) => {
            let keys = keyfile::read_key_file(&path)?;
            keyfile::write_key_file(&path, &keys[..1])?;
            eprintln!(
                "{} now holds only key {primary}; retired: {}",
                path.display(),
                if retired.is_empty() {
                    "none".into()
                } else {
                    retired.join(", ")
                }
            );
        }
        None => {
            eprintln!(
            "nothing is sealed under an older key: remove ROTOR_SECRET_KEYS_OLD ({}) on every node",
            if retired.is_empty() { "already empty".into() } else { retired.join(", ") }
        )
        }
    }
    print(&json!({"primaryKeyId": primary, "retired": retired}));
    Ok(())
}
